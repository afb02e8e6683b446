"""The whole pipeline on recordings: determinism, the interop sample, supervision on a gap."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.recording import RecordingReader, RecordingWriter
from drivers.simulated import scenarios
from drivers.simulated.base import NS, FeedRow, SimContext
from drivers.simulated.faults import SensorFault, apply_faults
from drivers.simulated.site import SIM_T0_NS
from fusion.cli.pipeline import Pipeline
from fusion.cli.replay import replay
from fusion.config import parse_config


def rampart(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fusion", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def faulty_recording(tmp_path_factory):
    """90 s of the site's background with a 20 s radar outage and 15 s of line noise on gnss-1."""
    out = tmp_path_factory.mktemp("rec") / "faulty"
    site_toml, sim = scenarios.build("quiet_hour", seed=3, duration_s=90)
    ctx = SimContext(parse_config(site_toml), SIM_T0_NS, 90, 3)
    feeds = apply_faults(
        ctx,
        sim.feeds,
        [SensorFault("radar-1", "outage", 30, 50), SensorFault("gnss-1", "garbage", 40, 55)],
    )
    with RecordingWriter(out, site_toml) as w:
        w.extend(feeds)
        w.write_truth(sim.truth)
        w.write_truth_tracks(sim.truth_tracks)
    return out


def test_sensor_fault_opens_and_closes_on_gap(faulty_recording):
    site = parse_config(RecordingReader(faulty_recording).site_toml())
    result = replay(faulty_recording, site, [])
    faults = [a for a in result.pipeline.alerts if a.kind == "sensor_fault"]
    by_sensor = {}
    for a in faults:
        by_sensor.setdefault(a.sensors[0], []).append(a)
    assert set(by_sensor) == {"radar-1", "gnss-1"}, [
        (a.sensors, a.state, a.summary) for a in faults
    ]
    radar = by_sensor["radar-1"]
    assert [a.state for a in radar] == ["open", "closed"]
    assert radar[0].details["reason"] == "silent"
    # The last scan before the outage is within 1 s of its start; opened ~5 s later (fault_after_s).
    assert SIM_T0_NS + 29 * NS <= radar[0].t_event_ns <= SIM_T0_NS + 30 * NS
    assert SIM_T0_NS + 34 * NS <= radar[0].t_detect_ns <= SIM_T0_NS + 37 * NS
    assert SIM_T0_NS + 50 * NS <= radar[1].t_detect_ns <= SIM_T0_NS + 53 * NS
    gnss = by_sensor["gnss-1"]
    assert [a.state for a in gnss] == ["open", "closed"]
    assert gnss[0].details["reason"] == "garbage"
    assert result.pipeline.ledger.total("gnss-1") > 0
    # No other sensor faulted: the outage of one never blinds another.
    assert all(a.sensors[0] in ("radar-1", "gnss-1") for a in faults)


def test_replay_twice_gives_byte_identical_alerts(faulty_recording, tmp_path):
    outs = []
    for i in range(2):
        path = tmp_path / f"alerts-{i}.jsonl"
        proc = rampart(
            "replay", str(faulty_recording), "--fast", "--quiet", "--alerts-out", str(path)
        )
        assert proc.returncode == 0, proc.stderr
        outs.append(path.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0].count(b"\n") >= 4
    for line in outs[0].splitlines():
        alert = json.loads(line)
        assert set(alert) >= {
            "alert_id",
            "incident_id",
            "seq",
            "state",
            "kind",
            "severity",
            "confidence",
            "site",
            "sensors",
            "t_event_ns",
            "t_detect_ns",
            "summary",
            "details",
        }


def test_interop_sample_replays(sample_recording, tmp_path):
    alerts = tmp_path / "a.jsonl"
    proc = rampart(
        "replay",
        str(sample_recording),
        "--fast",
        "--alerts-out",
        str(alerts),
        "--tracks-out",
        str(tmp_path / "t.parquet"),
    )
    assert proc.returncode == 0, proc.stderr
    # The summary accounts for every sensor of the sample and names the truncated radar payload.
    assert "radar-1" in proc.stdout and "bad_json 1" in proc.stdout
    assert "ignored streams: radar-1 3" in proc.stdout  # per sensor (issue #12: bounded keys)
    site = parse_config((sample_recording / "site.toml").read_text())
    result = replay(sample_recording, site, [])
    delivered = result.pipeline.engine.delivered_by_sensor
    assert delivered["radar-1"] == 29 and delivered["rf-1"] == 60
    assert delivered["pq-a"] > 1400 and delivered["pq-b"] > 1400 and delivered["gnss-1"] > 300
    # A 30 s sample of healthy sensors raises no sensor fault.
    assert [a for a in result.pipeline.alerts if a.kind == "sensor_fault"] == []


