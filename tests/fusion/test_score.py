"""Scoring alerts against truth: synthetic truth and alerts with hand-computed metrics."""

from __future__ import annotations

import json
import math
import random

import polars as pl
import pytest

from fusion.score import ScoreSettings, score

NS = 1_000_000_000
T0 = 1_767_686_400 * NS  # 2026-01-06T08:00:00Z
SPAN = (T0, T0 + 3600 * NS)  # one hour: false alarms per hour == false alarms

TRUTH_SCHEMA = {
    "object_id": pl.Utf8,
    "kind": pl.Utf8,
    "t_start_ns": pl.Int64,
    "t_end_ns": pl.Int64,
    "must_alert": pl.Boolean,
    "deadline_ns": pl.Int64,
}


def s(sec: float) -> int:
    return T0 + round(sec * NS)


def truth_df(rows: list[tuple]) -> pl.DataFrame:
    data = [
        (oid, kind, s(a), s(b), must, None if dl is None else s(dl))
        for oid, kind, a, b, must, dl in rows
    ]
    return pl.DataFrame(data, schema=TRUTH_SCHEMA, orient="row")


_n = 0


def alert(
    incident: str, kind: str, t_detect: float, *, seq: int = 1, state: str = "open", **extra
) -> dict:
    global _n
    _n += 1
    a = {
        "alert_id": f"{incident}-{seq}-{_n}",
        "incident_id": incident,
        "seq": seq,
        "state": state,
        "kind": kind,
        "severity": "high",
        "confidence": 0.9,
        "site": "sim-site",
        "sensors": ["x"],
        "t_event_ns": s(t_detect) - NS,
        "t_detect_ns": s(t_detect),
        "summary": f"{kind} {incident}",
        "details": {},
    }
    a.update(extra)
    return a


def emp(incident: str, t: float, subtype: str, seq: int = 1) -> dict:
    return alert(incident, "power_transient", t, seq=seq, details={"subtype": subtype})


TRUTH = truth_df(
    [
        ("d1", "drone_approach", 100, 160, True, 130),  # detected in time
        ("d2", "drone_approach", 200, 260, True, 215),  # detected late
        ("j1", "gnss_jamming", 400, 500, True, None),  # detected only by a coordinated alert
        ("s1", "gnss_spoofing", 600, 700, True, None),  # missed
        ("e1", "power_transient_emp", 800, 800.001, True, 802),  # detected in time
        ("b1", "bird", 1000, 1100, False, None),  # a false drone alarm happens here
        ("sg1", "sag", 1500, 1502, False, None),  # a sag alert here is not an attack
    ]
)

ALERTS = [
    alert("i1", "drone_approach", 104),
    alert("i1", "drone_approach", 120, seq=2, state="update"),
    alert("i1", "drone_approach", 150, seq=3, state="closed"),
    alert("i10", "drone_approach", 110),  # second incident for d1: a duplicate
    alert("i2", "drone_approach", 230),
    emp("i3", 800.5, "surge"),  # classified as a surge first...
    emp("i3", 801, "emp_like", seq=2),  # ...then upgraded: detection time is here
    emp("i4", 801.5, "sag"),
    alert("i5", "drone_approach", 1050),  # false alarm during the bird
    alert("i6", "coordinated_attack", 410),
    emp("i7", 1501, "sag"),
    alert("i8", "sensor_fault", 1700),
    alert("i9", "gnss_spoofing", 2000),  # false alarm with no truth around
]


@pytest.fixture(scope="module")
def result() -> dict:
    return score(TRUTH, ALERTS, SPAN)


def test_totals(result):
    t = result["totals"]
    assert (t["truth"], t["detected"], t["missed"], t["timely"]) == (5, 4, 1, 3)
    assert t["recall"] == 0.8
    assert t["timely_recall"] == 0.6
    # Latencies 4 (d1), 30 (d2), 10 (j1), 1 (e1).
    assert t["latency_s"] == {"mean": 11.25, "median": 7.0, "p90": 24.0, "max": 30.0}
    assert t["false_alarms"] == 2
    assert t["false_alarms_per_hour"] == 2.0
    assert t["false_alarms_during"] == {"bird": 1, "none": 1}
    assert t["duplicates"] == 1
    assert t["incidents"] == 7  # i1, i10, i2, i3, i5, i6, i9


