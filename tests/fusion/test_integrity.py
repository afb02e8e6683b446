"""Authenticated sensors at the application level: impersonation, replays and unknown sources
are rejected, counted, and alerted (issue #8). The broker-level half (ACLs refusing a sensor
publishing on another's topic) is tests/service/test_tls_acl.py."""

from __future__ import annotations

import json

from fusion.cli.pipeline import Pipeline
from fusion.config import parse_config
from tests.conftest import DATA

S = 1_000_000_000
T0 = 1_767_686_400 * S
SITE = parse_config((DATA / "recording-sample" / "site.toml").read_text())
RADAR = "rampart/dc-east-1/radar/radar-1/plots"
RF = "rampart/dc-east-1/rf/rf-1/detections"


def scan(n: int, t_s: float, sensor: str = "radar-1") -> bytes:
    return json.dumps({"sensor": sensor, "t": T0 / S + t_s, "scan": n, "plots": []}).encode()


def rf(t_s: float) -> bytes:
    return json.dumps({"sensor": "rf-1", "t": T0 / S + t_s, "detections": []}).encode()


def run(messages):
    pipe = Pipeline(SITE, lambda a: None)
    for t_rx_s, topic, payload in sorted(messages, key=lambda m: m[0]):
        pipe.receive(T0 + int(t_rx_s * S), "mqtt", topic, payload)
    pipe.finish()
    return pipe


def normal(seconds: int):
    return [(t + 0.1, RADAR, scan(1000 + t, t)) for t in range(seconds)] + [
        (t + 0.2, RF, rf(t)) for t in range(seconds)
    ]


def spoofing(pipe):
    return [a for a in pipe.alerts if a.kind == "sensor_spoofing"]


def test_clean_traffic_raises_nothing():
    pipe = run(normal(60))
    assert spoofing(pipe) == [] and pipe.ledger.total() == 0


def test_radar_message_on_the_rf_topic_is_impersonation():
    pipe = run([*normal(30), (10.5, RF, scan(5000, 10.4))])
    assert pipe.ledger.counts[("rf-1", "sensor_mismatch")] == 1
    (alert,) = [a for a in spoofing(pipe) if a.state == "open"]
    assert (
        alert.severity == "high"
        and alert.sensors == ["rf-1"]
        and alert.details["reason"] == "impersonation"
    )
    assert "radar-1" in alert.details["last_detail"]


def test_replayed_old_scans_are_rejected_and_alerted():
    # An attacker replays scans 1005-1009 (captured earlier) at 20-24 s.
    replay = [(20 + k + 0.5, RADAR, scan(1005 + k, 5 + k)) for k in range(5)]
    pipe = run(normal(40) + replay)
    rejected = pipe.ledger.total("radar-1", "duplicate") + pipe.ledger.total("radar-1", "late")
    assert rejected == 5
    opened = [a for a in spoofing(pipe) if a.state == "open"]
    assert [a.details["reason"] for a in opened] == ["replay"]
    assert opened[0].details["rejections"] >= 3
    assert pipe.engine.delivered_by_sensor["radar-1"] == 40  # the real scans all went through


def test_same_scan_number_with_a_fresh_time_is_still_a_replay():
    replay = [(20 + k + 0.5, RADAR, scan(1010, 20 + k + 0.4)) for k in range(4)]
    pipe = run(normal(40) + replay)
    assert pipe.ledger.total("radar-1", "duplicate") == 4
    assert [a.details["reason"] for a in spoofing(pipe) if a.state == "open"] == ["replay"]


def test_unknown_sensor_is_rejected_and_alerted():
    ghost = "rampart/dc-east-1/radar/radar-9/plots"
    pipe = run([*normal(20), (5.5, ghost, scan(1, 5.4, "radar-9"))])
    assert pipe.ledger.counts[("unknown", "unknown_sensor")] == 1
    (alert,) = [a for a in spoofing(pipe) if a.state == "open"]
    assert alert.details["reason"] == "unknown_source" and alert.sensors == []
    assert ghost in alert.details["last_detail"] and ghost in alert.details["examples"][0]


def test_single_mqtt_redelivery_is_not_an_attack():
    pipe = run([*normal(30), (12.15, RADAR, scan(1012, 12))])
    assert pipe.ledger.total("radar-1", "duplicate") == 1
    assert spoofing(pipe) == []


def test_incident_closes_when_the_replay_stops():
    replay = [(20 + k + 0.5, RADAR, scan(1005 + k, 5 + k)) for k in range(5)]
    pipe = run(normal(200) + replay)
    states = [a.state for a in spoofing(pipe)]
    assert states[0] == "open" and states[-1] == "closed"
