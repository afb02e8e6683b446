"""Simulated radar and RF sensors and the objects they see."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from matplotlib.path import Path

from drivers.simulated.base import NS, JammingEpisode, PowerEvent, SimContext
from drivers.simulated.objects import (
    DT_S,
    MovingObject,
    RemoteId,
    RfEmitter,
    aircraft_overflight,
    approaching_drone,
    bird_flock,
    distance_to_polygon,
    far_drone,
    object_truth,
    sensor_enu,
    site_clutter,
    zones_enu,
)
from drivers.simulated.radar import RadarParams, simulate_radar
from drivers.simulated.rf import GNSS_SWEEPS, simulate_rf
from drivers.simulated.site import SIM_T0_NS, sim_site
from fusion.geo import enu_to_polar

RADAR_TOPIC = "rampart/sim-site/radar/radar-1/plots"
PLOT_FIELDS = ("range_m", "az_deg", "el_deg", "vr_mps", "rcs_dbsm", "snr_db")


def make_ctx(duration_s: float = 120.0, seed: int = 11) -> SimContext:
    return SimContext(sim_site(), SIM_T0_NS, duration_s, seed)


def sensors(ctx: SimContext, kind: str) -> list:
    return [s for s in ctx.site.sensors if s.kind == kind]


def scans(out) -> list[dict]:
    return [json.loads(r.payload) for r in out.feeds if r.channel == RADAR_TOPIC]


def hover_at(ctx, object_id, sensor_id, range_m, az_deg, z_m, rcs_dbsm=-15.0, **kw) -> MovingObject:
    """A drone hovering at a given horizontal range/azimuth from a sensor."""
    o = sensor_enu(ctx, ctx.site.sensor(sensor_id))
    xy = o[:2] + range_m * np.array(
        [math.sin(math.radians(az_deg)), math.cos(math.radians(az_deg))]
    )
    return MovingObject.linear(
        object_id, "drone", (xy[0], xy[1], z_m), (0, 0, 0), 0.0, ctx.duration_s, rcs_dbsm, **kw
    )


def truth_polar(ctx, obj: MovingObject, t_s: float, sensor_id: str = "radar-1"):
    pos, vel, _ = obj.state(np.array([t_s]))
    rel = pos[0] - sensor_enu(ctx, ctx.site.sensor(sensor_id))
    r, az, el = enu_to_polar(*rel)
    return float(r), float(az), float(el), float(np.dot(vel[0], rel) / r)


def nearest_plot(msg: dict, r: float, az: float, gate_m: float = 25.0, gate_deg: float = 5.0):
    best = None
    for p in msg["plots"]:
        daz = (p["az_deg"] - az + 180.0) % 360.0 - 180.0
        if (
            abs(p["range_m"] - r) <= gate_m
            and abs(daz) <= gate_deg
            and (best is None or abs(p["range_m"] - r) < abs(best["range_m"] - r))
        ):
            best = p
    return best


def scan_time_s(msg: dict) -> float:
    return msg["t"] - SIM_T0_NS / NS


# --------------------------------------------------------------------------- radar


def test_radar_messages_follow_the_contract():
    ctx = make_ctx(90.0)
    rng = ctx.rng("scenario")
    objects = [
        approaching_drone(ctx, rng, "d1", t_start_s=5.0),
        *site_clutter(ctx, ctx.rng("clutter")),
    ]
    out = simulate_radar(ctx, sensors(ctx, "radar"), objects)
    assert len(out.feeds) in (89, 90, 91)
    prev = None
    n_plots = 0
    for row in out.feeds:
        assert row.transport == "mqtt" and row.channel == RADAR_TOPIC
        msg = json.loads(row.payload.decode("utf-8"))
        assert msg["sensor"] == "radar-1"
        assert isinstance(msg["t"], float) and isinstance(msg["scan"], int)
        assert isinstance(msg["plots"], list)
        latency_s = row.t_rx_ns / NS - msg["t"]
        assert 0.039 <= latency_s <= 0.151
        if prev is not None:
            assert msg["scan"] == prev["scan"] + 1
            assert msg["t"] - prev["t"] == pytest.approx(1.0, abs=1e-5)
        for p in msg["plots"]:
            assert set(PLOT_FIELDS) <= set(p)
            assert all(isinstance(p[k], float) for k in PLOT_FIELDS)
            assert 0 < p["range_m"] <= 5100 and 0 <= p["az_deg"] < 360 and -15 < p["el_deg"] < 50
            assert p["snr_db"] >= 13.0
        azs = [p["az_deg"] for p in msg["plots"]]
        assert azs == sorted(azs)  # azimuth order, not object order
        n_plots += len(msg["plots"])
        prev = msg
    assert n_plots > 90  # clutter, false alarms and the drone
    assert scans(out)[0]["scan"] >= 10_000


def test_plots_lie_within_a_few_sigma_of_the_truth():
    ctx = make_ctx(200.0)
    drone = hover_at(ctx, "d1", "radar-1", 1000.0, 60.0, 80.0)
    out = simulate_radar(ctx, sensors(ctx, "radar"), [drone])
    p = RadarParams()
    dr, daz, del_ = [], [], []
    for msg in scans(out):
        r, az, el, _ = truth_polar(ctx, drone, scan_time_s(msg))
        plot = nearest_plot(
            msg, r, az, gate_m=4 * p.range_sigma_m[1], gate_deg=4 * p.az_sigma_deg[1]
        )
        if plot is not None:
            dr.append(plot["range_m"] - r)
            daz.append((plot["az_deg"] - az + 180) % 360 - 180)
            del_.append(plot["el_deg"] - el)
    assert len(dr) >= 0.95 * len(out.feeds)  # SNR ~33 dB: Pd ~0.99
    assert abs(np.mean(dr)) < 1.5 and 2.0 < np.std(dr) < 5.5
    assert abs(np.mean(daz)) < 0.3 and 0.3 < np.std(daz) < 1.1
    assert abs(np.mean(del_)) < 0.6 and 0.6 < np.std(del_) < 2.2


def test_detection_probability_falls_with_range_as_swerling_1():
    ctx = make_ctx(400.0)
    near = hover_at(ctx, "near", "radar-1", 1000.0, 30.0, 80.0)
    far = hover_at(ctx, "far", "radar-1", 4000.0, 200.0, 80.0)
    out = simulate_radar(ctx, sensors(ctx, "radar"), [near, far])
    p = RadarParams()
    hits = {"near": 0, "far": 0}
    msgs = scans(out)
    for msg in msgs:
        for obj in (near, far):
            r, az, _, _ = truth_polar(ctx, obj, scan_time_s(msg))
            hits[obj.object_id] += nearest_plot(msg, r, az) is not None
    pd = {k: v / len(msgs) for k, v in hits.items()}
    # Swerling 1: Pd = exp(-T / SNR_mean), linear units.
    r_far, _, _, _ = truth_polar(ctx, far, 0.0)
    snr_far = 10 ** ((p.k_db - 15.0 - 40 * math.log10(r_far)) / 10)
    expected_far = math.exp(-(10 ** (p.threshold_db / 10)) / snr_far)
    assert pd["near"] > 0.95
    assert pd["far"] < 0.3
    assert pd["far"] == pytest.approx(expected_far, abs=0.06)


def test_closing_drone_has_negative_radial_velocity():
    ctx = make_ctx(150.0)
    o = sensor_enu(ctx, ctx.site.sensor("radar-1"))
    drone = MovingObject.linear(
        "in", "drone", (o[0] + 10, o[1] + 2500, 80.0), (0.0, -12.0, 0.0), 0.0, 150.0, -12.0
    )
    out = simulate_radar(ctx, sensors(ctx, "radar"), [drone])
    vr, vr_true = [], []
    for msg in scans(out):
        r, az, _, v = truth_polar(ctx, drone, scan_time_s(msg))
        plot = nearest_plot(msg, r, az)
        if plot is not None:
            vr.append(plot["vr_mps"])
            vr_true.append(v)
    assert len(vr) > 100
    assert np.all(np.array(vr) < 0)
    assert np.mean(np.array(vr) - np.array(vr_true)) == pytest.approx(0.0, abs=0.1)
    assert np.std(np.array(vr) - np.array(vr_true)) == pytest.approx(
        RadarParams().vr_sigma_mps, abs=0.1
    )


def test_bird_rcs_flickers_at_the_wing_beat_rate():
    ctx = make_ctx(300.0, seed=5)
    birds = bird_flock(ctx, ctx.rng("birds"), "flock", n_birds=3)
    bird = birds[0]
    assert bird.cls == "bird" and 3.0 <= bird.flap_hz <= 9.5
    flapping = np.flatnonzero(bird.flapping > 0.99)
    # The longest flapping stretch: sample it at 50 Hz and find the wing beat in the spectrum.
    runs = np.split(flapping, np.flatnonzero(np.diff(flapping) > 1) + 1)
    run = max(runs, key=len)
    t = np.arange(bird.t_s[run[0]], bird.t_s[run[-1]], 0.02)
    assert len(t) > 200
    _, _, rcs = bird.state(t)
    spec = np.abs(np.fft.rfft(rcs - rcs.mean()))
    freqs = np.fft.rfftfreq(len(t), 0.02)
    assert freqs[np.argmax(spec)] == pytest.approx(bird.flap_hz, abs=0.15)
    assert np.ptp(rcs) > 1.6 * bird.flap_db
    assert -32.0 - bird.flap_db <= rcs.min() and rcs.max() <= -18.0 + bird.flap_db
    # A drone's mean RCS only wanders with aspect: no wing beat.
    drone = approaching_drone(ctx, ctx.rng("drone"), "d1", t_start_s=0.0)
    _, _, d_rcs = drone.state(np.arange(20.0, 30.0, 0.02))
    assert np.ptp(d_rcs) < 3.0


def test_trajectories_stay_in_their_envelopes():
    ctx = make_ctx(300.0)
    zone = zones_enu(ctx)[0]
    for seed in range(12):
        rng = np.random.default_rng(seed)
        d = approaching_drone(ctx, rng, "d", t_start_s=10.0, arrive_by_s=250.0)
        speed = np.linalg.norm(d.vel[:, :2], axis=1)
        assert speed.max() <= 25.5 and d.pos[:, 2].min() >= 25.0 and d.pos[:, 2].max() <= 155.0
        start = distance_to_polygon(d.pos[0, 0], d.pos[0, 1], zone.polygon)[0] + zone.circumradius_m
        assert 2900.0 <= start <= 5200.0
        accel = np.abs(np.diff(speed)) / DT_S
        assert accel.max() <= 2.6  # the multirotor's acceleration limit (plus a stop)
        f = far_drone(ctx, rng, "f")
        assert (
            distance_to_polygon(f.pos[:, 0], f.pos[:, 1], zone.polygon).min() > zone.alert_radius_m
        )
        a = aircraft_overflight(ctx, rng, "a")
        assert a.pos[:, 2].min() >= 300.0 and a.pos[:, 2].max() <= 3000.0
        assert 60.0 <= np.linalg.norm(a.vel[:, :2], axis=1).min() <= 250.0
        for b in bird_flock(ctx, rng, "b"):
            assert b.pos[:, 2].min() >= 5.0 and b.pos[:, 2].max() <= 100.0
            assert 5.0 < np.median(np.linalg.norm(b.vel[:, :2], axis=1)) < 20.0


def test_distance_to_polygon_matches_dense_sampling():
    poly = np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 50.0], [40.0, 120.0], [0.0, 50.0]])
    rng = np.random.default_rng(3)
    pts = rng.uniform(-60.0, 180.0, (400, 2))
    got = distance_to_polygon(pts[:, 0], pts[:, 1], poly)
    edge = np.concatenate(
        [
            a + np.linspace(0, 1, 2001)[:, None] * (b - a)
            for a, b in zip(poly, np.roll(poly, -1, 0), strict=True)
        ]
    )
    dense = np.min(
        np.hypot(pts[:, None, 0] - edge[None, :, 0], pts[:, None, 1] - edge[None, :, 1]), axis=1
    )
    inside = got == 0.0
    assert np.all(np.abs(got[~inside] - dense[~inside]) < 0.1)
    assert np.array_equal(inside, Path(poly).contains_points(pts))
    assert 50 < inside.sum() < 350
    assert distance_to_polygon(50.0, 25.0, poly)[0] == 0.0
    assert distance_to_polygon(150.0, 25.0, poly)[0] == pytest.approx(50.0)


def test_truth_rows_for_approach_far_birds_and_clutter():
    ctx = make_ctx(300.0, seed=2)
    rng = ctx.rng("scenario")
    objs = [
        approaching_drone(ctx, rng, "near", t_start_s=10.0, arrive_by_s=240.0, enters=True),
        approaching_drone(ctx, rng, "short", t_start_s=10.0, arrive_by_s=240.0, enters=False),
        far_drone(ctx, rng, "far"),
        *bird_flock(ctx, rng, "flock", n_birds=2),
    ]
    clutter = site_clutter(ctx, ctx.rng("clutter"))
    rows = {(r.object_id, r.kind): r for r in object_truth(ctx, objs, clutter)}
    zone = zones_enu(ctx)[0]
    for oid in ("near", "short"):
        row = rows[(oid, "drone_approach")]
        assert row.must_alert and row.t_start_ns < row.deadline_ns <= row.t_end_ns
        obj = next(o for o in objs if o.object_id == oid)
        t_start = (row.t_start_ns - SIM_T0_NS) / NS
        pos, _, _ = obj.state(np.array([t_start - 0.2, t_start + 0.05]))
        d = distance_to_polygon(pos[:, 0], pos[:, 1], zone.polygon)
        assert d[0] > zone.alert_radius_m >= d[1]
    near = next(o for o in objs if o.object_id == "near")
    t_dl = (rows[("near", "drone_approach")].deadline_ns - SIM_T0_NS) / NS
    pos, _, _ = near.state(np.array([t_dl - 0.1, t_dl]))
    assert list(distance_to_polygon(pos[:, 0], pos[:, 1], zone.polygon) == 0.0) == [False, True]
    assert (
        rows[("far", "drone_far")].must_alert is False
        and rows[("far", "drone_far")].deadline_ns is None
    )
    assert rows[("flock-1", "bird")].must_alert is False
    assert sum(k == "clutter" for _, k in rows) == len(clutter)


def test_aircraft_are_seen_far_out_and_tracks_are_written_each_scan():
    ctx = make_ctx(240.0, seed=4)
    ac = aircraft_overflight(ctx, ctx.rng("a"), "ac-1", t_closest_s=120.0)
    out = simulate_radar(ctx, sensors(ctx, "radar"), [ac])
    msgs = scans(out)
    seen = 0
    for msg in msgs:
        t = scan_time_s(msg)
        if not ac.alive(np.array([t]))[0]:
            continue
        r, az, el, _ = truth_polar(ctx, ac, t)
        if r < 4500 and el < 39:
            seen += nearest_plot(msg, r, az, gate_m=30) is not None
    assert seen > 0
    rows = [r for r in out.truth_tracks if r.object_id == "ac-1"]
    assert rows and all(r.cls == "aircraft" for r in rows)
    scan_us = {round(m["t"] * 1e6) for m in msgs}
    assert all(round(r.t_ns / 1e3) in scan_us for r in rows)
    assert [r.t_ns for r in rows] == sorted(r.t_ns for r in rows)


# --------------------------------------------------------------------------- RF


def rf_messages(out, stream: str) -> list[tuple[int, dict]]:
    topic = f"rampart/sim-site/rf/rf-1/{stream}"
    return [(r.t_rx_ns, json.loads(r.payload)) for r in out.feeds if r.channel == topic]


def test_rf_detections_give_bearing_near_the_truth():
    ctx = make_ctx(200.0)
    link = RfEmitter("ocusync", 2.4445e9, 1.0e7, 23.0)
    drone = hover_at(ctx, "d1", "rf-1", 1500.0, 123.0, 100.0, emitter=link)
    out = simulate_rf(ctx, sensors(ctx, "rf"), [drone], [], [])
    msgs = rf_messages(out, "detections")
    assert len(msgs) in (199, 200, 201)
    errs = []
    for t_rx, msg in msgs:
        assert msg["sensor"] == "rf-1" and isinstance(msg["t"], float)
        assert 0.019 <= t_rx / NS - msg["t"] <= 0.101
        for det in msg["detections"]:
            assert isinstance(det["freq_hz"], float) and isinstance(det["rssi_dbm"], float)
            assert det["protocol"] == "ocusync" and det["freq_hz"] == 2.4445e9
            assert "uas_id" not in det
            errs.append((det["bearing_deg"] - 123.0 + 180) % 360 - 180)
    assert len(errs) > 0.8 * len(msgs)
    assert abs(np.mean(errs)) < 1.0 and 2.5 < np.std(errs) < 5.5


def test_rf_silent_beyond_range_and_remote_id_within_it():
    ctx = make_ctx(120.0)
    rid = RemoteId("1581F5FJC23A00D", (300.0, 300.0, 1.5), 1500.0)
    link = RfEmitter("elrs", 2.44e9, 8.125e5, 15.0, hop_span_hz=8.0e7)
    near = hover_at(ctx, "near", "rf-1", 800.0, 40.0, 90.0, emitter=link, remote_id=rid)
    far = hover_at(ctx, "far", "rf-1", 15000.0, 250.0, 90.0, emitter=link)
    out = simulate_rf(ctx, sensors(ctx, "rf"), [near, far], [], [])
    lat0, lon0, _ = ctx.frame.to_geodetic(*near.pos[0])
    op_lat, op_lon, _ = ctx.frame.to_geodetic(300.0, 300.0, 1.5)
    rid_seen = 0
    for _, msg in rf_messages(out, "detections"):
        for det in msg["detections"]:
            assert (
                abs((det["bearing_deg"] - 40.0 + 180) % 360 - 180) < 25
            )  # the far one is never heard
            if det["protocol"] == "remote_id":
                rid_seen += 1
                assert det["uas_id"] == "1581F5FJC23A00D"
                assert (
                    abs(det["uas_lat"] - lat0) * 111e3 < 15
                    and abs(det["uas_lon"] - lon0) * 68e3 < 15
                )
                assert det["operator_lat"] == pytest.approx(float(op_lat), abs=1e-6)
                assert det["operator_lon"] == pytest.approx(float(op_lon), abs=1e-6)
            else:
                assert det["protocol"] == "elrs" and 2.40e9 <= det["freq_hz"] <= 2.48e9
    assert rid_seen > 0.6 * 120


def test_spectrum_rises_in_l1_during_jamming_and_tracks_the_ramp():
    ctx = make_ctx(240.0)
    jam = JammingEpisode("jam-1", 60.0, 180.0, peak_jn_db=40.0, ramp_s=20.0, bands=("L1",))
    out = simulate_rf(ctx, sensors(ctx, "rf"), [], [jam], [])
    sweeps = rf_messages(out, "spectrum")
    starts = {f0 for _, f0, _ in GNSS_SWEEPS}
    l1_mid, l5_mid = [], []
    for t_rx, msg in sweeps:
        assert msg["sensor"] == "rf-1" and msg["bin_hz"] == 1.0e6 and msg["f_start_hz"] in starts
        assert t_rx / NS > msg["t"]
        f = msg["f_start_hz"] + msg["bin_hz"] * np.arange(len(msg["power_dbm"]))
        p = np.array(msg["power_dbm"])
        t = msg["t"] - SIM_T0_NS / NS
        if msg["f_start_hz"] == GNSS_SWEEPS[0][1]:
            assert f[0] <= 1559e6 and f[-1] >= 1610e6
            l1_mid.append((t, float(p[np.abs(f - 1575.42e6) < 3e6].mean())))
        elif msg["f_start_hz"] == GNSS_SWEEPS[2][1]:
            assert f[0] <= 1166e6 and f[-1] >= 1187e6
            l5_mid.append((t, float(p.mean())))
        else:
            assert f[0] <= 1217e6 and f[-1] >= 1238e6
    assert len(l1_mid) in (239, 240)
    quiet = [v for t, v in l1_mid if t < 55 or t > 185]
    held = [v for t, v in l1_mid if 85 < t < 155]
    assert np.mean(quiet) == pytest.approx(-100.0, abs=0.5) and np.std(quiet) < 1.0
    assert np.min(held) > -100 + 40 - 6
    # The rise follows the J/N ramp at the receivers, a few dB down.
    ramp = [(t, v) for t, v in l1_mid if 72 < t < 79]
    for t, v in ramp:
        expect = float(jam.jn_db(t - 1 / 6)) - 3.0 - 100.0
        assert v == pytest.approx(expect, abs=2.0)
    assert all(v < -97 for _, v in l5_mid)  # L5 not jammed


def test_emp_puts_a_broadband_burst_in_the_covering_sweep():
    ctx = make_ctx(60.0)
    emp = PowerEvent("emp-1", "emp", 30.05, ("A", "B"), magnitude=1.0)
    out = simulate_rf(ctx, sensors(ctx, "rf"), [], [], [emp])
    hot = []
    for _, msg in rf_messages(out, "spectrum"):
        p = np.array(msg["power_dbm"])
        if p.mean() > -95:
            hot.append((msg["t"] - SIM_T0_NS / NS, p))
    assert len(hot) == 1
    t_end, p = hot[0]
    assert t_end - 1 / 3 - 1e-6 <= 30.05 < t_end + 1e-6
    assert np.all(p > -100 + 12) and -100 + 18 < p.mean() < -100 + 42


def test_same_seed_same_bytes_other_seed_other_bytes():
    def run(seed: int):
        ctx = make_ctx(60.0, seed)
        rng = ctx.rng("scenario")
        objs = [
            approaching_drone(ctx, rng, "d1", t_start_s=0.0, emitter=True),
            *site_clutter(ctx, ctx.rng("clutter")),
        ]
        jam = [JammingEpisode("j", 10.0, 50.0)]
        emp = [PowerEvent("e", "emp", 20.0, ("A", "B"))]
        radar = simulate_radar(ctx, sensors(ctx, "radar"), objs)
        rf = simulate_rf(ctx, sensors(ctx, "rf"), objs, jam, emp)
        return radar.feeds + rf.feeds, radar.truth, radar.truth_tracks

    a, b, c = run(9), run(9), run(10)
    assert a == b
    assert a[0] != c[0]
