"""Routing of received messages to sensors and streams."""

from __future__ import annotations

from drivers.router import Router
from drivers.topics import topic_matches
from fusion.config import load_config
from fusion.records import RadarScan


def test_topic_matches():
    assert topic_matches("rampart/s/rf/rf-1/+", "rampart/s/rf/rf-1/spectrum")
    assert not topic_matches("rampart/s/rf/rf-1/+", "rampart/s/rf/rf-1/spectrum/x")
    assert topic_matches("rampart/#", "rampart/s/a")
    assert topic_matches("a/b", "a/b") and not topic_matches("a/b", "a/c")


def test_routes_ignores_and_rejects(sample_recording):
    router = Router(load_config(sample_recording / "site.toml"))
    t = 1_767_686_401_000_000_000
    ok = router.decode(
        t,
        "mqtt",
        "rampart/dc-east-1/radar/radar-1/plots",
        b'{"sensor":"radar-1","t":1767686400.9,"scan":1,"plots":[]}',
    )
    assert isinstance(ok[0], RadarScan)
    assert (
        router.decode(t, "mqtt", "rampart/dc-east-1/radar/radar-1/status", b'{"state":"ok"}') == []
    )
    assert router.ignored["radar-1"] == 1  # counted per sensor: topics are not metric labels
    (rej,) = router.decode(t, "mqtt", "rampart/dc-east-1/radar/radar-9/plots", b"{}")
    assert rej.reason == "unknown_sensor" and "radar-9" in rej.detail
    assert rej.sensor == "unknown"  # one source for all unowned topics; the topic is in the detail
    (rej,) = router.decode(t, "serial", "ttyUSB7", b"\x00")
    assert rej.reason == "unknown_sensor" and rej.sensor == "unknown" and "ttyUSB7" in rej.detail
    (rej,) = router.decode(t, "carrier-pigeon", "x", b"")
    assert rej.reason == "unknown_transport"
