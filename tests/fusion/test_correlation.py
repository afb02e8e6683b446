"""Correlation of attack kinds into one coordinated_attack incident, on synthetic findings."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fusion.alerts import encode_alert
from fusion.correlation import CorrelationSettings, at_least_k_probability, attack_class
from fusion.detector import Finding
from fusion.engine import Engine
from fusion.incidents import IncidentBook, IncidentSettings
from fusion.records import SwitchgearEvent
from fusion.rejects import RejectLedger
from fusion.score import score

NS = 1_000_000_000
T0 = 1_767_225_600 * NS


def at(s: float) -> int:
    return T0 + int(s * NS)


def drone(state="open", key="track-1", t=0.0, **kw):
    return Finding(
        key,
        state,
        "drone_approach",
        kw.get("severity", "high"),
        kw.get("conf", 0.9),
        ("radar-1", "rf-1"),
        at(t),
        "Drone closing on zone hall-a",
        {"track_id": 1},
    )


def jam(state="open", key="jam", t=0.0, conf=0.8):
    return Finding(
        key,
        state,
        "gnss_jamming",
        "high",
        conf,
        ("gnss-1", "gnss-2"),
        at(t),
        "GNSS jamming",
        {"bands": ["L1"]},
    )


def emp(state="open", key="ev-1", t=0.0, subtype="emp_like", conf=0.95):
    return Finding(
        key,
        state,
        "power_transient",
        "critical" if subtype == "emp_like" else "low",
        conf,
        ("pq-a", "pq-b"),
        at(t),
        f"Power transient ({subtype})",
        {"subtype": subtype},
    )


def coordinated(alerts):
    return [a for a in alerts if a.kind == "coordinated_attack"]


def test_attack_classes():
    assert attack_class("drone_approach", {}) == "drone"
    assert attack_class("gnss_jamming", {}) == attack_class("gnss_spoofing", {}) == "gnss"
    assert attack_class("power_transient", {"subtype": "emp_like"}) == "power"
    for kind, details in (
        ("power_transient", {"subtype": "surge"}),
        ("power_transient", {}),
        ("drone_detected", {}),
        ("sensor_fault", {}),
        ("coordinated_attack", {}),
    ):
        assert attack_class(kind, details) is None


def _at_least_k_naive(ps, k):
    """Enumerates every outcome: the slow, obvious twin of the recursion."""
    total = 0.0
    for outcome in itertools.product((0, 1), repeat=len(ps)):
        if sum(outcome) >= k:
            p = 1.0
            for hit, q in zip(outcome, ps, strict=True):
                p *= q if hit else 1.0 - q
            total += p
    return total


def test_at_least_k_probability_matches_enumeration():
    rng = np.random.default_rng(6)
    cases = [[], [0.0], [1.0], [0.5, 0.5], [1.0, 1.0, 0.0]]
    cases += [list(rng.uniform(0, 1, rng.integers(1, 8))) for _ in range(200)]
    for ps in cases:
        for k in range(0, len(ps) + 2):
            assert at_least_k_probability(ps, k) == pytest.approx(
                _at_least_k_naive(ps, k), abs=1e-12
            )


def test_two_attack_kinds_in_the_window_open_one_critical_incident_linking_them():
    book = IncidentBook("site")
    j = book.apply("gnss", jam(t=0), at(2))
    assert coordinated(j) == []
    d = book.apply("tracker", drone(t=100), at(130))
    (coord,) = coordinated(d)
    assert d[0].kind == "drone_approach" and d[1] is coord  # the part first, then the whole
    assert coord.state == "open" and coord.severity == "critical"
    assert coord.details["incident_ids"] == [j[0].incident_id, d[0].incident_id]
    assert coord.details["classes"] == ["drone", "gnss"]
    assert coord.t_event_ns == at(0) and coord.t_detect_ns == at(130)
    assert coord.sensors == ["gnss-1", "gnss-2", "radar-1", "rf-1"]
    assert coord.confidence == pytest.approx(0.9 * 0.8, abs=1e-4)
    # an EMP-like transient a minute later joins it: an update, same incident, three parts
    e = book.apply("power", emp(t=190), at(190.2))
    (upd,) = coordinated(e)
    assert upd.state == "update" and upd.incident_id == coord.incident_id and upd.seq == 2
    assert upd.details["incident_ids"][-1] == e[0].incident_id
    assert upd.details["classes"] == ["drone", "gnss", "power"]
    # P(at least two of three real) with 0.9, 0.8, 0.95
    assert upd.confidence == pytest.approx(_at_least_k_naive([0.9, 0.8, 0.95], 2), abs=1e-4)


def test_one_kind_alone_is_not_coordinated_however_many():
    drones = IncidentBook("site")
    out = []
    for i in range(5):
        out += drones.apply("tracker", drone(key=f"track-{i}", t=i), at(i))
    # non-attack alerts beside a drone are not a second kind
    out += drones.apply("power", emp(t=8, subtype="surge"), at(8))
    out += drones.apply(
        "tracker",
        Finding(
            "d", "open", "drone_detected", "low", 0.9, ("rf-1",), at(9), "drone, not closing", {}
        ),
        at(9),
    )
    assert coordinated(out) == []
    # jamming and spoofing are one kind (a spoofer jams first)
    gnss = IncidentBook("site")
    out = gnss.apply(
        "gnss",
        Finding("s", "open", "gnss_spoofing", "high", 0.9, ("gnss-1",), at(0), "spoof", {}),
        at(0),
    )
    out += gnss.apply("gnss", jam(t=1), at(1))
    assert coordinated(out) == []
    # a drone and a spoofer are two kinds
    assert len(coordinated(gnss.apply("tracker", drone(t=2), at(2)))) == 1


def test_a_transient_upgraded_to_emp_like_becomes_a_part():
    book = IncidentBook("site")
    book.apply("tracker", drone(t=0), at(0))
    assert coordinated(book.apply("power", emp(t=10, subtype="surge"), at(10))) == []
    up = book.apply("power", emp("update", t=10, subtype="emp_like"), at(10.5))
    assert up[0].details["subtype"] == "emp_like"
    assert coordinated(up)[0].state == "open"


def test_the_window_bounds_what_is_correlated():
    settings = IncidentSettings(correlation=CorrelationSettings(window_s=60.0))
    book = IncidentBook("site", settings)
    book.apply("gnss", jam(t=0), at(0))
    book.apply("gnss", jam("closed", t=0), at(30))
    # 100 s after the jamming ended: outside a 60 s window
    assert coordinated(book.apply("tracker", drone(t=130), at(130))) == []
    # but a long-lasting open incident is recent however old it is
    book.apply("gnss", jam(key="jam-2", t=1000), at(1000))
    out = book.apply("power", emp(t=5000), at(5000))
    (coord,) = coordinated(out)
    ids = coord.details["incident_ids"]
    assert len(ids) == 3  # the still-open drone, the open jamming, the transient
    # the default window is ten minutes
    default = IncidentBook("site")
    default.apply("gnss", jam(t=0), at(0))
    default.apply("gnss", jam("closed", t=0), at(10))
    assert len(coordinated(default.apply("tracker", drone(t=590), at(590)))) == 1


def test_it_closes_once_every_part_closed_and_nothing_can_join_any_more():
    settings = IncidentSettings(correlation=CorrelationSettings(window_s=120.0))
    book = IncidentBook("site", settings)
    book.apply("gnss", jam(t=0), at(0))
    (coord,) = coordinated(book.apply("tracker", drone(t=10), at(10)))
    book.apply("gnss", jam("closed"), at(50))
    assert coordinated(book.apply("tracker", drone("closed", t=10), at(60))) == []
    assert coordinated(book.on_tick(at(179))) == []
    (closed,) = coordinated(book.on_tick(at(180)))
    assert closed.state == "closed" and closed.incident_id == coord.incident_id
    assert closed.severity == "critical"
    # a later pair is a new coordinated incident
    book.apply("gnss", jam(key="jam-2", t=500), at(500))
    (again,) = coordinated(book.apply("power", emp(t=501), at(501)))
    assert again.state == "open" and again.incident_id != coord.incident_id


def test_min_kinds_three_and_disabled():
    three = IncidentBook("site", IncidentSettings(correlation=CorrelationSettings(min_kinds=3)))
    three.apply("gnss", jam(), at(0))
    assert coordinated(three.apply("tracker", drone(), at(1))) == []
    assert len(coordinated(three.apply("power", emp(), at(2)))) == 1
    off = IncidentBook("site", IncidentSettings(correlation=CorrelationSettings(enabled=False)))
    off.apply("gnss", jam(), at(0))
    assert coordinated(off.apply("tracker", drone(), at(1))) == []


class _Scripted:
    name = "scripted"
    consumes = (SwitchgearEvent,)

    def __init__(self, name, script):
        self.name = name
        self.script = script

    def on_record(self, record):
        return self.script.get(record.t_ns, [])

    def on_tick(self, watermark_ns):
        return []


def _engine_run():
    dets = [
        _Scripted("gnss", {at(20): [jam(t=20)]}),
        _Scripted(
            "tracker", {at(60): [drone(t=55)], at(90): [drone("update", t=55, severity="critical")]}
        ),
        _Scripted("power", {at(120): [emp(t=120)]}),
    ]
    alerts = []
    engine = Engine(dets, IncidentBook("dc-east-1"), RejectLedger(), alerts.append)
    for s in range(0, 200, 5):
        engine.push(SwitchgearEvent("ats-1", at(s), at(s), "ats_transfer", "A"))
        engine.advance(at(s))
    engine.finish()
    return alerts


def test_through_the_engine_deterministic_and_scored_as_corroborating():
    alerts = _engine_run()
    assert [encode_alert(a) for a in alerts] == [encode_alert(a) for a in _engine_run()]
    coord = coordinated(alerts)
    assert [c.state for c in coord] == ["open", "update"]
    parts = {a.incident_id for a in alerts if a.kind != "coordinated_attack"}
    assert set(coord[-1].details["incident_ids"]) == parts
    # the scorer counts it as corroborating the truth, never as a false alarm
    import polars as pl

    truth = pl.DataFrame(
        {
            "object_id": ["jam-1", "drone-1", "emp-1"],
            "kind": ["gnss_jamming", "drone_approach", "power_transient_emp"],
            "t_start_ns": [at(19), at(55), at(120)],
            "t_end_ns": [at(150), at(150), at(120.01)],
            "must_alert": [True, True, True],
            "deadline_ns": [None, at(150), None],
        }
    )
    metrics = score(truth, [_as_dict(a) for a in alerts], (at(0), at(200)))
    assert metrics["totals"]["false_alarms"] == 0
    assert metrics["kinds"]["coordinated_attack"]["corroborating"] == 1
    assert metrics["totals"]["recall"] == 1.0


def _as_dict(alert):
    import json

    return json.loads(encode_alert(alert))