def test_per_row(result):
    rows = {r["object_id"]: r for r in result["truth_rows"]}
    assert list(rows) == ["d1", "d2", "j1", "s1", "e1"]
    assert rows["d1"]["detected"] and rows["d1"]["timely"]
    assert rows["d1"]["incident_id"] == "i1"
    assert rows["d1"]["latency_s"] == 4.0
    assert rows["d2"]["detected"] and not rows["d2"]["timely"]
    assert rows["d2"]["latency_s"] == 30.0
    assert rows["s1"]["detected"] is False and rows["s1"]["incident_id"] is None
    assert rows["s1"]["latency_s"] is None
    assert rows["j1"]["incident_id"] == "i6"
    assert rows["j1"]["matched_by"] == "coordinated_attack"
    assert rows["e1"]["incident_id"] == "i3"
    assert rows["e1"]["latency_s"] == 1.0
    assert rows["e1"]["timely"] is True


def test_per_kind(result):
    k = result["kinds"]
    da = k["drone_approach"]
    assert (da["truth"], da["detected"], da["timely"], da["incidents"]) == (2, 2, 1, 4)
    assert (da["recall"], da["timely_recall"]) == (1.0, 0.5)
    assert da["latency_s"]["mean"] == 17.0
    assert (da["false_alarms"], da["false_alarms_during"], da["duplicates"]) == (1, {"bird": 1}, 1)
    assert k["gnss_jamming"]["detected"] == 1 and k["gnss_jamming"]["incidents"] == 0
    sp = k["gnss_spoofing"]
    assert (sp["truth"], sp["detected"], sp["recall"], sp["false_alarms"]) == (1, 0, 0.0, 1)
    assert sp["false_alarms_during"] == {"none": 1}
    em = k["power_transient_emp"]
    assert (em["truth"], em["detected"], em["incidents"], em["false_alarms"]) == (1, 1, 1, 0)
    co = k["coordinated_attack"]
    assert (co["incidents"], co["corroborating"], co["rows_detected"], co["false_alarms"]) == (
        1,
        1,
        1,
        0,
    )


def test_false_alarm_list_names_the_bird(result):
    fas = result["false_alarms"]
    assert [f["incident_id"] for f in fas] == ["i5", "i9"]
    assert fas[0]["during"] == "bird" and fas[0]["during_object_id"] == "b1"
    assert fas[0]["overlapping"] == ["bird:b1"]
    assert fas[1]["during"] is None


def test_non_attack_alerts_are_counted_apart(result):
    # power_transient sags (one during a sag truth row) are neither attacks nor false alarms.
    assert result["other_alerts"] == {"power_transient/sag": 2, "sensor_fault": 1}
    assert all(f["kind"] != "power_transient" for f in result["false_alarms"])


def test_deterministic_and_json_ready(result):
    shuffled = ALERTS[:]
    random.Random(7).shuffle(shuffled)
    again = score(TRUTH.sample(fraction=1.0, shuffle=True, seed=3), shuffled, SPAN)
    assert json.dumps(again) == json.dumps(result)
    assert json.dumps(result) == json.dumps(result, sort_keys=True)


def test_repeated_alert_id_is_dropped():
    first = alert("i1", "drone_approach", 104)
    copy = dict(first, t_detect_ns=s(90))  # same alert_id: a consumer drops it
    r = score(TRUTH, [first, copy], SPAN)
    assert r["inputs"]["alert_messages"] == 2
    rows = {e["object_id"]: e for e in r["truth_rows"]}
    assert rows["d1"]["latency_s"] == 4.0


def test_tolerance_window_edges():
    truth = truth_df([("d", "drone_approach", 100, 160, True, None)])
    early_ok = score(truth, [alert("a", "drone_approach", 95)], SPAN)
    row = early_ok["truth_rows"][0]
    assert row["detected"] and row["latency_s"] == 0.0 and row["latency_raw_s"] == -5.0
    too_early = score(truth, [alert("a", "drone_approach", 94.999)], SPAN)
    assert not too_early["truth_rows"][0]["detected"]
    assert too_early["totals"]["false_alarms"] == 1
    late_ok = score(truth, [alert("a", "drone_approach", 170)], SPAN)
    assert late_ok["truth_rows"][0]["latency_s"] == 70.0
    too_late = score(truth, [alert("a", "drone_approach", 170.001)], SPAN)
    assert too_late["totals"]["detected"] == 0
    wider = score(
        truth,
        [alert("a", "drone_approach", 90)],
        SPAN,
        settings=ScoreSettings(pre_tolerance_s=10.0),
    )
    assert wider["totals"]["detected"] == 1


