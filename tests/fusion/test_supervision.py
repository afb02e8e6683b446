"""Sensor supervision: silence and garbage open sensor_fault; recovery closes it."""

from __future__ import annotations

import numpy as np

from fusion.config import EngineSettings, Sensor
from fusion.engine import Engine
from fusion.incidents import IncidentBook
from fusion.records import PowerFrame, RadarScan, Rejected
from fusion.rejects import RejectLedger
from fusion.supervision import SensorSupervision

S = 1_000_000_000
RADAR = Sensor("radar-1", "radar", "mqtt", 52.0, 4.0, 10.0, topic="t", fault_after_s=5.0)
GNSS = Sensor("gnss-1", "gnss", "serial", port="/dev/null", fault_after_s=5.0)


def run(records, sensors=(RADAR,)):
    alerts = []
    eng = Engine(
        [SensorSupervision(sensors)],
        IncidentBook("site"),
        RejectLedger(),
        alerts.append,
        EngineSettings(lateness_s=0.5),
    )
    for r in sorted(records, key=lambda r: r.t_rx_ns):
        eng.push(r)
        eng.advance(r.t_rx_ns)
    eng.finish()
    return alerts


def radar(t_s: float, n: int) -> RadarScan:
    return RadarScan("radar-1", int(t_s * S), int((t_s + 0.1) * S), n, np.zeros((0, 6)))


def garbage(sensor: str, t_s: float) -> Rejected:
    return Rejected(sensor, int(t_s * S), int(t_s * S), "bad_json", "test")


def test_silence_opens_and_recovery_closes():
    scans = [radar(t, i) for i, t in enumerate(range(0, 20))] + [
        radar(t, 100 + t) for t in range(40, 60)
    ]
    alerts = run(scans)
    assert [(a.kind, a.state) for a in alerts] == [
        ("sensor_fault", "open"),
        ("sensor_fault", "closed"),
    ]
    opened, closed = alerts
    assert opened.incident_id == closed.incident_id
    assert opened.details["reason"] == "silent"
    assert opened.t_event_ns == 19 * S  # the last scan before the gap
    # Decided when the watermark passed 19 s + 5 s: by a scan received ~40.1 s (first after the gap).
    assert opened.t_detect_ns >= 24 * S
    assert closed.details["duration_s"] == 21.0
    assert opened.sensors == ["radar-1"]


def test_no_fault_when_sensor_keeps_talking():
    assert run([radar(t * 0.9, i) for i, t in enumerate(range(100))]) == []


def test_garbage_only_sensor_is_a_fault_with_reason_garbage():
    recs = [radar(t, t) for t in range(0, 10)] + [
        garbage("radar-1", 10 + 0.5 * k) for k in range(40)
    ]
    recs += [radar(t, t) for t in range(31, 35)]
    alerts = run(recs)
    assert [a.state for a in alerts] == ["open", "closed"]
    assert alerts[0].details["reason"] == "garbage"
    assert alerts[0].details["last_reject_reason"] == "bad_json"


def test_sensor_never_heard_from_is_silent():
    recs = [radar(t, t) for t in range(0, 30)]
    alerts = run(recs, sensors=(RADAR, GNSS))
    assert [(a.sensors, a.state) for a in alerts] == [(["gnss-1"], "open")]


def test_power_frame_gap_is_a_silent_fault_with_lost_frames():
    pq = Sensor("pq-a", "power", "serial", port="/dev/null", board=1, fault_after_s=2.0)

    def frame(seq: int, lost: int = 0) -> PowerFrame:
        t = seq * 20_000_000
        return PowerFrame(
            "pq-a",
            t,
            t + 21_000_000,
            1,
            seq,
            12800,
            False,
            False,
            ("va", "vb", "vc"),
            np.zeros((256, 3), np.int16),
            np.ones(3, np.float32),
            lost,
        )

    frames = (
        [frame(s) for s in range(100)]
        + [frame(300, lost=199)]
        + [frame(s) for s in range(301, 320)]
    )
    alerts = run(frames, sensors=(pq,))
    assert [(a.state, a.details["reason"]) for a in alerts] == [
        ("open", "silent"),
        ("closed", "silent"),
    ]
    assert (
        alerts[1].details["lost_frames_total"] == 199
    )  # the close says the link lost frames, not the board
