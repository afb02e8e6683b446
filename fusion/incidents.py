"""The incident manager: detector findings in, the contract's alert lifecycle out.

Each (detector, key) pair is one incident while it is open. The first finding
opens it (``seq`` 1, state ``open``), later ones update it, a ``closed``
finding closes it and frees the key, so a recurrence is a new incident with a
new ``incident_id``. On top of that lifecycle the book keeps the SOC's view
quiet and complete:

- **De-duplication**: an update that says exactly what the last message said
  (same kind, severity, confidence, sensors, summary and details) is dropped.
- **Throttling**: updates go out at most once per ``update_interval_s`` of
  decision time per incident, unless the severity, the kind or the attack
  status (e.g. a transient re-classified as ``emp_like``) changes, which goes
  out at once. A held-back update is not lost: the newest one goes out when
  the interval has passed and the next finding, tick or the end of input
  comes, or is superseded by the close.
- **Storm control**: when one detector opens more than ``storm_threshold``
  incidents of one kind within ``storm_window_s``, further ones are not
  opened one by one; a single storm incident of that kind counts them (new
  incidents, findings, still-open ones, a sample of keys) and carries the
  highest severity among them, and closes once the flood has stopped for a
  window and every absorbed incident has closed.
- **Correlation** (``fusion.correlation``): every emitted alert is shown to the
  correlator; its ``coordinated_attack`` findings run through the same
  lifecycle.
- **Acknowledgements** from the SOC (``acknowledge``, thread-safe) are recorded
  on the incident; its later messages carry the latest one as ``details.ack``.

Everything depends only on the findings and their decision times, so a replay
reproduces the same alerts, ids included. Acknowledgements are the one
outside input: they exist only in a live service, never in a replay.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import msgspec

from fusion.alerts import SEVERITIES, STATES, Alert, deterministic_ulid
from fusion.config import ConfigError, SiteConfig
from fusion.correlation import (
    DEFAULT_MIN_KINDS,
    DEFAULT_WINDOW_S,
    CorrelationSettings,
    Correlator,
    attack_class,
)
from fusion.detector import Finding

NS = 1_000_000_000
log = logging.getLogger("rampart.incidents")

DEFAULT_UPDATE_INTERVAL_S = 2.0  # a safety net under the detectors' own (5-10 s)
DEFAULT_STORM_THRESHOLD = 10
DEFAULT_STORM_WINDOW_S = 60.0
RECENT_CLOSED = 4096  # closed incidents remembered for late acknowledgements
MAX_ACKS_KEPT = 20  # per incident
STORM_SAMPLE_KEYS = 10
STORM_SENSORS = 32
_RANK = {s: i for i, s in enumerate(SEVERITIES)}
_encode = msgspec.json.Encoder(order="deterministic").encode


@dataclass(frozen=True, slots=True)
class IncidentSettings:
    """The ``[incidents]`` and ``[correlation]`` sections; see docs/soc.md."""

    update_interval_s: float = DEFAULT_UPDATE_INTERVAL_S
    storm_threshold: int = DEFAULT_STORM_THRESHOLD  # 0 disables storm control
    storm_window_s: float = DEFAULT_STORM_WINDOW_S
    correlation: CorrelationSettings = field(default_factory=CorrelationSettings)

    @classmethod
    def from_site(cls, site: SiteConfig) -> IncidentSettings:
        """Reads and validates the sections; raises ConfigError naming every bad key."""
        return parse_incident_settings(site.section("incidents"), site.section("correlation"), site)


def parse_incident_settings(
    incidents: dict[str, Any], correlation: dict[str, Any], site: SiteConfig | None = None
) -> IncidentSettings:
    problems: list[str] = []

    def number(sec: dict, name: str, key: str, default: float, lo: float, hi: float) -> float:
        v = sec.get(key, default)
        if not isinstance(v, int | float) or isinstance(v, bool) or not lo <= v <= hi:
            problems.append(f"{name}.{key}: must be a number in [{lo:g}, {hi:g}]")
            return default
        return float(v)

    def integer(sec: dict, name: str, key: str, default: int, lo: int, hi: int) -> int:
        v = sec.get(key, default)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            problems.append(f"{name}.{key}: must be an integer in [{lo}, {hi}]")
            return default
        return v

    for name, sec, known in (
        ("incidents", incidents, {"update_interval_s", "storm_threshold", "storm_window_s"}),
        ("correlation", correlation, {"enabled", "window_s", "min_kinds"}),
    ):
        for key in sorted(set(sec) - known):
            problems.append(f"{name}.{key}: unknown key (known: {', '.join(sorted(known))})")
    interval = number(
        incidents, "incidents", "update_interval_s", DEFAULT_UPDATE_INTERVAL_S, 0, 3600
    )
    threshold = integer(
        incidents, "incidents", "storm_threshold", DEFAULT_STORM_THRESHOLD, 0, 10**6
    )
    window = number(incidents, "incidents", "storm_window_s", DEFAULT_STORM_WINDOW_S, 1, 86400)
    enabled = correlation.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append("correlation.enabled: must be true or false")
        enabled = True
    c_window = number(correlation, "correlation", "window_s", DEFAULT_WINDOW_S, 1, 86400)
    min_kinds = integer(correlation, "correlation", "min_kinds", DEFAULT_MIN_KINDS, 2, 3)
    if problems:
        raise ConfigError(site.source if site is not None else "<config>", problems)
    return IncidentSettings(
        interval, threshold, window, CorrelationSettings(enabled, c_window, min_kinds)
    )


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """The SOC has seen an incident (MQTT ``rampart/{site}/acks``, or a webhook's reply)."""

    incident_id: str
    by: str  # who: an analyst, a ticket system
    via: str  # "mqtt" | "webhook" | ...
    t_ns: int  # when the SOC acknowledged
    note: str = ""
    alert_id: str | None = None  # the message acknowledged, when known

    def as_details(self, count: int) -> dict[str, Any]:
        return {
            "by": self.by,
            "via": self.via,
            "t_ns": self.t_ns,
            "note": self.note,
            "alert_id": self.alert_id,
            "count": count,
        }


@dataclass(slots=True)
class _Incident:
    incident_id: str
    detector: str
    key: str
    seq: int
    t_event_ns: int
    kind: str = ""
    severity: str = "info"
    attack: str | None = None
    sig: bytes = b""
    last_emit_ns: int = 0
    pending: Finding | None = None  # newest held-back update
    acks: list[Acknowledgement] = field(default_factory=list)
    state: str = "open"


@dataclass(frozen=True, slots=True)
class IncidentView:
    """A snapshot of one incident, for the service and the tests."""

    incident_id: str
    detector: str
    key: str
    state: str  # "open" | "closed"
    seq: int
    kind: str
    severity: str
    acks: tuple[Acknowledgement, ...]


@dataclass(slots=True)
class _Storm:
    detector: str
    kind: str
    key: str  # the storm incident's finding key
    open_keys: dict[str, None] = field(default_factory=dict)  # absorbed, still open
    incidents: int = 0  # absorbed incident opens
    findings: int = 0  # absorbed findings of any state
    severity: str = "info"
    confidence: float = 0.0
    sensors: dict[str, None] = field(default_factory=dict)
    first_t_event_ns: int = 0
    last_open_ns: int = 0
    sample: list[str] = field(default_factory=list)


class IncidentBook:
    def __init__(self, site_id: str, settings: IncidentSettings = IncidentSettings()):
        self.site_id = site_id
        self.settings = settings
        self.interval_ns = int(settings.update_interval_s * NS)
        self.storm_window_ns = int(settings.storm_window_s * NS)
        self.correlator = Correlator(settings.correlation)
        self._open: dict[tuple[str, str], _Incident] = {}
        self._by_id: dict[str, _Incident] = {}  # open incidents by id
        self._closed: OrderedDict[str, _Incident] = OrderedDict()
        self._pending: dict[tuple[str, str], _Incident] = {}  # incidents with a held-back update
        self._opens: dict[tuple[str, str], deque] = {}  # (detector, kind) -> recent open times
        self._storms: dict[tuple[str, str], _Storm] = {}
        self._storm_of: dict[tuple[str, str], tuple[str, str]] = {}  # absorbed key -> storm
        self._lock = threading.Lock()
        self.opened = 0
        self.duplicates = 0  # updates dropped as repeats
        self.throttled = 0  # updates held back (some go out later)
        self.storm_absorbed = 0  # findings absorbed by storms
        self.unknown_acks = 0

    @classmethod
    def for_site(cls, site: SiteConfig) -> IncidentBook:
        return cls(site.site.id, IncidentSettings.from_site(site))

    # --- public --------------------------------------------------------------------------
    def apply(self, detector: str, finding: Finding, t_detect_ns: int) -> list[Alert]:
        """A detector's finding, decided at ``t_detect_ns``: the alerts to send, in order."""
        if finding.severity not in SEVERITIES:
            raise ValueError(
                f"{detector}: severity {finding.severity!r} is not one of {SEVERITIES}"
            )
        if finding.state not in STATES:
            raise ValueError(f"{detector}: state {finding.state!r} is not one of {STATES}")
        with self._lock:
            out = self._due(t_detect_ns, final=False, skip=self._targets(detector, finding))
            alert = self._route(detector, finding, t_detect_ns)
            if alert is not None:
                out.append(alert)
            return self._correlated(out, t_detect_ns)

    def on_tick(self, t_detect_ns: int) -> list[Alert]:
        """Decision time has advanced with no finding: held-back updates, storm and correlation ends."""
        with self._lock:
            return self._correlated(self._due(t_detect_ns, final=False), t_detect_ns)

    def flush(self, t_detect_ns: int) -> list[Alert]:
        """End of input: like ``on_tick``, and every held-back update goes out now."""
        with self._lock:
            return self._correlated(self._due(t_detect_ns, final=True), t_detect_ns)

    def acknowledge(self, ack: Acknowledgement) -> bool:
        """Records a SOC acknowledgement on its incident (any thread). False: no such incident."""
        with self._lock:
            inc = self._by_id.get(ack.incident_id) or self._closed.get(ack.incident_id)
            if inc is None:
                self.unknown_acks += 1
                log.warning(
                    "acknowledgement via %s by %r for unknown incident %s",
                    ack.via,
                    ack.by,
                    ack.incident_id,
                )
                return False
            inc.acks.append(ack)
            del inc.acks[:-MAX_ACKS_KEPT]
            log.info("incident %s acknowledged via %s by %r", ack.incident_id, ack.via, ack.by)
            return True

    def incident(self, incident_id: str) -> IncidentView | None:
        with self._lock:
            inc = self._by_id.get(incident_id) or self._closed.get(incident_id)
            if inc is None:
                return None
            return IncidentView(
                inc.incident_id,
                inc.detector,
                inc.key,
                inc.state,
                inc.seq,
                inc.kind,
                inc.severity,
                tuple(inc.acks),
            )

    def open_incidents(self) -> int:
        return len(self._open)

    def _targets(self, detector: str, finding: Finding) -> set[tuple[str, str]]:
        """The incidents this finding will speak for: their held-back updates it supersedes."""
        key = (detector, finding.key)
        targets = {key}
        storm_id = self._storm_of.get(key)
        if storm_id is None and key not in self._open:
            storm_id = (detector, finding.kind)
        storm = self._storms.get(storm_id) if storm_id is not None else None
        if storm is not None:
            targets.add((storm.detector, storm.key))
        return targets

    # --- routing: storms ----------------------------------------------------------------
    def _route(self, detector: str, finding: Finding, t: int) -> Alert | None:
        if detector == Correlator.name or not self.settings.storm_threshold:
            return self._apply_one(detector, finding, t)
        key = (detector, finding.key)
        storm_id = self._storm_of.get(key)
        if storm_id is not None:
            return self._absorb(self._storms[storm_id], key, finding, t, new=False)
        if key in self._open or finding.state == "closed":
            return self._apply_one(detector, finding, t)
        sk = (detector, finding.kind)
        storm = self._storms.get(sk)
        if storm is None:
            opens = self._opens.setdefault(sk, deque())
            while opens and opens[0] <= t - self.storm_window_ns:
                opens.popleft()
            if len(opens) < self.settings.storm_threshold:
                opens.append(t)
                return self._apply_one(detector, finding, t)
            storm = _Storm(detector, finding.kind, f"~storm:{finding.kind}")
            storm.first_t_event_ns = finding.t_event_ns
            self._storms[sk] = storm
            log.warning(
                "storm: %s opened %d %s incidents in %.0f s; absorbing further ones",
                detector,
                len(opens),
                finding.kind,
                self.settings.storm_window_s,
            )
        return self._absorb(storm, key, finding, t, new=True)

    def _absorb(self, storm: _Storm, key, finding: Finding, t: int, new: bool) -> Alert | None:
        self.storm_absorbed += 1
        storm.findings += 1
        if new:
            storm.incidents += 1
            storm.last_open_ns = t
            storm.open_keys[finding.key] = None
            self._storm_of[key] = (storm.detector, storm.kind)
            if len(storm.sample) < STORM_SAMPLE_KEYS:
                storm.sample.append(finding.key)
        if finding.state == "closed":
            storm.open_keys.pop(finding.key, None)
            self._storm_of.pop(key, None)
        if _RANK[finding.severity] > _RANK[storm.severity]:
            storm.severity = finding.severity
        storm.confidence = max(storm.confidence, float(finding.confidence))
        storm.first_t_event_ns = min(storm.first_t_event_ns, finding.t_event_ns)
        for s in finding.sensors:
            if len(storm.sensors) < STORM_SENSORS:
                storm.sensors[s] = None
        return self._apply_one(storm.detector, self._storm_finding(storm, "update"), t)

    def _storm_finding(self, storm: _Storm, state: str) -> Finding:
        window = self.settings.storm_window_s
        if state == "closed":
            summary = (
                f"Storm of {storm.kind} from {storm.detector} over: {storm.incidents} incidents "
                f"absorbed ({storm.findings} findings)"
            )
        else:
            summary = (
                f"Storm of {storm.kind} from {storm.detector}: {storm.incidents} more incidents "
                f"after {self.settings.storm_threshold} in {window:.0f} s, absorbed here; "
                f"{len(storm.open_keys)} still open"
            )
        return Finding(
            key=storm.key,
            state=state,
            kind=storm.kind,
            severity=storm.severity,
            confidence=storm.confidence,
            sensors=tuple(storm.sensors),
            t_event_ns=storm.first_t_event_ns,
            summary=summary,
            details={
                "storm": {
                    "detector": storm.detector,
                    "kind": storm.kind,
                    "incidents": storm.incidents,
                    "findings": storm.findings,
                    "open": len(storm.open_keys),
                    "threshold": self.settings.storm_threshold,
                    "window_s": window,
                    "sample_keys": list(storm.sample),
                }
            },
        )

    # --- lifecycle ----------------------------------------------------------------------
    def _apply_one(self, detector: str, finding: Finding, t: int) -> Alert | None:
        key = (detector, finding.key)
        inc = self._open.get(key)
        if inc is None:
            if finding.state == "closed":
                return None  # closing what never opened (or was already closed)
            self.opened += 1
            inc = _Incident(
                deterministic_ulid(
                    finding.t_event_ns,
                    self.site_id,
                    detector,
                    finding.key,
                    finding.t_event_ns,
                    self.opened,
                ),
                detector,
                finding.key,
                0,
                finding.t_event_ns,
            )
            self._open[key] = inc
            self._by_id[inc.incident_id] = inc
            return self._emit(inc, finding, "open", t, _signature(finding))
        if finding.state == "closed":
            return self._emit(inc, finding, "closed", t, b"")
        sig = _signature(finding)
        if sig == inc.sig:
            self.duplicates += 1
            self._hold(inc, None)  # back to what the SOC last heard: nothing to catch up on
            return None
        material = (
            finding.severity != inc.severity
            or finding.kind != inc.kind
            or attack_class(finding.kind, finding.details) != inc.attack
        )
        # Correlation updates link new incidents: always news, never held back.
        throttle = self.interval_ns and detector != Correlator.name
        if not material and throttle and t - inc.last_emit_ns < self.interval_ns:
            self.throttled += 1
            self._hold(inc, finding)
            return None
        return self._emit(inc, finding, "update", t, sig)

    def _hold(self, inc: _Incident, finding: Finding | None) -> None:
        inc.pending = finding
        key = (inc.detector, inc.key)
        if finding is None:
            self._pending.pop(key, None)
        else:
            self._pending[key] = inc

    def _emit(self, inc: _Incident, finding: Finding, state: str, t: int, sig: bytes) -> Alert:
        self._hold(inc, None)
        inc.seq += 1
        inc.kind = finding.kind
        inc.severity = finding.severity
        inc.attack = inc.attack or attack_class(finding.kind, finding.details)
        inc.sig = sig
        inc.last_emit_ns = t
        details = finding.details
        if inc.acks:
            details = {**details, "ack": inc.acks[-1].as_details(len(inc.acks))}
        if state == "closed":
            inc.state = "closed"
            del self._open[(inc.detector, inc.key)]
            del self._by_id[inc.incident_id]
            self._closed[inc.incident_id] = inc
            while len(self._closed) > RECENT_CLOSED:
                self._closed.popitem(last=False)
        return Alert(
            alert_id=deterministic_ulid(t, inc.incident_id, inc.seq),
            incident_id=inc.incident_id,
            seq=inc.seq,
            state=state,
            kind=finding.kind,
            severity=finding.severity,
            confidence=round(float(finding.confidence), 4),
            site=self.site_id,
            sensors=sorted(finding.sensors),
            t_event_ns=inc.t_event_ns,
            t_detect_ns=t,
            summary=finding.summary,
            details=details,
        )

    # --- time-driven work ---------------------------------------------------------------
    def _due(
        self, t: int, final: bool, skip: frozenset | set[tuple[str, str]] = frozenset()
    ) -> list[Alert]:
        out: list[Alert] = []
        if self._pending:
            for key, inc in list(self._pending.items()):
                if key in skip:
                    continue  # the finding being applied supersedes it
                if final or t - inc.last_emit_ns >= self.interval_ns:
                    finding = inc.pending
                    assert finding is not None
                    out.append(self._emit(inc, finding, "update", t, _signature(finding)))
        for sk, storm in list(self._storms.items()):
            if not storm.open_keys and t - storm.last_open_ns >= self.storm_window_ns:
                del self._storms[sk]
                self._opens.pop(sk, None)
                alert = self._apply_one(storm.detector, self._storm_finding(storm, "closed"), t)
                if alert is not None:
                    out.append(alert)
        for finding in self.correlator.due(t):
            alert = self._apply_one(Correlator.name, finding, t)
            if alert is not None:
                out.append(alert)
        return out

    def _correlated(self, alerts: list[Alert], t: int) -> list[Alert]:
        """Each alert followed by the coordinated-attack alerts it caused."""
        out: list[Alert] = []
        for alert in alerts:
            out.append(alert)
            for finding in self.correlator.observe(alert):
                derived = self._apply_one(Correlator.name, finding, t)
                if derived is not None:
                    out.append(derived)
        return out


def _signature(finding: Finding) -> bytes:
    """What an update says, for de-duplication (canonical bytes)."""
    return _encode(
        (
            finding.kind,
            finding.severity,
            round(float(finding.confidence), 4),
            sorted(finding.sensors),
            finding.summary,
            finding.details,
        )
    )