def test_swarm_needs_one_incident_per_drone_and_pairs_optimally():
    # Windows (pre 5 s, post 10 s): a [95, 170], b [105, 130]. Incident x at 112 fits
    # both, y at 150 only a. Pairing x with a (the earliest start) would leave b
    # undetected and y a duplicate; the scorer detects both.
    a = ("a", "drone_approach", 100, 160, True, None)
    b = ("b", "drone_approach", 110, 120, True, None)
    incidents = [alert("x", "drone_approach", 112), alert("y", "drone_approach", 150)]
    r = score(truth_df([a, b]), incidents, SPAN)
    rows = {e["object_id"]: e for e in r["truth_rows"]}
    assert (rows["a"]["incident_id"], rows["b"]["incident_id"]) == ("y", "x")
    assert r["totals"]["detected"] == 2 and r["totals"]["duplicates"] == 0

    # A third drone of the swarm with no incident of its own is missed, not covered.
    c = ("c", "drone_approach", 100, 160, True, None)
    r = score(truth_df([a, b, c]), incidents, SPAN)
    rows = {e["object_id"]: e for e in r["truth_rows"]}
    assert rows["b"]["incident_id"] == "x"
    assert {rows["a"]["incident_id"], rows["c"]["incident_id"]} == {"y", None}
    assert r["totals"]["detected"] == 2 and r["totals"]["false_alarms"] == 0


def test_coordinated_alert_far_from_any_attack_is_a_false_alarm():
    r = score(TRUTH, [alert("c", "coordinated_attack", 3000)], SPAN)
    assert r["kinds"]["coordinated_attack"]["false_alarms"] == 1
    assert r["totals"]["false_alarms"] == 1


def test_empty_inputs():
    r = score(pl.DataFrame(schema=TRUTH_SCHEMA), [], (T0, T0))
    assert r["totals"]["truth"] == 0
    assert r["totals"]["recall"] is None
    assert r["totals"]["false_alarms_per_hour"] is None
    assert r["truth_rows"] == [] and r["false_alarms"] == []
    assert "tracking" not in r


def test_malformed_alerts_are_counted_not_fatal():
    r = score(TRUTH, [{"kind": "drone_approach"}, "junk", alert("i1", "drone_approach", 104)], SPAN)  # type: ignore[list-item]
    assert r["inputs"]["malformed_alerts"] == 2
    assert r["totals"]["detected"] == 1


def test_gospa_over_drone_tracks():
    tt = pl.DataFrame(
        {
            "t_ns": [s(0), s(0), s(1), s(1), s(2)],
            "object_id": ["D", "B", "D", "B", "D"],
            "class": ["drone", "bird", "drone", "bird", "drone"],
            "x_m": [0.0, 500.0, 10.0, 500.0, 20.0],
            "y_m": [0.0] * 5,
            "z_m": [50.0, 30.0, 50.0, 30.0, 50.0],
        }
    )
    tracks = pl.DataFrame(
        {
            "t_ns": [s(0.2), s(0.2), s(1), s(5)],
            "track_id": [1, 2, 1, 1],
            # At 0.2 s, carried back to 0 s at 10 m/s: exactly on the drone.
            "x_m": [2.0, 500.0, 13.0, 100.0],
            "y_m": [0.0, 0.0, 4.0, 0.0],
            "z_m": [50.0, 30.0, 50.0, 50.0],
            "vx_mps": [10.0, 0.0, 0.0, 0.0],
            "vy_mps": [0.0] * 4,
            "vz_mps": [0.0] * 4,
            "class": ["drone", "bird", "drone", "drone"],
            "p_drone": [0.9, 0.1, 0.9, 0.9],
        }
    )
    r = score(TRUTH, [], SPAN, tracks=tracks, truth_tracks=tt)["tracking"]
    # Scans: 0 s (0 m), 1 s (5 m), 2 s (no track near: drone missed), 5 s (track, no truth: false).
    half = math.sqrt(100.0**2 / 2)
    assert r["scans"] == 4
    assert r["gospa_mean_m"] == pytest.approx((0 + 5 + 2 * half) / 4, abs=1e-6)
    assert r["localisation_mean"] == pytest.approx(25 / 4)
    assert r["missed_mean"] == pytest.approx(1250.0)
    assert r["false_mean"] == pytest.approx(1250.0)
    assert (r["assigned"], r["missed"], r["false"]) == (2, 1, 1)
    assert r["localisation_error_m"] == pytest.approx(math.sqrt(12.5), abs=1e-6)
