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
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from drivers.audit_log import AuditLog, AuditSink
from drivers.config_trust import load_keyring
from drivers.config_trust import verify as verify_config
from drivers.mqtt_source import MqttSettings, MqttSource
from drivers.recording import RecordingWriter
from drivers.serial_link import SerialLink
from drivers.status_http import StatusServer
from drivers.ublox_config import configure as configure_receiver
from fusion.alerts import Alert
from fusion.cli.intake import Intake, Received
from fusion.cli.pipeline import Pipeline
from fusion.config import ConfigError, SiteConfig, load_config
from fusion.detector import Finding

log = logging.getLogger("rampart.service")

NS = 1_000_000_000
HEALTH_STALL_S = 10.0  # the engine loop must turn at least this often to be healthy
DEFAULT_BAUD = {"gnss": 9600, "power": 921600}  # when a serial sensor names none


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
    """What a configuration must carry: signatures by ``min_signatures`` keys of ``keyring``."""

    keyring: Path
    min_signatures: int = 2

    def check(self, path: Path):
        return verify_config(path, load_keyring(self.keyring), self.min_signatures)


def _refusal(path: Path, verdict) -> Finding:
    why = verdict.problems[-1] if verdict.problems else "not signed"
    return Finding(
        "config",
        "update",
        "config_refused",
        "high",
        1.0,
        (),
        time.time_ns(),
        f"Configuration {path} refused: {why}",
        {
            "path": str(path),
            "sha256": verdict.sha256,
            "problems": list(verdict.problems),
            "valid_signers": list(verdict.valid_keys),
        },
    )


class _Snapshot:
    """Figures copied by the engine thread once a second, read by /metrics scrapes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict = {}


class Service:
    def __init__(
        self,
        config_path: Path,
        sinks: list | None = None,
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
        self.site = self._load_trusted(self.config_path, at_start=True)
        self.sinks = list(sinks or [])
        self.process = process
        self.recorder = (
            RecordingWriter(record_dir, self.site.text) if record_dir is not None else None
        )
        self.alerts_out = 0
        self.intake = Intake(
            per_source=int(self.site.section("intake").get("queue_per_source", 2000))
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
        self.state_dir = self._last_good_path(self.site).parent
        self.audit = AuditLog(self.state_dir / "audit.log") if process else None
        if self.audit is not None:
            self.sinks.insert(0, AuditSink(self.audit))  # recorded before any send
        self.head_every_s = float(self.site.section("audit").get("head_every_s", 300.0))
        self._last_head = 0.0
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
        """The configuration at ``path`` if it is valid and carries enough trusted signatures.

        At start, a refused file falls back to the last configuration this box
        accepted (kept in the state directory), and the refusal is alerted;
        with no such fallback the service does not start.
        """
        site = load_config(path)  # ConfigError propagates: an invalid file is refused as such
        if self.trust is None:
            return site
        verdict = self.trust.check(path)
        if verdict.ok:
            self._accepted = verdict
            self._keep_last_good(path, site)
            return site
        self._pending_findings.append(_refusal(path, verdict))
        for problem in verdict.problems:
            log.error("configuration refused: %s: %s", path, problem)
        fallback = self._last_good_path(site)
        if at_start and fallback.is_file() and self.trust.check(fallback).ok:
            log.error("running the last accepted configuration %s instead", fallback)
            self._accepted = self.trust.check(fallback)
            return load_config(fallback)
        raise ConfigError(str(path), [f"refused: {p}" for p in verdict.problems])

    def _last_good_path(self, site: SiteConfig) -> Path:
        state = Path(site.section("state").get("dir", "/var/lib/rampart"))
        if not state.is_absolute():
            state = self.config_path.parent / state
        return state / "last-accepted.toml"

    def _keep_last_good(self, path: Path, site: SiteConfig) -> None:
        try:
            dest = self._last_good_path(site)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(Path(path).read_bytes())
            Path(f"{dest}.sig").write_bytes(Path(f"{path}.sig").read_bytes())
        except OSError as exc:
            log.warning("could not keep a copy of the accepted configuration: %s", exc)

    def _audit_config(self, rtype: str, site: SiteConfig) -> None:
        if self.audit is None:
            return
        data = {
            "path": str(self.config_path),
            "sha256": hashlib.sha256(site.text.encode("utf-8")).hexdigest(),
            "signers": list(self._accepted.valid_keys) if self._accepted else [],
        }
        self.audit.append(rtype, time.time_ns(), data)

    def _service_finding(
        self, key: str, kind: str, severity: str, summary: str, details: dict
    ) -> None:
        now = time.time_ns()
        finding = Finding(key, "update", kind, severity, 1.0, (), now, summary, details)
        self.pipeline.raise_finding("service", finding, now)

    def _publish_head(self) -> None:
        """The audit chain's head goes to the SOC, so history it has seen cannot be rewritten."""
        if self.audit is not None:
            self._service_finding(
                "audit-head",
                "audit_head",
                "info",
                f"Audit log head: record {self.audit.seq}",
                {"seq": self.audit.seq, "hash": self.audit.head},
            )

    def _flush_pending(self) -> None:
        for finding in self._pending_findings:
            self.pipeline.raise_finding("service", finding, time.time_ns())
        self._pending_findings.clear()

    def _on_mqtt(self, t_rx_ns: int, topic: str, payload: bytes) -> None:
        self.intake.put(topic, Received(t_rx_ns, "mqtt", topic, payload))

    def on_serial(self, sensor_id: str, t_rx_ns: int, chunk: bytes) -> None:
        """For serial readers: one chunk read from a sensor's port."""
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
                if self.recorder is not None:
                    self.recorder.append(item.t_rx_ns, item.transport, item.channel, item.payload)
                if self.process:
                    self.pipeline.receive(item.t_rx_ns, item.transport, item.channel, item.payload)
            # Advance data time with the wall clock even when nothing arrives.
            if self.process:
                self.pipeline.engine.advance(time.time_ns())
            now = time.monotonic()
            self._last_turn = now
            if now - last_snapshot >= 1.0:
                self._take_snapshot()
                last_snapshot = now
            if self.head_every_s > 0 and now - self._last_head >= self.head_every_s:
                self._publish_head()
                self._last_head = now
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
        if self.recorder is not None:
            self.recorder.close()

        for sink in self.sinks:
            sink.close()
        self.http.stop()

    def reload(self) -> None:
        """SIGHUP: validate the file; swap to it only when it is good, else keep running as is."""
        old_sha = self.pipeline.config_sha256
        try:
            new_site = self._load_trusted(self.config_path, at_start=False)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error(
                    "reload refused, keeping the running configuration: %s: %s", exc.source, problem
                )
            if self.audit is not None:
                self.audit.append(
                    "config_refused",
                    time.time_ns(),
                    {"path": str(self.config_path), "problems": exc.problems},
                )
            self._flush_pending()
            return
        old_filters = self.pipeline.router.subscriptions()
        self.pipeline.finish()
        self.site = new_site
        self.pipeline = self._build_pipeline(new_site)
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
                },
            )
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
        yield GaugeMetricFamily(
            "rampart_mqtt_connected",
            "1 when connected to the broker",
            value=int(d["mqtt_connected"]),
        )
        yield CounterMetricFamily(
            "rampart_mqtt_connects", "Successful broker connections", value=d["mqtt_connects"]
        )
