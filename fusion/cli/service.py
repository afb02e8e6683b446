"""``rampart run``: the edge-box service. Live sensors in, alerts out, 24/7.

The same Pipeline as ``rampart replay`` (decoders, engine, detectors,
incidents), fed live: the MQTT client's thread and the serial readers put
received messages into the Intake (bounded per-source queues); one engine
thread takes them in receive order per batch and, between messages, advances
the engine's clock with the wall clock, so a sensor that falls silent is
noticed even when nothing else arrives.

Operational surface: /healthz, /readyz and /metrics on the ``[http] listen``
address (loopback by default), JSON logs on stderr, systemd ``Type=notify``
readiness and watchdog pings when ``NOTIFY_SOCKET`` is set, SIGTERM/SIGINT to
stop, SIGHUP to reload the configuration (validated first; on any problem the
running configuration stays and the problems are logged).
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import signal
import socket
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from drivers.audit_log import DEFAULT_HEAD_EVERY_S, AuditLog, AuditSink, HeadTracker
from drivers.audit_log import head_every_s as audit_head_every_s
from drivers.config_trust import (
    Verdict,
    atomic_write,
    config_serial,
    config_sha256,
    read_signed,
    verify_bytes,
)
from drivers.keyring import KeyringView, load_view, write_pin
from drivers.limits import Limits
from drivers.mqtt_source import MqttSettings, MqttSource
from drivers.recording import RecordingWriter
from drivers.serial_link import SerialLink
from drivers.status_http import StatusServer
from drivers.ublox_config import configure as configure_receiver
from fusion.alerts import Alert
from fusion.cli.intake import Intake, Received
from fusion.cli.pipeline import Pipeline
from fusion.config import ConfigError, SiteConfig, parse_config, unknown_keys
from fusion.detector import Finding

log = logging.getLogger("rampart.service")

NS = 1_000_000_000
HEALTH_STALL_S = 10.0  # the engine loop must turn at least this often to be healthy
DEFAULT_BAUD = {"gnss": 9600, "power": 921600}  # when a serial sensor names none
DEFAULT_STATE_DIR = "/var/lib/rampart"


class JsonLogFormatter(logging.Formatter):
    """One JSON object per log line: time, level, logger, message (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "t": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def sd_notify(message: str) -> bool:
    """systemd's notify protocol (sd_notify(3)): one datagram to $NOTIFY_SOCKET."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.sendall(message.encode())
    return True


@dataclass(frozen=True)
class TrustPolicy:
    """What a configuration must carry: signatures by ``min_signatures`` distinct keys that
    the keyring trusts (``drivers.keyring``: pinned, or endorsed by that many trusted keys).

    ``state_dir``: where the pin (``trusted-keys.json``) and the last accepted
    configuration live; None: the ``[state] dir`` the configuration names at start.
    Fixed at start: a reload never moves it."""

    keyring: Path
    min_signatures: int = 2
    state_dir: Path | None = None

    def view(self, state_dir: Path) -> KeyringView:
        return load_view(self.keyring, state_dir, self.min_signatures)

    def check(self, data: bytes, sig: bytes | None, trusted: dict, source: str) -> Verdict:
        return verify_bytes(data, sig, trusted, self.min_signatures, source)


class ConfigRefused(ConfigError):
    """A configuration the service will not run; what its alert and audit record say.

    ``reason``: unreadable | signatures | invalid | rollback | internal_error."""

    def __init__(
        self,
        source: str,
        problems,
        reason: str,
        sha256: str = "",
        valid_keys: tuple[str, ...] = (),
    ):
        super().__init__(source, list(problems) or ["refused"])
        self.reason = reason
        self.sha256 = sha256
        self.valid_keys = tuple(valid_keys)

    def details(self) -> dict:
        return {
            "path": self.source,
            "reason": self.reason,
            "sha256": self.sha256,
            "problems": list(self.problems),
            "valid_signers": list(self.valid_keys),
        }


def _refusal(refused: ConfigRefused, fallback: Path | None = None) -> Finding:
    why = refused.problems[-1]
    details = refused.details()
    summary = f"Configuration {refused.source} refused: {why}"
    if fallback is not None:
        details["running"] = str(fallback)
        summary += "; running the last accepted configuration"
    return Finding(
        "config",
        "update",
        "config_refused",
        "high",
        1.0,
        (),
        time.time_ns(),
        summary,
        details,
    )


def _warn_unknown_keys(site: SiteConfig) -> None:
    for problem in unknown_keys(site):
        log.warning("%s: %s (ignored; rampart check-config lists these)", site.source, problem)


def _state_dir_of(data: bytes | None, config_path: Path) -> Path:
    """The ``[state] dir`` a configuration's bytes name, read leniently: the file is not
    trusted yet, this only says where the pin and the last accepted configuration are."""
    state = DEFAULT_STATE_DIR
    try:
        value = tomllib.loads(data.decode("utf-8")).get("state", {}).get("dir")  # type: ignore[union-attr]
        if isinstance(value, str) and value:
            state = value
    except (AttributeError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        pass
    path = Path(state)
    return path if path.is_absolute() else config_path.parent / path


def _validate(site: SiteConfig) -> None:
    """Everything building the pipeline checks (detector, incident, limit settings), so a
    configuration is refused before it is kept, not when the swap is half done."""
    Pipeline(site, lambda _alert: None, keep_history=False)


class _Snapshot:
    """Figures copied by the engine thread once a second, read by /metrics scrapes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict = {}


class Service:
    def __init__(
        self,
        config_path: Path,
        sinks: list | Callable[[SiteConfig], list] | None = None,
        record_dir: Path | None = None,
        process: bool = True,
        trust: TrustPolicy | None = None,
    ):
        """``record_dir``: also write every received message to a recording there;
        ``process`` False: record only (``rampart record``), no detection;
        ``trust``: the keyring and signature count a configuration must carry
        (None: unsigned configurations are accepted, for development)."""
        self.config_path = Path(config_path)
        self.trust = trust
        self._accepted = None
        self._pending_findings: list[Finding] = []
        self._pending_audit: list[tuple[str, int, dict]] = []
        self._trust_dir: Path | None = None  # pin and last accepted configuration; set at start
        self._accepted_bytes: bytes | None = None
        self._accepted_serial = -1
        self._keyring_seen: frozenset = frozenset()  # ignored entries already alerted
        self.site = self._load_trusted(self.config_path, at_start=True)
        # A callable builds the sinks of the configuration actually accepted (signed, or
        # the last accepted one), never of a file that was refused.
        self.sinks = list((sinks(self.site) if callable(sinks) else sinks) or [])
        self.process = process
        self.recorder = (
            RecordingWriter(record_dir, self.site.text) if record_dir is not None else None
        )
        self.alerts_out = 0
        self.intake = Intake(
            per_source=int(self.site.section("intake").get("queue_per_source", 2000)),
            max_bytes=Limits.from_site(self.site).max_queue_bytes,
        )
        self.pipeline = self._build_pipeline(self.site)
        self.stop_event = threading.Event()
        self.reload_requested = threading.Event()
        self.ready = False
        self._last_turn = time.monotonic()
        self._snapshot = _Snapshot()
        self.mqtt: MqttSource | None = None
        mqtt_sensors = [s for s in self.site.sensors if s.transport == "mqtt"]
        if mqtt_sensors:
            settings = MqttSettings.from_section(
                self.site.section("mqtt"), self.config_path.parent, f"rampart-{self.site.site.id}"
            )
            self.mqtt = MqttSource(settings, self.pipeline.router.subscriptions(), self._on_mqtt)
        # The accepted configuration's [state] dir: outbox and audit log (contract §5).
        # The pin and the last accepted configuration may live elsewhere (--trust-state).
        self.state_dir = self._site_state_dir(self.site)
        _warn_unknown_keys(self.site)
        # The audit log never stops the start: a torn tail is sealed, a damaged file moved
        # aside (drivers/audit_log.py), and what was found is alerted once running.
        self.audit = AuditLog(self.state_dir / "audit.log") if process else None
        if self.audit is not None:
            audit_sink = AuditSink(self.audit)
            self.sinks.insert(0, audit_sink)  # recorded before any send
            for sink in self.sinks:  # delivery's own alerts (delivery_backlog) are audited too
                delivery = getattr(sink, "delivery", None)
                if hasattr(delivery, "on_own_alert"):
                    delivery.on_own_alert = audit_sink.send
            if self.audit.opened_with is not None:
                log.error("%s", self.audit.opened_with)
                self._pending_findings.append(
                    Finding(
                        "audit-log",
                        "update",
                        "audit_log_damaged",
                        "high",
                        1.0,
                        (),
                        time.time_ns(),
                        f"Audit log damaged: {self.audit.opened_with}",
                        self.audit.open_details,
                    )
                )
        try:
            self.head_every_s = audit_head_every_s(self.site)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("%s: %s; using %g s", exc.source, problem, DEFAULT_HEAD_EVERY_S)
            self.head_every_s = DEFAULT_HEAD_EVERY_S
        if self.head_every_s == 0 and self.audit is not None:
            log.warning(
                "[audit] head_every_s = 0: audit heads are NOT published; nothing outside this "
                "box can tell if its audit log is cut short or rewritten"
            )
        self.heads = HeadTracker(self.audit) if self.audit is not None else None
        self._last_head = 0.0
        self._last_audit_check = 0.0
        self._audit_config("config_load", self.site)
        self.serial_links: dict[str, SerialLink] = {}
        if process or record_dir is not None:
            for sensor in self.site.sensors:
                if sensor.transport == "serial" and sensor.port:
                    self.serial_links[sensor.id] = SerialLink(
                        sensor.port,
                        sensor.baud or DEFAULT_BAUD.get(sensor.kind, 115200),
                        lambda t_rx_ns, chunk, sid=sensor.id: self.on_serial(sid, t_rx_ns, chunk),
                        name=sensor.id,
                        # A u-blox receiver is told to emit what detection reads, again on
                        # every reopen (an unplugged receiver forgets); NMEA-only ones ignore it.
                        on_open=configure_receiver if sensor.kind == "gnss" else None,
                    )
        self.registry = CollectorRegistry()
        self.registry.register(_Collector(self))
        listen = str(self.site.section("http").get("listen", "127.0.0.1:9108"))
        self.http = StatusServer(listen, self.registry, self._health, self._readiness)

    # --- wiring --------------------------------------------------------------------------
    def _build_pipeline(self, site: SiteConfig) -> Pipeline:
        pipe = Pipeline(site, self._emit, keep_history=False)  # 24/7: nothing grows with time
        # SOC acknowledgements (MQTT acks topic, webhook replies) are recorded on the
        # incident they name; a reload builds a new book, so re-point the listeners.
        for sink in getattr(self, "sinks", []):
            delivery = getattr(getattr(sink, "delivery", None), "ack_listeners", None)
            if delivery is not None:
                delivery[:] = [pipe.incidents.acknowledge]
        return pipe

    def _emit(self, alert: Alert) -> None:
        self.alerts_out += 1
        for sink in self.sinks:
            sink.send(alert)
        log.info("alert %s %s %s: %s", alert.kind, alert.state, alert.severity, alert.summary)

    # --- trust and audit ------------------------------------------------------------------
    def _load_trusted(self, path: Path, at_start: bool) -> SiteConfig:
        """The configuration at ``path``: read once as bytes (with its ``.sig``); those
        bytes verified, parsed, validated and kept as the last accepted ones.

        Any failure (unreadable file, bad bytes, too few trusted signatures, bad
        TOML or settings, a rollback of ``[config] serial``, an internal error)
        raises ConfigRefused after it is logged, alerted (``config_refused``, via
        ``_pending_findings``) and audited. At start, a refused file falls back to
        the last accepted configuration if that still verifies under the same
        keyring rules; with no such fallback the service does not start.
        """
        data: bytes | None = None
        sig: bytes | None = None
        read_problem = ""
        try:
            data, sig = read_signed(path)
        except OSError as exc:
            read_problem = f"cannot read: {exc.strerror or exc}"
        if at_start and self.trust is not None:
            self._trust_dir = self.trust.state_dir or _state_dir_of(data, self.config_path)
        try:
            trusted = self._refresh_keyring() if self.trust is not None else {}
            return self._accept(path, data, sig, trusted, read_problem)
        except ConfigRefused as exc:
            refused = exc
        except Exception as exc:  # nothing while loading may stop the service
            log.exception("configuration %s: internal error while loading it", path)
            refused = ConfigRefused(
                str(path),
                [f"internal error: {type(exc).__name__}: {exc}"],
                "internal_error",
                config_sha256(data) if data is not None else "",
            )
            trusted = {}
        what = "configuration refused" if at_start else "reload refused, keeping the running one"
        for problem in refused.problems:
            log.error("%s: %s: %s", what, path, problem)
        fallback = self._fallback(trusted) if at_start and self.trust is not None else None
        self._pending_findings.append(
            _refusal(refused, self._last_good_path() if fallback is not None else None)
        )
        self._audit("config_refused", refused.details())
        if fallback is None:
            raise refused
        log.error("running the last accepted configuration %s instead", self._last_good_path())
        return fallback

    def _accept(
        self, path: Path, data: bytes | None, sig: bytes | None, trusted: dict, read_problem: str
    ) -> SiteConfig:
        if data is None:
            raise ConfigRefused(str(path), [read_problem], "unreadable")
        sha = config_sha256(data)
        verdict = None
        if self.trust is not None:
            verdict = self.trust.check(data, sig, trusted, str(path))
            if not verdict.ok:
                raise ConfigRefused(
                    str(path), verdict.problems, "signatures", sha, verdict.valid_keys
                )
        signers = verdict.valid_keys if verdict is not None else ()
        site = self._parse(path, data, sha, signers)
        if self.trust is not None:
            last_bytes, last_serial = self._last_accepted()
            known = data in (last_bytes, self._accepted_bytes)  # a restart, an unchanged SIGHUP
            if not known and last_serial is not None and site.serial <= last_serial:
                raise ConfigRefused(
                    str(path),
                    [
                        f"config.serial {site.serial} is not above the last accepted serial "
                        f"{last_serial} (an older configuration copied back is a rollback)"
                    ],
                    "rollback",
                    sha,
                    signers,
                )
            self._keep_last_good(data, sig)
        self._accepted = verdict
        self._accepted_bytes = data
        self._accepted_serial = site.serial
        return site

    @staticmethod
    def _parse(path: Path, data: bytes, sha: str, signers: tuple[str, ...]) -> SiteConfig:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigRefused(
                str(path), [f"not UTF-8 text (byte {exc.start})"], "invalid", sha, signers
            ) from exc
        try:
            site = parse_config(text, source=str(path))
            _validate(site)
        except (ConfigError, ValueError) as exc:
            problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
            raise ConfigRefused(str(path), problems, "invalid", sha, signers) from exc
        return site

    def _fallback(self, trusted: dict) -> SiteConfig | None:
        """The last accepted configuration, if it is still there and still verifies."""
        path = self._last_good_path()
        try:
            data, sig = read_signed(path)
        except OSError as exc:
            log.error("no last accepted configuration to fall back to: %s: %s", path, exc)
            return None
        assert self.trust is not None
        verdict = self.trust.check(data, sig, trusted, str(path))
        if not verdict.ok:
            for problem in verdict.problems:
                log.error("last accepted configuration unusable: %s: %s", path, problem)
            return None
        try:
            site = self._parse(path, data, verdict.sha256, verdict.valid_keys)
        except ConfigRefused as exc:
            for problem in exc.problems:
                log.error("last accepted configuration unusable: %s: %s", path, problem)
            return None
        self._accepted = verdict
        self._accepted_bytes = data
        self._accepted_serial = site.serial
        return site

    def _last_accepted(self) -> tuple[bytes | None, int | None]:
        """The kept bytes and the highest serial accepted so far (this run or before it)."""
        data = None
        try:
            data = self._last_good_path().read_bytes()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot read the last accepted configuration: %s", exc)
        serials = [self._accepted_serial] if self._accepted_serial >= 0 else []
        if data is not None:
            serial = config_serial(data)
            if serial is None:
                log.warning("%s: kept configuration does not parse", self._last_good_path())
            else:
                serials.append(serial)
        return data, (max(serials) if serials else None)

    def _refresh_keyring(self) -> dict:
        """The keys that count now (pinned or endorsed); pins newly endorsed keys, drops
        removed ones, and alerts what changed since the last load (``keyring_changed``)."""
        assert self.trust is not None and self._trust_dir is not None
        view = self.trust.view(self._trust_dir)
        pin_problem = ""
        if view.changed:
            try:
                write_pin(self._trust_dir, view.pin)
            except OSError as exc:
                pin_problem = f"cannot write the pin {self._trust_dir}: {exc}"
                log.error("keyring: %s; the trusted keys hold for this run only", pin_problem)
        details = {"keyring": str(self.trust.keyring), "pin": str(self._trust_dir)}
        if view.first_pin:
            ids = sorted(view.pin)
            self._keyring_event(
                "keyring",
                # Expected once, when the site is commissioned; at any other time it means
                # the trust state was reset, which the SOC must look at.
                "high",
                f"Keyring pinned: {len(ids)} keys trusted on first use from {self.trust.keyring}"
                + (f" ({pin_problem})" if pin_problem else ""),
                {**details, "keys": ids},
            )
        for kid, by in view.added:
            self._keyring_event(
                f"keyring:{kid}",
                "medium",
                f"Keyring: key {kid} added, endorsed by {', '.join(by)}",
                {**details, "key_id": kid, "endorsed_by": list(by)},
            )
        for kid in view.removed:
            self._keyring_event(
                f"keyring:{kid}",
                "medium",
                f"Keyring: key {kid} removed (its file is gone); it no longer counts",
                {**details, "key_id": kid},
            )
        seen = frozenset(
            [(i.path, i.key_id, i.reason) for i in view.ignored]
            + [("", "", p) for p in view.problems]
        )
        for path, kid, reason in sorted(seen - self._keyring_seen):
            what = f"{path} (key {kid})" if kid else (path or str(self.trust.keyring))
            self._keyring_event(
                f"keyring:{kid or path or 'problem'}",
                "high",
                f"Keyring: {what} ignored: {reason}",
                {**details, "file": path, "key_id": kid, "reason": reason},
            )
            log.error("keyring: %s ignored: %s", what, reason)
        self._keyring_seen = seen
        return view.trusted

    def _keyring_event(self, key: str, severity: str, summary: str, details: dict) -> None:
        log.warning("%s", summary)
        now = time.time_ns()
        finding = Finding(
            key, "update", "keyring_changed", severity, 1.0, (), now, summary, details
        )
        self._pending_findings.append(finding)
        self._audit("keyring_changed", {"summary": summary, **details})

    def _last_good_path(self, site: SiteConfig | None = None) -> Path:
        """``last-accepted.toml`` in the trust state directory (fixed at start), else in
        ``site``'s ``[state] dir``."""
        if self._trust_dir is not None:
            return self._trust_dir / "last-accepted.toml"
        return self._site_state_dir(site or self.site) / "last-accepted.toml"

    def _site_state_dir(self, site: SiteConfig) -> Path:
        state = Path(site.section("state").get("dir", DEFAULT_STATE_DIR))
        return state if state.is_absolute() else self.config_path.parent / state

    def _keep_last_good(self, data: bytes, sig: bytes | None) -> None:
        """Keeps exactly the accepted bytes and their signatures. Each file is replaced
        atomically; the ``.sig`` holds both versions' signatures while the pair changes,
        so the kept pair verifies at every moment, even across a crash."""
        dest = self._last_good_path()
        dest_sig = Path(f"{dest}.sig")
        sig = sig or b""
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                old_sig = dest_sig.read_bytes()
            except FileNotFoundError:
                old_sig = b""
            try:
                if dest.read_bytes() == data and old_sig == sig:
                    return
            except FileNotFoundError:
                pass
            if old_sig and not old_sig.endswith(b"\n"):
                old_sig += b"\n"
            atomic_write(dest_sig, old_sig + sig, mode=0o600)
            atomic_write(dest, data, mode=0o600)
            atomic_write(dest_sig, sig, mode=0o600)
        except OSError as exc:
            log.warning("could not keep a copy of the accepted configuration: %s", exc)

    def _audit(self, rtype: str, data: dict) -> None:
        """An audit record now, or once the log is open (it lives in the state directory
        the configuration names, so it opens after the first load)."""
        if not hasattr(self, "audit"):
            self._pending_audit.append((rtype, time.time_ns(), data))
        elif self.audit is not None:
            self._append_audit(rtype, time.time_ns(), data)

    def _append_audit(self, rtype: str, t_ns: int, data: dict) -> None:
        """A failing disk is logged and counted, never a reason to stop the service."""
        try:
            self.audit.append(rtype, t_ns, data)
        except OSError as exc:
            log.error("audit log: cannot append a %s record: %s", rtype, exc)

    def _audit_config(self, rtype: str, site: SiteConfig) -> None:
        if self.audit is None:
            return
        for pending_type, t_ns, pending in self._pending_audit:
            self._append_audit(pending_type, t_ns, pending)
        self._pending_audit.clear()
        data = {
            "path": str(self.config_path),
            "sha256": hashlib.sha256(site.text.encode("utf-8")).hexdigest(),
            "serial": site.serial,
            "signers": list(self._accepted.valid_keys) if self._accepted else [],
        }
        self._append_audit(rtype, time.time_ns(), data)

    def _service_finding(
        self, key: str, kind: str, severity: str, summary: str, details: dict
    ) -> None:
        now = time.time_ns()
        finding = Finding(key, "update", kind, severity, 1.0, (), now, summary, details)
        self.pipeline.raise_finding("service", finding, now)

    def _publish_head(self, final: bool = False) -> None:
        """The audit chain's head goes to the SOC, so history it has seen cannot be rewritten.

        ``seq``/``hash``: the head before this alert's own record; ``prev_*``: the head
        published before (at a start, the last the log file records) and the hash the log
        has at its seq now, so ``rampart audit watch`` can tell a rewrite. ``final``: the
        shutdown's head, as the close of the audit-head incident (never held back)."""
        if self.heads is None:
            return
        details = self.heads.details()
        now = time.time_ns()
        summary = f"Audit log head: record {details['seq']}"
        state = "closed" if final else "update"
        finding = Finding("audit-head", state, "audit_head", "info", 1.0, (), now, summary, details)
        self.pipeline.raise_finding("service", finding, now)
        self.heads.published()

    def _audit_turn(self, now: float) -> None:
        """Once a turn: the log file checked (at most once a second), a head published
        after new records (not faster than the incident book would pass it) or when due."""
        if self.audit is None:
            return
        if now - self._last_audit_check >= 1.0:
            self._last_audit_check = now
            problem = self.audit.check()
            if problem is not None:
                self._service_finding(
                    "audit-log",
                    "audit_log_tampered",
                    "high",
                    f"Audit log tampered with: {problem}; the chain goes on in a new file",
                    {"path": str(self.audit.path), "problem": problem, "seq": self.audit.seq},
                )
        if self.head_every_s <= 0:
            return
        since = now - self._last_head
        # Never faster than the incident book lets an update through ([incidents]
        # update_interval_s): a held-back head would be superseded, never seen.
        if since < self.pipeline.incidents.interval_ns / NS + 0.05:
            return
        if (self.heads is not None and self.heads.new_records()) or since >= self.head_every_s:
            self._publish_head()
            self._last_head = now

    def _flush_pending(self) -> None:
        for finding in self._pending_findings:
            self.pipeline.raise_finding("service", finding, time.time_ns())
        self._pending_findings.clear()

    def _on_mqtt(self, t_rx_ns: int, topic: str, payload: bytes) -> None:
        # Queued per sensor (or "unknown"): made-up topics make no new queues or series.
        router = self.pipeline.router
        source = router.source_of("mqtt", topic)
        if len(payload) > router.limits.max_payload_bytes:
            # Never queued: only its size goes on, for the engine thread to reject and count.
            self.intake.put(source, Received(t_rx_ns, "mqtt", topic, b"", size=len(payload)))
            return
        self.intake.put(source, Received(t_rx_ns, "mqtt", topic, payload))

    def on_serial(self, sensor_id: str, t_rx_ns: int, chunk: bytes) -> None:
        """For serial readers: one chunk read from a sensor's port."""
        if len(chunk) > self.pipeline.router.limits.max_chunk_bytes:
            self.intake.put(sensor_id, Received(t_rx_ns, "serial", sensor_id, b"", size=len(chunk)))
            return
        self.intake.put(sensor_id, Received(t_rx_ns, "serial", sensor_id, chunk))

    # --- health ------------------------------------------------------------------------
    def _health(self) -> list[str]:
        if not self.ready:
            # Warming up (a first start compiles the kernels: about a minute on 2 cores)
            # is progress, not a hang: a liveness probe must not restart it in a loop.
            # /readyz says "warming up" meanwhile.
            return []
        stalled = time.monotonic() - self._last_turn
        return (
            [f"engine loop has not turned for {stalled:.1f} s"] if stalled > HEALTH_STALL_S else []
        )

    def _readiness(self) -> list[str]:
        problems = self._health()
        if not self.ready:
            problems.append("detectors still warming up")
        for sid, link in self.serial_links.items():
            if link.state != "open":
                problems.append(
                    f"serial {sid}: {link.port} {link.state} ({link.last_error or 'opening'})"
                )
        if self.mqtt is not None and not self.mqtt.connected.is_set():
            problems.append(
                f"mqtt: not connected to {self.mqtt.settings.host}:{self.mqtt.settings.port} ({self.mqtt.last_error or 'connecting'})"
            )
        return problems

    def _warm_up(self) -> None:
        """Has every detector that has one compile (or load from Numba's cache) its kernels
        now, so the first live messages do not wait for it."""
        for det in self.pipeline.detectors:
            warm = getattr(det, "warm_up", None)
            if warm is not None:
                t0 = time.monotonic()
                warm()
                log.debug(
                    "%s warmed up in %.2f s", getattr(det, "name", det), time.monotonic() - t0
                )

    # --- the loop ------------------------------------------------------------------------
    def run(self, max_seconds: float | None = None) -> int:
        """Runs until stopped (SIGTERM/SIGINT, ``stop_event``) or ``max_seconds`` pass."""
        self.http.start()
        if self.mqtt is not None:
            self.mqtt.start()
        for link in self.serial_links.values():
            link.start()
        self._warm_up()  # compile Numba kernels before claiming readiness
        # What exists now (modules, compiled kernels, configuration) lives as long as the
        # process: move it out of the collector's sight. Left in, every full collection
        # walked it all, stopping every thread for 90-130 ms several times a minute at
        # 5,000 msg/s (benchmarks/live_latency.py: p99 ~140 ms -> ~60-75 ms).
        gc.collect()
        gc.freeze()
        self._last_turn = time.monotonic()
        self.ready = True
        self._flush_pending()
        sd_notify("READY=1")
        log.info(
            "rampart %s running: %d sensors, status on %s",
            self.site.site.id,
            len(self.site.sensors),
            self.http.httpd.server_address,
        )
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        last_watchdog = last_snapshot = 0.0
        while not self.stop_event.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            batch = self.intake.take(512, 0.1)
            batch.sort(key=lambda r: r.t_rx_ns)  # round-robin across sources; receive order within
            for item in batch:
                try:
                    # An oversized payload (size set) was dropped at intake: not recorded.
                    if self.recorder is not None and item.size is None:
                        self.recorder.append(
                            item.t_rx_ns, item.transport, item.channel, item.payload
                        )
                    if self.process:
                        self.pipeline.receive(
                            item.t_rx_ns, item.transport, item.channel, item.payload, item.size
                        )
                except Exception as exc:  # receive guards itself; this is the rest (the recorder)
                    where = f"service, {item.transport} {item.channel!r}"
                    self.pipeline.internal_error("engine", where, exc, item.t_rx_ns)
            # Advance data time with the wall clock even when nothing arrives.
            if self.process:
                self.pipeline.advance(time.time_ns())  # guarded: a detector's tick may raise
            now = time.monotonic()
            self._last_turn = now
            if now - last_snapshot >= 1.0:
                self._take_snapshot()
                last_snapshot = now
            self._audit_turn(now)
            if now - last_watchdog >= 5.0:
                sd_notify("WATCHDOG=1")
                last_watchdog = now
        self.shutdown()
        return 0

    def shutdown(self) -> None:
        sd_notify("STOPPING=1")
        if self.mqtt is not None:
            self.mqtt.stop()
        for link in self.serial_links.values():
            link.stop()
        if self.process:
            self.pipeline.finish()
            if self.head_every_s > 0:
                self._publish_head(final=True)  # what the SOC can later hold the log to
        if self.recorder is not None:
            self.recorder.close()

        for sink in self.sinks:
            sink.close()
        self.http.stop()

    def reload(self) -> None:
        """SIGHUP: validate the file; swap to it only when it is good, else keep running as is."""
        old_sha = self.pipeline.config_sha256
        try:
            # Logged, alerted and audited inside when refused; nothing may escape a reload.
            new_site = self._load_trusted(self.config_path, at_start=False)
            new_pipeline = self._build_pipeline(new_site)
        except Exception as exc:
            if not isinstance(exc, ConfigError):
                log.exception("reload failed")
                self._pending_findings.append(
                    _refusal(
                        ConfigRefused(
                            str(self.config_path),
                            [f"internal error: {type(exc).__name__}: {exc}"],
                            "internal_error",
                        )
                    )
                )
                log.error("reload refused, keeping the running configuration %s", old_sha[:12])
            self._flush_pending()
            return
        old_filters = self.pipeline.router.subscriptions()
        self.pipeline.finish()
        self.site = new_site
        self.pipeline = new_pipeline
        self._warm_up()  # a new sensor's kernels: loaded (or compiled) now, not on its first data
        # The old pipeline was frozen with the start-up heap (run); it holds reference
        # cycles, so only the collector can free it: thaw, collect, freeze again (one
        # full collection, ~0.1 s, once per reload).
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        if self.mqtt is not None:
            new_filters = self.pipeline.router.subscriptions()
            if new_filters != old_filters:
                self.mqtt.client.unsubscribe(old_filters)
                self.mqtt.filters = new_filters
                self.mqtt.client.subscribe([(f, 1) for f in new_filters])
        self._audit_config("config_load", new_site)
        if self.pipeline.config_sha256 != old_sha:
            self._service_finding(
                "config",
                "config_changed",
                "medium",
                f"Configuration changed: {old_sha[:12]} -> {self.pipeline.config_sha256[:12]}",
                {
                    "old_sha256": old_sha,
                    "new_sha256": self.pipeline.config_sha256,
                    "signers": list(self._accepted.valid_keys) if self._accepted else [],
                    "serial": new_site.serial,
                },
            )
        self._flush_pending()  # keyring changes found by this load
        self._take_snapshot()  # /metrics shows the configuration in force from now on
        _warn_unknown_keys(new_site)
        log.info("configuration reloaded from %s", self.config_path)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload_requested.set())

    def _take_snapshot(self) -> None:
        pipe = self.pipeline
        engine = pipe.engine
        lag = (
            (time.time_ns() - engine.watermark_ns) / NS if engine.watermark_ns is not None else 0.0
        )
        data = {
            "delivered": dict(engine.delivered_by_sensor),
            "rejected": dict(pipe.ledger.counts),
            "received": dict(self.intake.received),
            "dropped": dict(self.intake.dropped),
            "ignored": dict(pipe.router.ignored),
            "depth": self.intake.depth(),
            "engine_lag_s": lag,
            "pending": engine.pending,
            "alerts": self.alerts_out,
            "decode_s": pipe.decode_s,
            "engine_s": pipe.engine_s,
            "mqtt_connected": bool(self.mqtt and self.mqtt.connected.is_set()),
            "mqtt_connects": self.mqtt.connects if self.mqtt else 0,
            "config_sha256": pipe.config_sha256,
            "serial": {
                sid: (link.state == "open", link.reconnects)
                for sid, link in self.serial_links.items()
            },
            "audit_seq": self.audit.seq if self.audit else 0,
            "audit_write_errors": self.audit.write_errors if self.audit else 0,
        }
        with self._snapshot.lock:
            self._snapshot.data = data