def test_out_of_order_duplicate_and_garbage_messages_in_a_recording(tmp_path):
    """Messages shuffled within the window, repeated, and interleaved with garbage lose nothing."""
    site_toml, sim = scenarios.build("quiet_hour", seed=5, duration_s=30)
    site = parse_config(site_toml)
    radar_topic = site.sensor("radar-1").topic
    clean = [f for f in sim.feeds if f.channel == radar_topic]
    messy: list[FeedRow] = []
    for i, f in enumerate(sim.feeds):
        if f.channel != radar_topic:
            messy.append(f)
            continue
        # Every 4th scan arrives 0.5 s late (after its successor), every 5th twice, and junk follows every 6th.
        delay = NS // 2 if i % 4 == 0 else 0
        messy.append(FeedRow(f.t_rx_ns + delay, f.transport, f.channel, f.payload))
        if i % 5 == 0:
            messy.append(FeedRow(f.t_rx_ns + delay + 1000, f.transport, f.channel, f.payload))
        if i % 6 == 0:
            messy.append(
                FeedRow(f.t_rx_ns + 2000, f.transport, f.channel, b'{"sensor": "radar-1", "t": 17')
            )
    messy.sort(key=lambda r: r.t_rx_ns)
    rec = tmp_path / "messy"
    with RecordingWriter(rec, site_toml) as w:
        w.extend(messy)
    result = replay(rec, site, [])
    pipe = result.pipeline
    assert pipe.engine.delivered_by_sensor["radar-1"] == len(clean)
    dups = sum(1 for i, f in enumerate(sim.feeds) if f.channel == radar_topic and i % 5 == 0)
    junk = sum(1 for i, f in enumerate(sim.feeds) if f.channel == radar_topic and i % 6 == 0)
    assert pipe.ledger.counts[("radar-1", "duplicate")] == dups
    assert pipe.ledger.counts[("radar-1", "bad_json")] == junk
    assert pipe.ledger.total("radar-1", "late") == 0


_BASE = None


def _base_feeds():
    global _BASE
    if _BASE is None:
        site_toml, sim = scenarios.build("quiet_hour", seed=9, duration_s=12)
        _BASE = (site_toml, sim.feeds)
    return _BASE


def _delivered(site, feeds):
    pipe = Pipeline(site, lambda a: None)
    for f in feeds:
        pipe.receive(f.t_rx_ns, f.transport, f.channel, f.payload)
    pipe.finish()
    return pipe


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    junk=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=12.0),
            st.sampled_from(
                ["radar", "rf", "gnss-2", "ats", "unknown-topic", "unknown-serial", "foreign-site"]
            ),
            st.binary(max_size=300),
        ),
        max_size=40,
    )
)
def test_junk_on_any_channel_never_stops_the_pipeline_or_loses_other_data(junk):
    """Random payloads injected on sensor topics and unknown channels: every clean message still gets through."""
    site_toml, feeds = _base_feeds()
    site = parse_config(site_toml)
    channel = {
        "radar": ("mqtt", site.sensor("radar-1").topic),
        "rf": ("mqtt", "rampart/sim-site/rf/rf-1/detections"),
        "gnss-2": ("mqtt", "rampart/sim-site/gnss/gnss-2/raw"),
        "ats": ("mqtt", site.sensor("ats-1").topic),
        "unknown-topic": ("mqtt", "rampart/sim-site/radar/radar-7/plots"),
        "unknown-serial": ("serial", "ttyUSB9"),
        "foreign-site": ("mqtt", "rampart/other-site/radar/radar-1/plots"),
    }
    clean = _delivered(site, feeds)
    messy_feeds = list(feeds)
    for t_s, where, payload in junk:
        transport, ch = channel[where]
        # GNSS junk is kept free of frame starts so it cannot swallow the next real frame.
        if where == "gnss-2":
            payload = bytes(b for b in payload if b not in b"$!\xb5\xd3")
        messy_feeds.append(FeedRow(SIM_T0_NS + int(t_s * NS), transport, ch, payload))
    messy_feeds.sort(key=lambda r: r.t_rx_ns)
    messy = _delivered(site, messy_feeds)
    assert messy.engine.delivered_by_sensor == clean.engine.delivered_by_sensor
    # Each junk message is one counted rejection under the source it claimed.
    assert clean.ledger.total() == 0
    for where, source in (("radar", "radar-1"), ("rf", "rf-1"), ("ats", "ats-1")):
        assert messy.ledger.total(source) == sum(1 for _, w, _ in junk if w == where)
    unknown = sum(1 for _, w, _ in junk if w in ("unknown-topic", "unknown-serial", "foreign-site"))
    assert messy.ledger.total(reason="unknown_sensor") == unknown
