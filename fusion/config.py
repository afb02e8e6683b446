"""Site configuration (contract §1, §5): parsing and validation.

A configuration is parsed once into frozen dataclasses. Problems are collected,
not raised one at a time, so that ``rampart check-config`` can list them all;
each names the key path and, where it can be found, the line in the file.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SENSOR_KINDS = ("radar", "rf", "gnss", "power", "switchgear")
TRANSPORTS = ("mqtt", "serial")

# How long a sensor may stay silent (or send only garbage) before supervision
# raises sensor_fault. Switchgear controllers only speak when something
# happens, so they have no heartbeat expectation unless one is configured.
DEFAULT_FAULT_AFTER_S = {"radar": 5.0, "rf": 10.0, "gnss": 5.0, "power": 2.0, "switchgear": 0.0}

DEFAULT_LATENESS_S = 1.0

# Source labels of rejections that come from no configured sensor (topics or ports
# nobody owns, the engine itself); no sensor may be called so.
RESERVED_SOURCES = ("unknown", "engine", "(other)")

# Keys of the sections read directly by parse_config and the service. The other
# sections of KNOWN_SECTIONS are checked, unknown keys included, by their own
# settings parsers (drone, gnss, power_transients, incidents, correlation,
# integrity, limits, audit, outbox, sinks).
SECTION_KEYS: dict[str, frozenset[str]] = {
    "site": frozenset(["id", "lat", "lon", "alt_m"]),
    "zones": frozenset(["name", "polygon", "alert_radius_m"]),
    "sensors": frozenset(
        [
            "id",
            "kind",
            "transport",
            "lat",
            "lon",
            "alt_m",
            "topic",
            "port",
            "baud",
            "feed",
            "board",
            "channels",
            "nominal_hz",
            "nominal_v",
            "mobile",
            "fault_after_s",
        ]
    ),
    "engine": frozenset({"lateness_s"}),
    "config": frozenset({"serial"}),
    "supervision": frozenset({"max_clock_skew_s"}),
    "intake": frozenset({"queue_per_source"}),
    "http": frozenset({"listen"}),
    "state": frozenset({"dir"}),
    "mqtt": frozenset(
        [
            "host",
            "port",
            "client_id",
            "tls",
            "ca_file",
            "cert_file",
            "key_file",
            "username",
            "password",
            "keepalive_s",
            "session_expiry_s",
        ]
    ),
}
KNOWN_SECTIONS = frozenset(SECTION_KEYS) | {
    "drone",
    "gnss",
    "power_transients",
    "incidents",
    "correlation",
    "integrity",
    "limits",
    "audit",
    "outbox",
    "sinks",
}


class ConfigError(ValueError):
    """A configuration that cannot be used; ``problems`` has one line per fault."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    lat: float
    lon: float
    alt_m: float


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    polygon: tuple[tuple[float, float], ...]  # (lat, lon) vertices
    alert_radius_m: float


@dataclass(frozen=True, slots=True)
class Sensor:
    id: str
    kind: str
    transport: str
    lat: float | None = None
    lon: float | None = None
    alt_m: float | None = None
    topic: str | None = None
    port: str | None = None
    baud: int | None = None
    feed: str | None = None
    board: int | None = None
    channels: tuple[str, ...] = ("va", "vb", "vc")
    nominal_hz: float = 50.0
    nominal_v: float = 230.0
    mobile: bool = False
    fault_after_s: float = 0.0  # 0: no heartbeat expectation


@dataclass(frozen=True, slots=True)
class EngineSettings:
    lateness_s: float = DEFAULT_LATENESS_S
    dedup_window: int = 4096  # recent record keys remembered per sensor


@dataclass(frozen=True, slots=True)
class SiteConfig:
    site: Site
    zones: tuple[Zone, ...]
    sensors: tuple[Sensor, ...]
    engine: EngineSettings = EngineSettings()
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    text: str = field(default="", compare=False)
    source: str = field(default="<config>", compare=False)
    # [config] serial: raised with every signed change, so an older signed file
    # copied back is refused as a rollback (fusion.cli.service).
    serial: int = 0

    def sensor(self, sensor_id: str) -> Sensor | None:
        for s in self.sensors:
            if s.id == sensor_id:
                return s
        return None

    def section(self, name: str) -> dict[str, Any]:
        """A project-defined section (e.g. a detector's settings), empty when absent."""
        value = self.raw.get(name, {})
        return value if isinstance(value, dict) else {}


def load_config(path: str | Path) -> SiteConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror or exc}"]) from exc
    return parse_config(text, source=str(path))