class _Collector:
    """Prometheus collector over the service's last snapshot (scrapes never touch live state)."""

    def __init__(self, service: Service):
        self.service = service

    def collect(self):
        with self.service._snapshot.lock:
            d = dict(self.service._snapshot.data)
        if not d:
            return
        c = CounterMetricFamily(
            "rampart_records", "Decoded records delivered to detectors", labels=["sensor"]
        )
        for sensor, n in sorted(d["delivered"].items()):
            c.add_metric([sensor], n)
        yield c
        c = CounterMetricFamily("rampart_rejected", "Rejected inputs", labels=["source", "reason"])
        for (source, reason), n in sorted(d["rejected"].items()):
            c.add_metric([source, reason], n)
        yield c
        c = CounterMetricFamily(
            "rampart_received", "Messages received per source", labels=["source"]
        )
        for source, n in sorted(d["received"].items()):
            c.add_metric([source], n)
        yield c
        c = CounterMetricFamily(
            "rampart_ignored", "Messages of streams Rampart does not use", labels=["sensor"]
        )
        for sensor, n in sorted(d["ignored"].items()):
            c.add_metric([sensor], n)
        yield c
        c = CounterMetricFamily(
            "rampart_intake_dropped", "Messages dropped by a full intake queue", labels=["source"]
        )
        for source, n in sorted(d["dropped"].items()):
            c.add_metric([source], n)
        yield c
        g = GaugeMetricFamily(
            "rampart_intake_queue_depth", "Messages waiting per source", labels=["source"]
        )
        for source, n in sorted(d["depth"].items()):
            g.add_metric([source], n)
        yield g
        yield GaugeMetricFamily(
            "rampart_engine_lag_seconds",
            "Wall clock minus the engine watermark",
            value=d["engine_lag_s"],
        )
        yield GaugeMetricFamily(
            "rampart_engine_pending", "Records waiting in the lateness window", value=d["pending"]
        )
        yield CounterMetricFamily("rampart_alerts", "Alerts emitted", value=d["alerts"])
        yield CounterMetricFamily(
            "rampart_decode_seconds", "Time spent decoding", value=d["decode_s"]
        )
        yield CounterMetricFamily(
            "rampart_engine_seconds", "Time spent in the engine and detectors", value=d["engine_s"]
        )
        up = GaugeMetricFamily(
            "rampart_serial_open", "1 while a serial port is open", labels=["sensor"]
        )
        reopen = CounterMetricFamily(
            "rampart_serial_reconnects", "Serial port reopens", labels=["sensor"]
        )
        for sid, (is_open, reconnects) in sorted(d["serial"].items()):
            up.add_metric([sid], int(is_open))
            reopen.add_metric([sid], reconnects)
        yield up
        yield reopen
        info = GaugeMetricFamily(
            "rampart_config_info", "The configuration in force", labels=["sha256"]
        )
        info.add_metric([d["config_sha256"]], 1)
        yield info
        yield GaugeMetricFamily(
            "rampart_audit_records", "Records in the audit chain", value=d["audit_seq"]
        )
        yield CounterMetricFamily(
            "rampart_audit_write_errors",
            "Audit records that could not be written (disk full, I/O error)",
            value=d["audit_write_errors"],
        )
        yield GaugeMetricFamily(
            "rampart_mqtt_connected",
            "1 when connected to the broker",
            value=int(d["mqtt_connected"]),
        )
        yield CounterMetricFamily(
            "rampart_mqtt_connects", "Successful broker connections", value=d["mqtt_connects"]
        )
