"""The scenario registry: every scenario builds, speaks the contract, and says what it should."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest

from drivers.json_feeds import (
    RadarPlotsDecoder,
    RfDetectionsDecoder,
    RfSpectrumDecoder,
    SwitchgearEventsDecoder,
)
from drivers.recording import TRUTH_SCHEMA, TRUTH_TRACKS_SCHEMA
from drivers.simulated.base import NS, SimContext
from drivers.simulated.objects import distance_to_polygon, object_truth, split_objects, zones_enu
from drivers.simulated.scenarios import SCENARIOS, build, list_scenarios
from drivers.simulated.site import SIM_SITE_TOML, SIM_T0_NS, sim_site
from fusion.config import parse_config
from fusion.records import Rejected

REQUIRED = (
    "approach", "swarm", "birds", "aircraft", "far_drone", "jamming",
    "spoofing", "emp", "switching", "coordinated", "quiet_hour",
)  # fmt: skip
ALERT_KINDS = {"drone_approach", "gnss_jamming", "gnss_spoofing", "power_transient_emp"}
QUIET_KINDS = {"bird", "aircraft", "drone_far", "switching", "sag", "fault", "clutter"}
# Short runs keep the file quick; scenarios whose story needs the full default run keep it.
TEST_DURATION_S = {
    "approach": None, "swarm": None, "coordinated": None, "birds": 150.0, "aircraft": 120.0,
    "far_drone": 120.0, "jamming": 150.0, "spoofing": 150.0, "emp": 60.0, "switching": 90.0,
    "quiet_hour": 120.0,
}  # fmt: skip
SEED = 4

_cache: dict[str, tuple] = {}


def built(name: str):
    if name not in _cache:
        _cache[name] = build(name, SEED, TEST_DURATION_S[name])
    return _cache[name]


def stream_of(channel: str) -> str:
    return channel.rsplit("/", 1)[-1]


def check_radar(msg: dict) -> None:
    assert (
        isinstance(msg["sensor"], str)
        and isinstance(msg["t"], float)
        and isinstance(msg["scan"], int)
    )
    for p in msg["plots"]:
        assert isinstance(p["range_m"], float) and isinstance(p["az_deg"], float)
        for k in ("el_deg", "vr_mps", "rcs_dbsm", "snr_db"):
            assert isinstance(p[k], float) and math.isfinite(p[k])


def check_detections(msg: dict) -> None:
    assert isinstance(msg["sensor"], str) and isinstance(msg["t"], float)
    for d in msg["detections"]:
        assert isinstance(d["freq_hz"], float) and isinstance(d["rssi_dbm"], float)
        assert 0.0 <= d["bearing_deg"] < 360.0 and isinstance(d["protocol"], str)
        if "uas_id" in d:
            assert isinstance(d["uas_id"], str)
            assert all(
                isinstance(d[k], float)
                for k in ("uas_lat", "uas_lon", "uas_alt_m", "operator_lat", "operator_lon")
            )


def check_spectrum(msg: dict) -> None:
    assert isinstance(msg["sensor"], str) and isinstance(msg["t"], float)
    assert isinstance(msg["f_start_hz"], float) and msg["bin_hz"] == 1.0e6
    assert msg["power_dbm"] and all(isinstance(v, float) for v in msg["power_dbm"])


def check_events(msg: dict) -> None:
    assert isinstance(msg["sensor"], str) and isinstance(msg["t"], float)
    assert msg["event"] in (
        "ats_transfer", "breaker_trip", "breaker_close", "ups_on_battery",
        "ups_on_mains", "generator_start", "generator_stop",
    )  # fmt: skip


CHECKS = {
    "plots": check_radar,
    "detections": check_detections,
    "spectrum": check_spectrum,
    "events": check_events,
}
DECODERS = {
    "plots": RadarPlotsDecoder,
    "detections": RfDetectionsDecoder,
    "spectrum": RfSpectrumDecoder,
    "events": SwitchgearEventsDecoder,
}


def secs(t_ns: int) -> float:
    return (t_ns - SIM_T0_NS) / NS


def test_registry_lists_every_required_scenario():
    names = [n for n, _ in list_scenarios()]
    assert set(REQUIRED) <= set(names) and names == list(SCENARIOS)
    assert all(desc for _, desc in list_scenarios())
    assert SCENARIOS["quiet_hour"].duration_s == 3600.0
    assert all(120.0 <= SCENARIOS[n].duration_s <= 300.0 for n in REQUIRED if n != "quiet_hour")
    with pytest.raises(ValueError, match="unknown scenario"):
        build("no-such-scenario", 1)


@pytest.mark.parametrize("name", REQUIRED)
def test_scenario_builds_and_speaks_the_contract(name):
    toml, out = built(name)
    assert toml == SIM_SITE_TOML
    site = parse_config(toml)
    t_rx = [r.t_rx_ns for r in out.feeds]
    assert t_rx == sorted(t_rx)
    assert all(type(t) is int for t in t_rx)
    assert all(type(r.payload) is bytes and r.transport in ("mqtt", "serial") for r in out.feeds)
    duration = TEST_DURATION_S[name] or SCENARIOS[name].duration_s
    assert t_rx[0] >= SIM_T0_NS and t_rx[-1] <= SIM_T0_NS + int((duration + 2.0) * NS)
    # No sensor is silent (switchgear only speaks when something happens).
    channels = {r.channel for r in out.feeds}
    for s in site.sensors:
        if s.kind == "switchgear":
            continue
        if s.transport == "serial":
            assert s.id in channels, s.id
        else:
            prefix = s.topic.rsplit("/", 1)[0] + "/"
            assert any(c.startswith(prefix) for c in channels), s.id
    counts: dict[str, int] = {}
    decoders = {}
    for row in out.feeds:
        stream = stream_of(row.channel)
        if row.transport != "mqtt" or stream not in CHECKS:
            continue
        msg = json.loads(row.payload.decode("utf-8"))
        CHECKS[stream](msg)
        counts[stream] = counts.get(stream, 0) + 1
        dec = decoders.setdefault(row.channel, DECODERS[stream](msg["sensor"], row.channel))
        records = dec.feed(row.payload, row.t_rx_ns)
        assert not any(isinstance(r, Rejected) for r in records), records
    for stream in ("plots", "detections", "spectrum"):
        assert counts[stream] >= duration - 2  # 1 Hz radar scans and RF reports, 3 sweeps/s
    assert counts["spectrum"] >= 3 * (duration - 2)


@pytest.mark.parametrize("name", REQUIRED)
def test_truth_has_contract_kinds_and_columns(name):
    _, out = built(name)
    assert out.truth
    truth = pl.DataFrame(
        {k: [getattr(r, k) for r in out.truth] for k in TRUTH_SCHEMA},
        schema=TRUTH_SCHEMA,
        strict=True,
    )
    assert truth.schema == pl.Schema(TRUTH_SCHEMA)
    for r in out.truth:
        assert r.kind in ALERT_KINDS | QUIET_KINDS, r.kind
        assert r.must_alert is (r.kind in ALERT_KINDS)
        assert r.t_start_ns <= r.t_end_ns
        if r.kind == "drone_approach":
            assert r.t_start_ns <= r.deadline_ns <= r.t_end_ns
        if not r.must_alert:
            assert r.deadline_ns is None
    tracks = out.truth_tracks
    df = pl.DataFrame(
        {
            "t_ns": [r.t_ns for r in tracks],
            "object_id": [r.object_id for r in tracks],
            "class": [r.cls for r in tracks],
            "x_m": [r.x_m for r in tracks],
            "y_m": [r.y_m for r in tracks],
            "z_m": [r.z_m for r in tracks],
        },
        schema=TRUTH_TRACKS_SCHEMA,
        strict=True,
    )
    assert set(df["class"].unique()) <= {"drone", "bird", "aircraft"}
    assert df["t_ns"].is_sorted()
    moving = {
        r.object_id
        for r in out.truth
        if r.kind in ("drone_approach", "drone_far", "bird", "aircraft")
    }
    assert set(df["object_id"].unique()) <= moving


def kinds(name: str) -> dict[str, list]:
    _, out = built(name)
    by: dict[str, list] = {}
    for r in out.truth:
        by.setdefault(r.kind, []).append(r)
    return by


def test_approach_has_one_drone_with_a_deadline_after_its_start():
    k = kinds("approach")
    (row,) = k["drone_approach"]
    assert row.deadline_ns > row.t_start_ns
    assert "drone_far" not in k
    # The drone is first seen 3-5 km out and the radar sees it before the deadline.
    _, out = built("approach")
    first = min((r for r in out.truth_tracks if r.object_id == row.object_id), key=lambda r: r.t_ns)
    zone = zones_enu(SimContext(sim_site(), SIM_T0_NS, 1.0, 0))[0]
    assert 2500.0 < distance_to_polygon(first.x_m, first.y_m, zone.polygon)[0] < 5000.0


def test_swarm_brings_three_to_six_drones():
    k = kinds("swarm")
    drones = {r.object_id for r in k.get("drone_approach", []) + k.get("drone_far", [])}
    assert 3 <= len(drones) <= 6
    assert len({r.object_id for r in k["drone_approach"]}) >= 3


def test_birds_cross_the_alert_radius_and_no_drone_flies():
    k = kinds("birds")
    assert not {"drone_approach", "drone_far"} & set(k)
    _, out = built("birds")
    zone = zones_enu(SimContext(sim_site(), SIM_T0_NS, 1.0, 0))[0]
    close_flocks = set()
    for r in out.truth_tracks:
        if (
            r.cls == "bird"
            and distance_to_polygon(r.x_m, r.y_m, zone.polygon)[0] < zone.alert_radius_m
        ):
            close_flocks.add(r.object_id.rsplit("-", 1)[0])
    assert len(close_flocks) >= 2


def test_aircraft_fly_over_and_no_drone():
    k = kinds("aircraft")
    assert 1 <= len(k["aircraft"]) <= 3
    assert not {"drone_approach", "drone_far"} & set(k)


@pytest.mark.parametrize("seed", range(8))
def test_far_drone_never_comes_within_the_alert_radius(seed):
    ctx = SimContext(sim_site(), SIM_T0_NS, SCENARIOS["far_drone"].duration_s, seed)
    events = SCENARIOS["far_drone"].events(ctx, ctx.rng("scenario:far_drone"))
    scene = split_objects(events.objects)
    rows = object_truth(ctx, scene.moving, scene.clutter)
    assert {r.kind for r in rows} == {"drone_far"}
    assert not events.jamming and not events.spoofing and not events.power


def test_far_drone_build_has_no_approach():
    k = kinds("far_drone")
    assert "drone_approach" not in k and k["drone_far"]


def test_jamming_and_spoofing_episodes():
    ctx = SimContext(sim_site(), SIM_T0_NS, 300.0, SEED)
    ev = SCENARIOS["jamming"].events(ctx, ctx.rng("scenario:jamming"))
    assert len(ev.jamming) == 1 and "L1" in ev.jamming[0].bands
    assert len(kinds("jamming")["gnss_jamming"]) == 1
    ev = SCENARIOS["spoofing"].events(ctx, ctx.rng("scenario:spoofing"))
    assert len(ev.spoofing) == 1 and not ev.jamming
    assert len(kinds("spoofing")["gnss_spoofing"]) == 1


def test_emp_hits_both_feeds_and_switching_never_alerts():
    assert 1 <= len(kinds("emp")["power_transient_emp"]) <= 3
    k = kinds("switching")
    assert not ALERT_KINDS & set(k)
    assert {"switching", "sag", "fault"} <= set(k)
    _, out = built("switching")
    assert any(stream_of(r.channel) == "events" for r in out.feeds)  # the ATS speaks


def test_coordinated_attack_lands_within_minutes():
    k = kinds("coordinated")
    starts = [
        k[kind][0].t_start_ns for kind in ("drone_approach", "gnss_jamming", "power_transient_emp")
    ]
    assert max(starts) - min(starts) <= 300 * NS


def test_quiet_hour_is_only_background():
    k = kinds("quiet_hour")
    assert set(k) <= {"bird", "clutter"}
    _, out = built("quiet_hour")
    zone = zones_enu(SimContext(sim_site(), SIM_T0_NS, 1.0, 0))[0]
    birds = np.array([[r.x_m, r.y_m] for r in out.truth_tracks])
    if len(birds):
        assert (
            distance_to_polygon(birds[:, 0], birds[:, 1], zone.polygon).min() > zone.alert_radius_m
        )


def test_same_seed_gives_identical_feeds():
    _, a = build("emp", 21, 30.0)
    _, b = build("emp", 21, 30.0)
    _, c = build("emp", 22, 30.0)
    assert a.feeds == b.feeds and a.truth == b.truth and a.truth_tracks == b.truth_tracks
    radar = [r.payload for r in a.feeds if stream_of(r.channel) == "plots"]
    assert radar != [r.payload for r in c.feeds if stream_of(r.channel) == "plots"]
    assert secs(a.feeds[-1].t_rx_ns) <= 32.0


def test_too_short_a_duration_is_refused_clearly():
    with pytest.raises(ValueError, match="scenario approach needs at least 240 s, not 60 s"):
        build("approach", 1, 60.0)