def parse_config(text: str, source: str = "<config>") -> SiteConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from exc
    problems: list[str] = []
    lines = _LineFinder(text)

    def bad(key: str, msg: str, table: str = "", index: int = -1) -> None:
        line = lines.find(table, index, key.rsplit(".", 1)[-1])
        where = f" (line {line})" if line else ""
        problems.append(f"{key}{where}: {msg}")

    site_raw = raw.get("site")
    site = Site("site", 0.0, 0.0, 0.0)
    if not isinstance(site_raw, dict):
        bad("site", "missing [site] section")
    else:
        sid = site_raw.get("id")
        if not isinstance(sid, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", sid or ""):
            bad("site.id", "must be a non-empty string of letters, digits, '-', '_' or '.'", "site")
            sid = "site"
        vals = {}
        for key, lo, hi in (("lat", -90, 90), ("lon", -180, 180), ("alt_m", -1000, 10000)):
            v = site_raw.get(key)
            if not _is_number(v) or not lo <= v <= hi:
                bad(f"site.{key}", f"must be a number in [{lo}, {hi}]", "site")
                v = 0.0
            vals[key] = float(v)
        site = Site(sid, vals["lat"], vals["lon"], vals["alt_m"])

    zones = []
    for i, z in enumerate(_table_list(raw, "zones", bad)):
        key = f"zones[{i}]"
        name = z.get("name")
        if not isinstance(name, str) or not name:
            bad(f"{key}.name", "must be a non-empty string", "zones", i)
            name = f"zone-{i}"
        poly = z.get("polygon")
        ok = (
            isinstance(poly, list)
            and len(poly) >= 3
            and all(
                isinstance(p, list)
                and len(p) == 2
                and all(_is_number(c) for c in p)
                and -90 <= p[0] <= 90
                and -180 <= p[1] <= 180
                for p in poly
            )
        )
        if not ok:
            bad(f"{key}.polygon", "must be a list of at least 3 [lat, lon] pairs", "zones", i)
            poly = []
        radius = z.get("alert_radius_m", 1500.0)
        if not _is_number(radius) or radius < 0:
            bad(f"{key}.alert_radius_m", "must be a number >= 0", "zones", i)
            radius = 0.0
        zones.append(Zone(name, tuple((float(a), float(b)) for a, b in poly), float(radius)))

    sensors = []
    seen_ids: set[str] = set()
    seen_boards: set[int] = set()
    for i, s in enumerate(_table_list(raw, "sensors", bad)):
        sensor = _parse_sensor(s, i, bad)
        if sensor is None:
            continue
        if sensor.id in RESERVED_SOURCES:
            bad(
                f"sensors[{i}].id",
                f"{sensor.id!r} is reserved: rejections from sources no sensor owns are counted under it",
                "sensors",
                i,
            )
        if sensor.id in seen_ids:
            bad(f"sensors[{i}].id", f"duplicate sensor id {sensor.id!r}", "sensors", i)
        seen_ids.add(sensor.id)
        if sensor.kind == "power" and sensor.board is not None:
            if sensor.board in seen_boards:
                bad(f"sensors[{i}].board", f"board {sensor.board} used twice", "sensors", i)
            seen_boards.add(sensor.board)
        sensors.append(sensor)

    engine_raw = raw.get("engine", {})
    engine = EngineSettings()
    if isinstance(engine_raw, dict):
        lat = engine_raw.get("lateness_s", DEFAULT_LATENESS_S)
        if not _is_number(lat) or not 0 <= lat <= 60:
            bad("engine.lateness_s", "must be a number of seconds in [0, 60]", "engine")
            lat = DEFAULT_LATENESS_S
        engine = EngineSettings(lateness_s=float(lat))

    serial = 0
    config_raw = raw.get("config", {})
    if not isinstance(config_raw, dict):
        bad("config", "must be a table ([config])")
    else:
        serial = config_raw.get("serial", 0)
        if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
            bad("config.serial", "must be an integer >= 0", "config")
            serial = 0

    if problems:
        raise ConfigError(source, problems)
    return SiteConfig(site, tuple(zones), tuple(sensors), engine, raw, text, source, serial=serial)


def _parse_sensor(s: dict[str, Any], i: int, bad) -> Sensor | None:
    key = f"sensors[{i}]"

    def b(k: str, msg: str) -> None:
        bad(f"{key}.{k}", msg, "sensors", i)

    sid = s.get("id")
    if not isinstance(sid, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", sid or ""):
        b("id", "must be a non-empty string of letters, digits, '-', '_' or '.'")
        return None
    kind = s.get("kind")
    if kind not in SENSOR_KINDS:
        b("kind", f"must be one of {', '.join(SENSOR_KINDS)}")
        return None
    transport = s.get("transport", "mqtt")
    if transport not in TRANSPORTS:
        b("transport", "must be 'mqtt' or 'serial'")
        return None
    pos = {}
    for k, lo, hi in (("lat", -90, 90), ("lon", -180, 180), ("alt_m", -1000, 10000)):
        v = s.get(k)
        if v is not None and (not _is_number(v) or not lo <= v <= hi):
            b(k, f"must be a number in [{lo}, {hi}]")
            v = None
        pos[k] = None if v is None else float(v)
    if kind in ("radar", "rf") and (pos["lat"] is None or pos["lon"] is None):
        b("lat", f"a {kind} sensor needs its position (lat, lon, alt_m)")
    topic = s.get("topic")
    port = s.get("port")
    baud = s.get("baud")
    if transport == "mqtt" and kind not in ("gnss", "power") and not isinstance(topic, str):
        b("topic", "an mqtt sensor needs a topic")
    if topic is not None and not isinstance(topic, str):
        b("topic", "must be a string")
        topic = None
    if transport == "serial":
        if not isinstance(port, str) or not port:
            b("port", "a serial sensor needs a port (device path or pyserial URL)")
        if baud is not None and (not isinstance(baud, int) or baud <= 0):
            b("baud", "must be a positive integer")
            baud = None
    channels = s.get("channels", ["va", "vb", "vc"])
    if (
        not isinstance(channels, list)
        or not channels
        or not all(isinstance(c, str) for c in channels)
    ):
        b("channels", "must be a non-empty list of channel names")
        channels = ["va", "vb", "vc"]
    board = s.get("board")
    if kind == "power" and (not isinstance(board, int) or not 0 <= board <= 0xFFFF):
        b("board", "a power sensor needs its board id (0..65535)")
        board = None
    fault_after = s.get("fault_after_s", DEFAULT_FAULT_AFTER_S[kind])
    if not _is_number(fault_after) or fault_after < 0:
        b("fault_after_s", "must be a number of seconds >= 0 (0 disables)")
        fault_after = DEFAULT_FAULT_AFTER_S[kind]
    nominal_hz = s.get("nominal_hz", 50.0)
    if not _is_number(nominal_hz) or not 10 <= nominal_hz <= 1000:
        b("nominal_hz", "must be a number in [10, 1000]")
        nominal_hz = 50.0
    nominal_v = s.get("nominal_v", 230.0)
    if not _is_number(nominal_v) or nominal_v <= 0:
        b("nominal_v", "must be a positive number")
        nominal_v = 230.0
    mobile = s.get("mobile", False)
    if not isinstance(mobile, bool):
        b("mobile", "must be true or false")
        mobile = False
    return Sensor(
        id=sid,
        kind=kind,
        transport=transport,
        lat=pos["lat"],
        lon=pos["lon"],
        alt_m=pos["alt_m"],
        topic=topic,
        port=port if isinstance(port, str) else None,
        baud=baud,
        feed=str(s["feed"]) if "feed" in s else None,
        board=board,
        channels=tuple(channels),
        nominal_hz=float(nominal_hz),
        nominal_v=float(nominal_v),
        mobile=mobile,
        fault_after_s=float(fault_after),
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v


def _table_list(raw: dict[str, Any], name: str, bad) -> list[dict[str, Any]]:
    value = raw.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        bad(name, f"must be an array of tables ([[{name}]])")
        return []
    return value


class _LineFinder:
    """Finds the line of a key inside the n-th ``[[table]]`` or ``[table]`` of a TOML text."""

    def __init__(self, text: str):
        self.lines = text.splitlines()

    def find(self, table: str, index: int, key: str) -> int | None:
        start, seen = 0, -1
        if table:
            header = re.compile(rf"^\s*\[\[?\s*{re.escape(table)}\s*\]\]?\s*(#.*)?$")
            for n, line in enumerate(self.lines):
                if header.match(line):
                    seen += 1
                    if index < 0 or seen == index:
                        start = n
                        break
            else:
                return None
        key_re = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for n in range(start, len(self.lines)):
            if n > start and table and self.lines[n].lstrip().startswith("["):
                break
            if key_re.match(self.lines[n]):
                return n + 1
        return start + 1 if table else None


def unknown_keys(site: SiteConfig) -> list[str]:
    """One line per section or key Rampart does not read (a typo such as
    ``alert_radius = 500`` would otherwise be ignored silently), naming it and its line.
    Recordings from other implementations may carry keys of their own, so this is
    ``check-config``'s business (and a warning in the service), not a parse error."""
    lines = _LineFinder(site.text)
    out: list[str] = []
    for name, value in site.raw.items():
        if name not in KNOWN_SECTIONS:
            line = lines.find(name, -1, "") if isinstance(value, dict | list) else None
            where = f" (line {line})" if line else ""
            out.append(
                f"{name}{where}: unknown section (known: {', '.join(sorted(KNOWN_SECTIONS))})"
            )
            continue
        known = SECTION_KEYS.get(name)
        if known is None:
            continue
        tables = value if isinstance(value, list) else [value]
        for i, table in enumerate(tables):
            if not isinstance(table, dict):
                continue
            for key in table:
                if key not in known:
                    path = f"{name}[{i}].{key}" if isinstance(value, list) else f"{name}.{key}"
                    line = lines.find(name, i if isinstance(value, list) else -1, key)
                    where = f" (line {line})" if line else ""
                    out.append(f"{path}{where}: unknown key (known: {', '.join(sorted(known))})")
    return out
