"""The ``[[sinks]]``, ``[outbox]`` and ``[state]`` sections: validated, then built.

Every key has a documented default (docs/soc.md, "Sink configuration"); a bad
or unknown key is reported with its path (``sinks[2].ca_file: ...``), all
problems at once. Paths are relative to the configuration file's directory.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.sinks.base import Sink, SinkConfigError
from drivers.sinks.delivery import DeliveryService, RetryPolicy
from drivers.sinks.jsonl import JsonlFileSink
from drivers.sinks.mqtt import MqttSettings, MqttSink
from drivers.sinks.outbox import Outbox, OutboxPolicy
from drivers.sinks.syslog import FACILITIES, SyslogSettings, SyslogSink
from drivers.sinks.webhook import SecretError, WebhookSettings, WebhookSink, load_secret
from fusion.alerts import Alert
from fusion.config import SiteConfig
from fusion.incidents import Acknowledgement

SINK_TYPES = ("jsonl", "mqtt", "syslog", "webhook")
DEFAULT_STATE_DIR = "/var/lib/rampart"
COMMON = {"type", "name", "retry_min_s", "retry_max_s"}
KEYS = {
    "jsonl": {"path", "fsync"},
    "mqtt": {
        "host",
        "port",
        "tls",
        "ca_file",
        "cert_file",
        "key_file",
        "verify_hostname",
        "client_id",
        "topic",
        "qos",
        "acks_topic",
        "username",
        "password_file",
        "keepalive_s",
        "session_expiry_s",
        "max_inflight",
        "confirm_timeout_s",
    },
    "syslog": {
        "host",
        "port",
        "tls",
        "ca_file",
        "cert_file",
        "key_file",
        "verify_hostname",
        "facility",
        "hostname",
        "app_name",
        "sd_id",
        "confirm_timeout_s",
        "settle_s",
    },
    "webhook": {
        "url",
        "secret_file",
        "ca_file",
        "cert_file",
        "key_file",
        "verify_hostname",
        "timeout_s",
        "headers",
    },
}
OUTBOX_KEYS = {"path", "max_alerts", "max_mb", "backlog_alert_s", "drain_timeout_s"}


@dataclass(frozen=True, slots=True)
class SinkSpec:
    type: str
    name: str
    settings: Any  # JsonlSpec path, MqttSettings, SyslogSettings, WebhookSettings
    retry: RetryPolicy
    fsync: bool = True


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    sinks: tuple[SinkSpec, ...]
    state_dir: Path
    state_dir_configured: bool
    outbox_path: Path
    policy: OutboxPolicy = field(default_factory=OutboxPolicy)
    backlog_alert_s: float = 30.0
    drain_timeout_s: float = 30.0


class _Checker:
    def __init__(self, base: Path):
        self.base = base
        self.problems: list[str] = []

    def bad(self, key: str, msg: str) -> None:
        self.problems.append(f"{key}: {msg}")

    def string(self, sec: dict, where: str, key: str, default: str | None = None, required=False):
        v = sec.get(key, default)
        if v is None:
            if required:
                self.bad(f"{where}.{key}", "required")
            return None
        if not isinstance(v, str) or not v:
            self.bad(f"{where}.{key}", "must be a non-empty string")
            return default
        return v

    def number(
        self, sec: dict, where: str, key: str, default: float, lo: float, hi: float
    ) -> float:
        v = sec.get(key, default)
        if not isinstance(v, int | float) or isinstance(v, bool) or not lo <= v <= hi:
            self.bad(f"{where}.{key}", f"must be a number in [{lo:g}, {hi:g}]")
            return default
        return float(v)

    def integer(self, sec: dict, where: str, key: str, default: int, lo: int, hi: int) -> int:
        v = sec.get(key, default)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            self.bad(f"{where}.{key}", f"must be an integer in [{lo}, {hi}]")
            return default
        return v

    def boolean(self, sec: dict, where: str, key: str, default: bool) -> bool:
        v = sec.get(key, default)
        if not isinstance(v, bool):
            self.bad(f"{where}.{key}", "must be true or false")
            return default
        return v

    def path(self, sec: dict, where: str, key: str, must_exist: bool = True) -> Path | None:
        v = self.string(sec, where, key)
        if v is None:
            return None
        p = Path(v)
        p = p if p.is_absolute() else self.base / p
        if must_exist and not p.is_file():
            self.bad(f"{where}.{key}", f"no such file: {p}")
        return p

    def unknown(self, sec: dict, where: str, known: set[str]) -> None:
        for key in sorted(set(sec) - known):
            self.bad(f"{where}.{key}", f"unknown key (known: {', '.join(sorted(known))})")


def parse_delivery(service: SiteConfig, base: Path) -> DeliveryConfig:
    """Reads the delivery sections of a service configuration; SinkConfigError lists every problem."""
    c = _Checker(base)
    raw = service.raw
    state = raw.get("state", {})
    if not isinstance(state, dict):
        c.bad("state", "must be a table")
        state = {}
    sd = c.string(state, "state", "dir", DEFAULT_STATE_DIR)
    state_dir = Path(sd or DEFAULT_STATE_DIR)
    state_dir = state_dir if state_dir.is_absolute() else base / state_dir
    outbox = raw.get("outbox", {})
    if not isinstance(outbox, dict):
        c.bad("outbox", "must be a table")
        outbox = {}
    c.unknown(outbox, "outbox", OUTBOX_KEYS)
    op = c.string(outbox, "outbox", "path")
    outbox_path = state_dir / "outbox.sqlite" if op is None else Path(op)
    outbox_path = outbox_path if outbox_path.is_absolute() else base / outbox_path
    policy = OutboxPolicy(
        c.integer(outbox, "outbox", "max_alerts", 100_000, 100, 10**9),
        c.number(outbox, "outbox", "max_mb", 256.0, 1, 10**6),
    )
    backlog_s = c.number(outbox, "outbox", "backlog_alert_s", 30.0, 1, 86400)
    drain_s = c.number(outbox, "outbox", "drain_timeout_s", 30.0, 0, 86400)

    mqtt = raw.get("mqtt", {})
    mqtt = mqtt if isinstance(mqtt, dict) else {}
    site = service.site.id
    sinks_raw = raw.get("sinks", [])
    if not isinstance(sinks_raw, list) or not all(isinstance(s, dict) for s in sinks_raw):
        c.bad("sinks", "must be an array of tables ([[sinks]])")
        sinks_raw = []
    specs: list[SinkSpec] = []
    n_mqtt = sum(1 for s in sinks_raw if s.get("type") == "mqtt")
    for i, sec in enumerate(sinks_raw):
        where = f"sinks[{i}]"
        kind = sec.get("type")
        if kind not in SINK_TYPES:
            c.bad(f"{where}.type", f"{kind!r} is not one of {', '.join(SINK_TYPES)}")
            continue
        c.unknown(sec, where, COMMON | KEYS[kind])
        retry = RetryPolicy(
            c.number(sec, where, "retry_min_s", 0.5, 0.05, 3600),
            c.number(sec, where, "retry_max_s", 10.0, 0.05, 86400),
        )
        if retry.max_s < retry.min_s:
            c.bad(f"{where}.retry_max_s", "must be >= retry_min_s")
        spec = _sink_spec(c, sec, where, kind, retry, mqtt, site, n_mqtt)
        if spec is not None:
            specs.append(spec)
    names = [s.name for s in specs]
    for i, name in enumerate(names):
        if name in names[:i]:
            c.bad(f"sinks[{i}].name", f"two sinks are named {name!r}; give each a unique name")
    if c.problems:
        raise SinkConfigError(c.problems)
    return DeliveryConfig(
        tuple(specs), state_dir, "dir" in state, outbox_path, policy, backlog_s, drain_s
    )


def _sink_spec(c: _Checker, sec, where, kind, retry, mqtt, site, n_mqtt) -> SinkSpec | None:
    name = c.string(sec, where, "name")
    if kind == "jsonl":
        p = c.path(sec, where, "path", must_exist=False) or c.base / "alerts.jsonl"
        fsync = c.boolean(sec, where, "fsync", True)
        return SinkSpec(kind, name or f"jsonl:{p}", p, retry, fsync)
    tls_default = bool(mqtt.get("tls", False)) if kind == "mqtt" else True
    tls = c.boolean(sec, where, "tls", tls_default)
    verify = c.boolean(sec, where, "verify_hostname", True)

    def tls_files(fallback: dict) -> tuple[Path | None, Path | None, Path | None]:
        files = []
        for key in ("ca_file", "cert_file", "key_file"):
            if key in sec:
                files.append(c.path(sec, where, key))
            elif key in fallback:
                files.append(c.path(fallback, "mqtt", key))
            else:
                files.append(None)
        if (files[1] is None) != (files[2] is None):
            c.bad(f"{where}.cert_file", "a client certificate needs both cert_file and key_file")
        return files[0], files[1], files[2]

    if kind == "mqtt":
        host = c.string(sec, where, "host", mqtt.get("host", "127.0.0.1"))
        port = c.integer(sec, where, "port", mqtt.get("port", 8883 if tls else 1883), 1, 65535)
        ca, cert, key = tls_files(mqtt)
        topic = c.string(sec, where, "topic", f"rampart/{site}/alerts")
        if topic and any(ch in topic for ch in "+#"):
            c.bad(f"{where}.topic", "a publish topic cannot hold the wildcards + or #")
        qos = c.integer(sec, where, "qos", 1, 1, 2)
        base_id = mqtt.get("client_id", f"rampart-{site}")
        if "client_id" not in sec and n_mqtt > 1:
            c.bad(f"{where}.client_id", "required when there are several mqtt sinks")
        client_id = c.string(sec, where, "client_id", f"{base_id}-alerts")
        acks = sec.get("acks_topic", f"rampart/{site}/acks")
        if not isinstance(acks, str):
            c.bad(f"{where}.acks_topic", 'must be a topic (or "" to not listen for acks)')
            acks = None
        username = c.string(sec, where, "username", mqtt.get("username"))
        password = None
        pw_path = c.path(sec, where, "password_file") if "password_file" in sec else None
        if pw_path is None and "password_file" in mqtt:
            pw_path = c.path(mqtt, "mqtt", "password_file")
        if pw_path is not None and pw_path.is_file():
            password = pw_path.read_text(encoding="utf-8").strip()
        settings = MqttSettings(
            host=host or "127.0.0.1",
            port=port,
            topic=topic or f"rampart/{site}/alerts",
            qos=qos,
            client_id=client_id or f"{base_id}-alerts",
            tls=tls,
            ca_file=ca,
            cert_file=cert,
            key_file=key,
            verify_hostname=verify,
            username=username,
            password=password,
            acks_topic=acks or None,
            keepalive_s=c.integer(sec, where, "keepalive_s", 30, 5, 3600),
            session_expiry_s=c.integer(sec, where, "session_expiry_s", 86400, 0, 2**32 - 1),
            max_inflight=c.integer(sec, where, "max_inflight", 100, 1, 65535),
            confirm_timeout_s=c.number(sec, where, "confirm_timeout_s", 60.0, 1, 3600),
            retry_min_s=retry.min_s,
            retry_max_s=retry.max_s,
        )
        return SinkSpec(
            kind, name or f"mqtt:{settings.host}:{port}/{settings.topic}", settings, retry
        )
    if kind == "syslog":
        host = c.string(sec, where, "host", required=True)
        port = c.integer(sec, where, "port", 6514 if tls else 514, 1, 65535)
        ca, cert, key = tls_files({})
        facility = c.string(sec, where, "facility", "local0")
        if facility not in FACILITIES:
            c.bad(f"{where}.facility", f"must be one of {', '.join(FACILITIES)}")
            facility = "local0"
        settings = SyslogSettings(
            host=host or "",
            port=port,
            tls=tls,
            ca_file=ca,
            cert_file=cert,
            key_file=key,
            verify_hostname=verify,
            facility=facility or "local0",
            hostname=c.string(sec, where, "hostname", socket.gethostname()) or "-",
            app_name=c.string(sec, where, "app_name", "rampart") or "rampart",
            sd_id=c.string(sec, where, "sd_id", "rampart@32473") or "rampart@32473",
            confirm_timeout_s=c.number(sec, where, "confirm_timeout_s", 10.0, 0.1, 3600),
            settle_s=c.number(sec, where, "settle_s", 0.2, 0, 60),
        )
        return SinkSpec(kind, name or f"syslog:{host}:{port}", settings, retry)
    # webhook
    url = c.string(sec, where, "url", required=True)
    if url is not None and not url.startswith("https://"):
        c.bad(f"{where}.url", "must be an https:// URL")
    secret_path = c.path(sec, where, "secret_file")
    if secret_path is None and "secret_file" not in sec:
        c.bad(f"{where}.secret_file", "required (a whsec_… Standard Webhooks secret)")
    key_bytes = b""
    if secret_path is not None and secret_path.is_file():
        try:
            key_bytes = load_secret(secret_path.read_text(encoding="utf-8"))
        except (SecretError, UnicodeDecodeError) as exc:
            c.bad(f"{where}.secret_file", f"{secret_path}: {exc}")
    ca, cert, key = tls_files({})
    headers = sec.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        c.bad(f"{where}.headers", "must be a table of header = value strings")
        headers = {}
    settings = WebhookSettings(
        url=url or "https://invalid/",
        key=key_bytes,
        ca_file=ca,
        cert_file=cert,
        key_file=key,
        verify_hostname=verify,
        timeout_s=c.number(sec, where, "timeout_s", 10.0, 0.1, 300),
        headers=tuple(sorted(headers.items())),
    )
    return SinkSpec(kind, name or f"webhook:{url}", settings, retry)


def make_sink(spec: SinkSpec, on_ack: Callable[[Acknowledgement], None] | None) -> Sink:
    if spec.type == "jsonl":
        return JsonlFileSink(spec.settings, name=spec.name, fsync=spec.fsync)
    if spec.type == "mqtt":
        return MqttSink(spec.settings, name=spec.name, on_ack=on_ack)
    if spec.type == "syslog":
        return SyslogSink(spec.settings, name=spec.name)
    return WebhookSink(spec.settings, name=spec.name)


def build_delivery(
    service: SiteConfig,
    base: Path,
    outbox_path: Path | None = None,
    on_ack: Callable[[Acknowledgement], None] | None = None,
    config: DeliveryConfig | None = None,
    on_own_alert: Callable[[Alert], None] | None = None,
) -> DeliveryService:
    """Opens the outbox and the configured sinks; the service is returned started.
    ``on_own_alert``: told of delivery's own alerts (delivery_backlog), e.g. an audit log."""
    cfg = config or parse_delivery(service, base)
    path = outbox_path or cfg.outbox_path
    outbox = Outbox(path, [s.name for s in cfg.sinks], cfg.policy)
    holder: list[DeliveryService] = []

    def ack(a: Acknowledgement) -> None:  # sinks are made before the service exists
        if holder:
            holder[0].acknowledge(a)

    try:
        sinks = [make_sink(s, ack) for s in cfg.sinks]
    except BaseException:
        outbox.close()
        raise
    service_ = DeliveryService(
        outbox,
        sinks,
        service.site.id,
        retry={s.name: s.retry for s in cfg.sinks},
        backlog_alert_s=cfg.backlog_alert_s,
        on_ack=on_ack,
        on_own_alert=on_own_alert,
    )
    holder.append(service_)
    return service_.start()


