"""Correlation: several attack kinds close together in time are one coordinated attack.

A physical attack on a site rarely comes alone: GNSS jamming blinds the
navigation and timing of the site and of anyone watching, a drone walks in
under it, and an electromagnetic pulse hits the power feeds as it arrives.
Each detector sees its own part; this module sees the whole. It watches every
alert the incident book emits and groups the *attack classes*:

=========  ===================================================
class      alerts
=========  ===================================================
``drone``  ``drone_approach``
``gnss``   ``gnss_jamming``, ``gnss_spoofing``
``power``  ``power_transient`` with ``details.subtype == "emp_like"``
=========  ===================================================

Jamming and spoofing are one class on purpose: a spoofer usually jams first to
make receivers drop lock, so the pair is one attack technique, not two.

An attack incident is *recent* at data time ``t`` while it is open, and for
``window_s`` after its last message. When a new attack incident makes the recent
ones span at least ``min_kinds`` classes, a ``coordinated_attack`` incident opens
at ``critical``, linking every recent attack incident (``details.incident_ids``).
Attack incidents that become recent while it is open are linked to it (an
``update``). It closes once every linked incident is closed and ``window_s`` has
passed since the last of their messages, i.e. once nothing could join it any
more.

Its confidence is the probability that at least ``min_kinds`` of the linked
classes are real attacks, each class taken with the best confidence among its
incidents and the classes taken as independent (a Poisson-binomial tail).

Everything runs on the decision times of the alerts it sees (``t_detect_ns``),
never on a wall clock, so a replay reproduces the same coordinated incidents.
This is the "temporal correlation of alerts from heterogeneous sensors" of
alert-correlation systems (Valeur et al., "A Comprehensive Approach to
Intrusion Detection Alert Correlation", IEEE TDSC 1(3), 2004, §4.4 "attack
thread reconstruction" and §4.7 "multistep correlation"), reduced to its
time-window form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fusion.alerts import Alert
from fusion.detector import Finding

NS = 1_000_000_000
COORDINATED = "coordinated_attack"
CLASS_NAMES = {"drone": "drone approach", "gnss": "GNSS attack", "power": "EMP-like transient"}
DEFAULT_WINDOW_S = 600.0
DEFAULT_MIN_KINDS = 2


def attack_class(kind: str, details: dict[str, Any] | None) -> str | None:
    """The attack class of an alert (``drone``, ``gnss``, ``power``), or None for other alerts."""
    if kind == "drone_approach":
        return "drone"
    if kind in ("gnss_jamming", "gnss_spoofing"):
        return "gnss"
    if kind == "power_transient" and (details or {}).get("subtype") == "emp_like":
        return "power"
    return None


def at_least_k_probability(probabilities: list[float], k: int) -> float:
    """P(at least ``k`` of independent events with these probabilities happen).

    The tail of a Poisson-binomial distribution by its direct recursion over
    the events (Chen & Liu, "Statistical applications of the Poisson-binomial
    and conditional Bernoulli distributions", Statistica Sinica 7, 1997, §2).
    """
    dist = [1.0]  # dist[j]: P(exactly j of the events seen so far)
    for p in probabilities:
        p = min(max(float(p), 0.0), 1.0)
        nxt = [0.0] * (len(dist) + 1)
        for j, q in enumerate(dist):
            nxt[j] += q * (1.0 - p)
            nxt[j + 1] += q * p
        dist = nxt
    return float(sum(dist[k:])) if k < len(dist) else 0.0


@dataclass(frozen=True, slots=True)
class CorrelationSettings:
    """The ``[correlation]`` section; see docs/soc.md."""

    enabled: bool = True
    window_s: float = DEFAULT_WINDOW_S
    min_kinds: int = DEFAULT_MIN_KINDS


@dataclass(slots=True)
class _Component:
    incident_id: str
    kind: str
    subtype: str | None
    attack: str  # class
    severity: str
    confidence: float
    sensors: tuple[str, ...]
    t_event_ns: int
    first_attack_ns: int  # decision time of its first attack message
    last_ns: int  # decision time of its latest message
    closed: bool = False


@dataclass(slots=True)
class _Coordinated:
    key: str
    linked: list[str] = field(default_factory=list)  # incident ids, in order of linking


class Correlator:
    """Turns the stream of emitted alerts into ``coordinated_attack`` findings."""

    name = "correlation"

    def __init__(self, settings: CorrelationSettings = CorrelationSettings()):
        self.settings = settings
        self.window_ns = int(settings.window_s * NS)
        self._components: dict[str, _Component] = {}  # insertion order = order of first attack
        self._active: _Coordinated | None = None
        self._opened = 0

    # --- input ---------------------------------------------------------------------
    def observe(self, alert: Alert) -> list[Finding]:
        """An alert was emitted; answers with coordinated-attack findings (maybe none)."""
        if not self.settings.enabled or alert.kind == COORDINATED:
            return []
        t = alert.t_detect_ns
        comp = self._components.get(alert.incident_id)
        cls = attack_class(alert.kind, alert.details)
        if comp is None:
            if cls is None or alert.state == "closed":
                return []  # a closing message alone never starts anything
            comp = _Component(
                alert.incident_id,
                alert.kind,
                alert.details.get("subtype") if alert.kind == "power_transient" else None,
                cls,
                alert.severity,
                alert.confidence,
                tuple(alert.sensors),
                alert.t_event_ns,
                t,
                t,
            )
            self._components[alert.incident_id] = comp
            is_new = True
        else:
            # Once an attack, always a component: a later downgrade or the close still counts.
            comp.last_ns = max(comp.last_ns, t)
            comp.closed = alert.state == "closed"
            comp.severity = alert.severity
            comp.confidence = max(comp.confidence, alert.confidence)
            comp.sensors = tuple(sorted(set(comp.sensors) | set(alert.sensors)))
            is_new = False
        out = self.due(t)
        if not is_new:
            return out
        active = self._active
        if active is not None:
            active.linked.append(comp.incident_id)
            out.append(self._finding("update", t))
            return out
        recent = [c for c in self._components.values() if self._is_recent(c, t)]
        if len({c.attack for c in recent}) >= self.settings.min_kinds:
            self._opened += 1
            self._active = _Coordinated(
                f"coordinated-{self._opened}", [c.incident_id for c in recent]
            )
            out.append(self._finding("open", t))
        return out

    def due(self, t_ns: int) -> list[Finding]:
        """Time has reached ``t_ns``: close the coordinated incident once nothing can join it."""
        out: list[Finding] = []
        active = self._active
        if active is not None:
            linked = [self._components[i] for i in active.linked]
            if all(c.closed for c in linked) and t_ns - max(c.last_ns for c in linked) >= (
                self.window_ns
            ):
                out.append(self._finding("closed", t_ns))
                self._active = None
        self._prune(t_ns)
        return out

    # --- helpers ---------------------------------------------------------------------
    def _is_recent(self, c: _Component, t_ns: int) -> bool:
        return not c.closed or c.last_ns >= t_ns - self.window_ns

    def _prune(self, t_ns: int) -> None:
        keep = set(self._active.linked) if self._active is not None else set()
        stale = [
            i
            for i, c in self._components.items()
            if i not in keep and c.closed and c.last_ns < t_ns - self.window_ns
        ]
        for i in stale:
            del self._components[i]

    def _finding(self, state: str, t_ns: int) -> Finding:
        active = self._active
        assert active is not None
        linked = [self._components[i] for i in active.linked]
        best: dict[str, float] = {}
        for c in linked:
            best[c.attack] = max(best.get(c.attack, 0.0), c.confidence)
        classes = sorted(best)
        confidence = at_least_k_probability([best[k] for k in classes], self.settings.min_kinds)
        first = min(c.first_attack_ns for c in linked)
        last = max(c.first_attack_ns for c in linked)
        span_min = (last - first) / NS / 60.0
        names = " + ".join(CLASS_NAMES[k] for k in classes)
        if state == "closed":
            summary = (
                f"Coordinated attack over: {names}; {len(linked)} incidents, "
                f"all closed for {self.settings.window_s / 60.0:.0f} min"
            )
        else:
            summary = (
                f"Coordinated attack: {names} within {span_min:.1f} min ({len(linked)} incidents)"
            )
        details = {
            "incident_ids": [c.incident_id for c in linked],
            "components": [
                {
                    "incident_id": c.incident_id,
                    "kind": c.kind,
                    "subtype": c.subtype,
                    "class": c.attack,
                    "severity": c.severity,
                    "confidence": round(c.confidence, 4),
                    "t_event_ns": c.t_event_ns,
                    "t_first_attack_ns": c.first_attack_ns,
                    "closed": c.closed,
                }
                for c in linked
            ],
            "classes": classes,
            "span_s": round((last - first) / NS, 3),
            "window_s": self.settings.window_s,
            "min_kinds": self.settings.min_kinds,
        }
        sensors = sorted({s for c in linked for s in c.sensors})
        return Finding(
            key=active.key,
            state=state,
            kind=COORDINATED,
            severity="critical",
            confidence=confidence,
            sensors=tuple(sensors),
            t_event_ns=min(c.t_event_ns for c in linked),
            summary=summary,
            details=details,
        )

    @property
    def active_incident_key(self) -> str | None:
        return None if self._active is None else self._active.key