class ConfiguredDelivery:
    """The configured sinks behind the durable outbox, as a sink of the pipeline (``send``/``close``).

    The service (``replay=False``) keeps its outbox at ``[outbox] path``, by default
    ``{state.dir}/outbox.sqlite``, and on shutdown drains for at most
    ``shutdown_drain_s``: what is left is delivered after the restart.

    ``rampart replay --deliver`` (``replay=True``) uses the same outbox when the
    configuration names ``[state] dir`` or ``[outbox] path``; otherwise a temporary
    one, removed once everything is delivered (a replay can always be run again).
    It drains for at most ``[outbox] drain_timeout_s`` before it returns.
    """

    def __init__(
        self,
        service: SiteConfig,
        base: Path,
        replay: bool = False,
        on_ack: Callable[[Acknowledgement], None] | None = None,
        shutdown_drain_s: float = 5.0,
        on_own_alert: Callable[[Alert], None] | None = None,
    ):
        import tempfile

        self.config = parse_delivery(service, base)
        self.replay = replay
        self.temp_dir: Path | None = None
        path = self.config.outbox_path
        if replay and not (self.config.state_dir_configured or "path" in service.section("outbox")):
            self.temp_dir = Path(tempfile.mkdtemp(prefix="rampart-replay-outbox-"))
            path = self.temp_dir / "outbox.sqlite"
        self.outbox_path = path
        self.drain_s = self.config.drain_timeout_s if replay else shutdown_drain_s
        self.delivery = build_delivery(
            service,
            base,
            outbox_path=path,
            on_ack=on_ack,
            config=self.config,
            on_own_alert=on_own_alert,
        )
        self.drained: bool | None = None

    def send(self, alert) -> None:
        self.delivery.send(alert)

    def close(self) -> None:
        if self.drained is not None:
            return
        self.drained = self.delivery.close(self.drain_s)
        if self.drained and self.temp_dir is not None:
            import shutil

            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def summary(self) -> str:
        names = ", ".join(s.name for s in self.delivery.sinks)
        lines = [
            f"delivered {self.delivery.sent} alerts to {len(self.delivery.sinks)} sinks ({names})"
        ]
        for st in self.delivery.status():
            left = self.delivery.undelivered.get(st.name, 0)
            if left:
                lines[0] = f"delivery incomplete after {self.drain_s:g} s"
                lines.append(
                    f"  {st.name}: {left} alerts undelivered, kept in {self.outbox_path}"
                    + (f" (last error: {st.last_error})" if st.last_error else "")
                )
        return "\n".join(lines)
