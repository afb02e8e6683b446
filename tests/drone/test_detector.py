"""The drone detector's behaviour: alerts and their details, throttling, RF-only contacts,
several radars, zones, settings, --tracks-out and the report panel."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import polars as pl
import pytest

from drivers.json_feeds import RadarPlotsDecoder
from drivers.simulated import scenarios
from drivers.simulated.base import SimContext
from drivers.simulated.objects import MovingObject, distance_to_polygon
from drivers.simulated.radar import simulate_radar
from drivers.simulated.site import SIM_SITE_TOML, SIM_T0_NS, sim_site
from fusion.alerts import encode_alert
from fusion.cli.replay import ReplayResult, replay, write_tracks
from fusion.config import ConfigError, parse_config
from fusion.drone import DroneDetector
from fusion.drone import kernels as K
from fusion.drone.classify import classify
from fusion.drone.settings import CLASSES, DroneSettings, parse_drone_section
from fusion.drone.zones import ZoneGeometry, assess, polygon_distance
from fusion.records import RadarScan, RfDetection, RfDetections
from fusion.report import write_report
from tests.drone.scenes import radar_rf_output

NS = 1_000_000_000
DETAIL_KEYS = {
    "track_id",
    "lat",
    "lon",
    "alt_m",
    "enu_m",
    "velocity_mps",
    "speed_mps",
    "heading_deg",
    "zone",
    "range_to_zone_m",
    "closing_mps",
    "eta_s",
    "eta_sigma_s",
    "class",
    "class_probabilities",
    "rf",
    "uas_id",
    "operator_lat",
    "operator_lon",
}


# --------------------------------------------------------------------------- on a recording


def test_alerts_carry_what_the_soc_needs(drone_runs):
    run = drone_runs("approach", 1)
    approach = [a for a in run.drone_alerts("drone_approach") if a["state"] != "closed"]
    assert approach
    for a in approach:
        assert set(a["details"]) >= DETAIL_KEYS, DETAIL_KEYS - set(a["details"])
        d = a["details"]
        assert d["zone"] == "hall-a"
        assert set(d["class_probabilities"]) == set(CLASSES)
        assert a["severity"] in ("medium", "high", "critical")
        assert a["t_event_ns"] <= a["t_detect_ns"]
        assert "Drone" in a["summary"]
    # Severity rises as the drone closes in.
    sev = [("medium", "high", "critical").index(a["severity"]) for a in approach]
    assert sev[-1] >= sev[0]
    # The drone's DJI link carried DroneID: identity and pilot location reach the SOC.
    assert any(
        a["details"]["uas_id"] and a["details"]["operator_lat"] is not None for a in approach
    )


def test_updates_are_throttled(drone_runs):
    interval = DroneSettings().alerts.update_interval_s
    for name, seed in (("approach", 1), ("swarm", 1)):
        run = drone_runs(name, seed)
        by_incident: dict[str, list[dict]] = {}
        for a in run.drone_alerts():
            by_incident.setdefault(a["incident_id"], []).append(a)
        for msgs in by_incident.values():
            msgs.sort(key=lambda a: a["seq"])
            for prev, cur in itertools.pairwise(msgs):
                if cur["state"] == "closed" or (cur["kind"], cur["severity"]) != (
                    prev["kind"],
                    prev["severity"],
                ):
                    continue
                assert (cur["t_detect_ns"] - prev["t_detect_ns"]) / NS >= interval - 1.01, (
                    prev["summary"],
                    cur["summary"],
                )


def test_one_incident_follows_a_drone_from_detection_to_zone(drone_runs):
    """drone_detected is upgraded in place to drone_approach: the SOC sees one incident."""
    run = drone_runs("approach", 1)
    first_approach = next(a for a in run.alerts if a["kind"] == "drone_approach")
    same = [a for a in run.alerts if a["incident_id"] == first_approach["incident_id"]]
    assert same[0]["kind"] == "drone_detected" and same[0]["state"] == "open"
    assert first_approach["state"] == "update"


def test_replay_is_deterministic(drone_runs):
    run = drone_runs("swarm", 2)
    again = replay(run.rec, run.site, [], detectors=[DroneDetector(run.site)])
    assert [json.loads(encode_alert(a)) for a in again.pipeline.alerts] == run.alerts


def test_tracks_out_and_gospa(drone_runs, tmp_path):
    run = drone_runs("approach", 2)
    df = run.detector.tracks_frame()
    assert df.columns == [
        "t_ns",
        "track_id",
        "x_m",
        "y_m",
        "z_m",
        "vx_mps",
        "vy_mps",
        "vz_mps",
        "class",
        "p_drone",
    ]
    assert df.height > 0
    assert set(df["class"].unique().to_list()) <= set(CLASSES)
    assert df["p_drone"].min() >= 0 and df["p_drone"].max() <= 1
    assert (df["class"] == "drone").sum() > 50
    n = write_tracks(tmp_path / "tracks.parquet", run.result)
    assert n == df.height
    assert pl.read_parquet(tmp_path / "tracks.parquet").height == n
    tracking = run.score["tracking"]
    assert tracking["assigned"] > 0 and tracking["gospa_mean_m"] < 100


def test_report_panel_renders(drone_runs, tmp_path):
    run = drone_runs("swarm", 1)
    pipe = run.result.pipeline
    index = write_report(
        tmp_path / "report",
        title="swarm",
        site=run.site,
        alerts=run.alerts,
        activity=pl.DataFrame(schema={"t_ns": pl.Int64, "sensor": pl.Utf8, "ok": pl.Boolean}),
        rejects=pipe.ledger.by_source(),
        panels=run.detector.report_panels(),
    )
    html = index.read_text()
    assert "Drone map" in html and "panel failed" not in html
    assert list((tmp_path / "report").glob("panel-01-*.png"))


def test_scenes_match_rampart_simulate():
    """The test recordings' radar and RF feeds are byte for byte those of rampart simulate."""
    _, full = scenarios.build("birds", 3, 60.0)
    ours = radar_rf_output("birds", 3, 60.0)
    keep = [r for r in full.feeds if "/radar/" in r.channel or "/rf/" in r.channel]
    assert keep == ours.feeds
    assert full.truth == ours.truth


# --------------------------------------------------------------------------- RF-only contacts


def _rf(t_s: float, **det) -> RfDetections:
    t_ns = SIM_T0_NS + round(t_s * NS)
    base = {"freq_hz": 2.44e9, "rssi_dbm": -80.0}
    base.update(det)
    return RfDetections("rf-1", t_ns, t_ns + 50_000_000, (RfDetection(**base),))


def test_remote_id_drone_without_radar_upgrades_to_approach():
    site = sim_site()
    det = DroneDetector(site)
    frame = det.frame
    findings = []
    # From 2.3 km east at 15 m/s straight at hall-a, broadcasting Remote ID; the radar sees nothing.
    for k in range(150):
        x = 2300.0 - 15.0 * k
        lat, lon, alt = frame.to_geodetic(x, 0.0, 80.0)
        rec = _rf(
            float(k),
            bearing_deg=90.0,
            protocol="remote_id",
            uas_id="1581F5FJC23A00D",
            uas_lat=float(lat),
            uas_lon=float(lon),
            uas_alt_m=float(alt),
            operator_lat=52.01,
            operator_lon=4.03,
        )
        findings += det.on_record(rec)
        findings += det.on_tick(rec.t_ns)
    keys = {f.key for f in findings}
    assert len(keys) == 1, keys
    kinds = [f.kind for f in findings]
    assert kinds[0] == "drone_detected" and findings[0].state == "open"
    first = kinds.index("drone_approach")
    assert findings[first].state == "update"
    d = findings[first].details
    assert d["uas_id"] == "1581F5FJC23A00D" and d["operator_lat"] == 52.01
    assert d["range_to_zone_m"] <= 1500.0 and d["eta_s"] is not None
    # Upgraded as the reported position crossed the alert radius (zone edge ~100 m east).
    assert 1450.0 <= d["enu_m"][0] <= 1620.0
    assert findings[-1].kind == "drone_approach"
    # The link goes quiet: the incident closes after the RF window.
    t_end = SIM_T0_NS + 160 * NS
    closed = det.on_tick(t_end)
    assert [f.state for f in closed] == ["closed"]


def test_bearing_only_link_is_detected_not_approach():
    det = DroneDetector(sim_site())
    out = []
    for k in range(6):
        out += det.on_record(_rf(float(k), bearing_deg=200.0 + 0.5 * k, protocol="ocusync"))
    assert out and all(f.kind == "drone_detected" and f.severity == "low" for f in out)
    assert out[0].state == "open"
    assert "enu_m" not in out[0].details and out[0].details["rf"]["bearing_deg"] is not None
    assert "bearing" in out[0].summary
    # Anything that is not a drone link is ignored.
    det2 = DroneDetector(sim_site())
    assert not any(
        det2.on_record(_rf(float(k), bearing_deg=10.0, protocol="bluetooth")) for k in range(5)
    )
    assert det2.rf.ignored_reports == 5


# --------------------------------------------------------------------------- several radars


TWO_RADARS = SIM_SITE_TOML.replace(
    '[[sensors]]\nid = "rf-1"',
    '[[sensors]]\nid = "radar-2"\nkind = "radar"\nlat = 52.00030\nlon = 4.03000\nalt_m = 70.0\n'
    'transport = "mqtt"\ntopic = "rampart/sim-site/radar/radar-2/plots"\n\n[[sensors]]\nid = "rf-1"',
)


def test_two_radars_feed_one_track_picture():
    site = parse_config(TWO_RADARS)
    ctx = SimContext(site, SIM_T0_NS, 90.0, 5)
    target = MovingObject.linear(
        "t", "drone", (1500.0, -800.0, 120.0), (-6.0, 8.0, 0.0), 0.0, 90.0, -8.0
    )
    radars = [s for s in site.sensors if s.kind == "radar"]
    out = simulate_radar(ctx, radars, [target])
    det = DroneDetector(site)
    decoders = {s.id: RadarPlotsDecoder(s.id, "test") for s in radars}
    scans = []
    for row in out.feeds:
        sid = row.channel.split("/")[3]
        scans += [
            r for r in decoders[sid].feed(row.payload, row.t_rx_ns) if isinstance(r, RadarScan)
        ]
    scans.sort(key=lambda r: r.t_ns)
    for rec in scans:
        det.on_record(rec)
    slots = det.tracker.confirmed_slots()
    a = det.tracker.arrays
    truth, _, _ = target.state(np.array([(scans[-1].t_ns - SIM_T0_NS) / NS]))
    near = [s for s in slots if np.linalg.norm(a.xc[s, :2] - truth[0, :2]) < 60.0]
    assert len(near) == 1, [a.xc[s, :3] for s in slots]
    tid = int(a.tid[near[0]])
    assert det.infos[tid].sensors == {"radar-1", "radar-2"}
    # Both radars' scans, interleaved in time, went into the one track picture.
    assert det.tracker.scans == len(scans) and len({r.sensor for r in scans}) == 2


# --------------------------------------------------------------------------- zones, classes, settings


def test_polygon_distance_matches_the_simulator():
    rng = np.random.default_rng(2)
    square = np.array([[-50.0, -50.0], [-50.0, 50.0], [50.0, 50.0], [50.0, -50.0]])
    concave = np.array([[0.0, 0.0], [200.0, 0.0], [200.0, 200.0], [100.0, 60.0], [0.0, 200.0]])
    for poly in (square, concave):
        pts = rng.uniform(-400, 400, (500, 2))
        d, inside, _, _ = polygon_distance(pts[:, 0], pts[:, 1], poly)
        np.testing.assert_allclose(d, distance_to_polygon(pts[:, 0], pts[:, 1], poly), atol=1e-9)
        assert np.all((d == 0) == inside)


def test_eta_closing_and_closest_approach():
    zone = ZoneGeometry(
        "z", np.array([[-50.0, -50.0], [-50.0, 50.0], [50.0, 50.0], [50.0, -50.0]]), 1500.0
    )
    pos = np.array(
        [[-1000.0, 0.0, 50.0], [-1000.0, 0.0, 50.0], [0.0, 0.0, 30.0], [-1000.0, 500.0, 50.0]]
    )
    vel = np.array([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 0.0], [10.0, 0.0, 0.0]])
    cov = np.tile(np.diag([100.0, 100.0, 400.0, 1.0, 1.0, 1.0]), (4, 1, 1))
    th = assess([zone], pos, vel, cov)
    assert th.eta_s[0, 0] == pytest.approx(95.0)
    assert th.closing_mps[0, 0] == pytest.approx(10.0)
    assert 0.0 < th.eta_sigma_s[0, 0] < 20.0
    assert math.isnan(th.eta_s[0, 1]) and th.closing_mps[0, 1] == pytest.approx(0.0)
    assert th.inside[0, 2] and th.eta_s[0, 2] == 0.0 and th.distance_m[0, 2] == 0.0
    assert math.isnan(th.eta_s[0, 3])  # passes 450 m north of the zone
    assert th.cpa_m[0, 3] == pytest.approx(450.0, abs=1.0)


def _feats(**kw) -> np.ndarray:
    f = np.zeros((1, K.N_FEAT))
    f[0, K.F_NIS_RING : K.F_NIS_RING + K.NIS_RING] = -1
    n = kw.pop("n", 30)
    f[0, K.F_N] = n
    f[0, K.F_N_RCS] = n
    rcs = kw.pop("rcs_db", -15.0)
    f[0, K.F_RCS] = 10 ** (rcs / 10)
    f[0, K.F_RCS2] = 2 * f[0, K.F_RCS] ** 2
    nis = kw.pop("nis", 0.45)
    f[0, K.F_NIS_RING : K.F_NIS_RING + K.NIS_RING] = nis
    f[0, K.F_N_VR] = n
    for key, val in kw.items():
        f[0, getattr(K, f"F_{key.upper()}")] = val
    return f


@pytest.mark.parametrize(
    ("kw", "speed", "age", "expect"),
    [
        (dict(rcs_db=-14.0, nis=0.45, alt=80.0, max_disp=900.0), 14.0, 60.0, "drone"),
        (dict(rcs_db=-20.0, nis=0.5, alt=90.0, hover_s=20.0, max_disp=1200.0), 0.3, 90.0, "drone"),
        (dict(rcs_db=-25.0, nis=2.2, alt=40.0, max_disp=800.0), 11.0, 60.0, "bird"),
        (dict(rcs_db=15.0, nis=0.5, alt=900.0, max_disp=5000.0), 90.0, 60.0, "aircraft"),
        (dict(rcs_db=-3.0, nis=0.4, alt=10.0, max_disp=30.0), 0.5, 120.0, "clutter"),
    ],
)
def test_classification_of_clear_cases(kw, speed, age, expect):
    p = classify(
        _feats(**kw),
        np.array([speed]),
        np.array([0.5]),
        np.array([100.0]),
        np.array([age]),
        DroneSettings().prior,
    )
    assert CLASSES[int(np.argmax(p[0]))] == expect, p
    assert p[0].max() > 0.8


def test_rf_corroboration_raises_p_drone():
    f = _feats(rcs_db=-20.0, nis=1.0, alt=60.0, max_disp=600.0)
    args = (
        f,
        np.array([12.0]),
        np.array([0.5]),
        np.array([100.0]),
        np.array([40.0]),
        DroneSettings().prior,
    )
    plain = classify(*args)[0, 0]
    with_rf = classify(*args, rf_bearing=np.array([True]))[0, 0]
    with_rid = classify(*args, rf_remote_id=np.array([True]))[0, 0]
    assert plain < 0.2 < with_rf < with_rid and with_rid > 0.95


def test_settings_validation_names_every_bad_key():
    with pytest.raises(ConfigError) as err:
        parse_drone_section(
            {
                "tracker": {"confirm_m": 0, "bogus": 1},
                "alerts": {"p_drone_alert": 0.3, "p_drone_clear": 0.6},
                "radars": {"radar-1": {"az_sigma_deg": [2.0, 1.0]}},
                "prior": {"ufo": 0.5},
                "extra": {},
            }
        )
    text = "\n".join(err.value.problems)
    for key in (
        "drone.tracker.confirm_m",
        "drone.tracker.bogus",
        "drone.alerts.p_drone_clear",
        "drone.radars.radar-1.az_sigma_deg",
        "drone.prior.ufo",
        "drone.extra",
    ):
        assert key in text, text


def test_settings_from_site_and_radar_overrides():
    toml = SIM_SITE_TOML + (
        "\n[drone.alerts]\nupdate_interval_s = 2.0\n"
        "[drone.radar]\nthreshold_db = 12.0\n"
        "[drone.radars.radar-1]\naz_sigma_deg = [0.3, 0.6]\n"
        "[drone.prior]\ndrone = 0.5\n"
    )
    s = DroneSettings.from_site(parse_config(toml))
    assert s.alerts.update_interval_s == 2.0
    assert s.radar("radar-1").az_sigma_deg == (0.3, 0.6) and s.radar("radar-1").threshold_db == 12.0
    assert s.radar("radar-9").az_sigma_deg == DroneSettings().radar_default.az_sigma_deg
    assert sum(s.prior.values()) == pytest.approx(1.0) and s.prior["drone"] == pytest.approx(
        0.5 / 1.35
    )
    assert DroneSettings.from_site(sim_site()) == DroneSettings()


def test_radar_silence_closes_track_incidents(drone_runs):
    """Tracks (and their incidents) end when no scan has updated them for max_coast_s."""
    run = drone_runs("approach", 3)
    det = DroneDetector(run.site)
    result: ReplayResult = replay(run.rec, run.site, [], detectors=[det])
    assert result.pipeline.alerts
    t_last = det.last_scan_ns
    out = det.on_tick(t_last + int((det.settings.tracker.max_coast_s + 1) * NS))
    assert det.tracker.n_tracks()[1] == 0
    assert all(f.state == "closed" for f in out)
    assert not any(inc.track_id is not None for inc in det.incidents.values())


@pytest.mark.parametrize("p", [0.9, 0.99, 0.999, 0.9999])
def test_gates_are_chi_square_quantiles(p):
    """The gates come from scipy.special (cheap to import); they must be scipy.stats' chi2."""
    from scipy.stats import chi2

    from fusion.drone.settings import TrackerSettings
    from fusion.drone.tracker import parameter_vector

    prm = parameter_vector(TrackerSettings(gate_probability=p))
    assert prm[K.P_GATE3] == pytest.approx(chi2.ppf(p, 3), rel=1e-12)
    assert prm[K.P_GATE4] == pytest.approx(chi2.ppf(p, 4), rel=1e-12)


def test_idle_empty_scans_skip_the_kernel_and_change_nothing():
    """An empty scan with no track alive is answered without the kernel; the result must be
    what the kernel gives: the same findings and tracks as with the shortcut turned off."""
    site = sim_site()
    ctx = SimContext(site, SIM_T0_NS, 150.0, 3)
    target = MovingObject.linear(
        "t", "drone", (1500.0, -800.0, 120.0), (-6.0, 8.0, 0.0), 0.0, 150.0, -8.0
    )
    radars = [s for s in site.sensors if s.kind == "radar"]
    out = simulate_radar(ctx, radars, [target])
    dec = RadarPlotsDecoder(radars[0].id, "test")
    scans = [r for row in out.feeds for r in dec.feed(row.payload, row.t_rx_ns)]
    scans = [r for r in scans if isinstance(r, RadarScan)]
    # Nothing in the sky for the first 20 s and the last 70 s (long past max_coast_s).
    quiet = [
        RadarScan(r.sensor, r.t_ns, r.t_rx_ns, r.scan, np.zeros((0, 6)))
        if not 20 * NS <= r.t_ns - SIM_T0_NS <= 80 * NS
        else r
        for r in sorted(scans, key=lambda r: r.t_ns)
    ]
    runs = []
    for shortcut in (True, False):
        det = DroneDetector(site)
        if not shortcut:
            det.tracker.skip_idle = False
        findings = []
        for rec in quiet:
            findings += det.on_record(rec)
            findings += det.on_tick(rec.t_ns)
        runs.append((det, findings))
    (fast, f_fast), (slow, f_slow) = runs
    assert fast.tracker.idle_scans > 20 and slow.tracker.idle_scans == 0
    assert fast.tracker.scans == slow.tracker.scans == len(quiet)
    assert f_fast == f_slow and any(f.kind.startswith("drone") for f in f_fast)
    assert fast.tracks_frame().equals(slow.tracks_frame()) and fast.tracks_frame().height > 0


def test_a_service_pipeline_keeps_no_history():
    """``rampart run`` runs for months: its Pipeline keeps no alert list and the drone
    detector no track or plot history (those are for a replay's report and --tracks-out)."""
    from fusion.cli.pipeline import Pipeline

    site = sim_site()
    ctx = SimContext(site, SIM_T0_NS, 90.0, 4)
    target = MovingObject.linear(
        "t", "drone", (1500.0, -800.0, 120.0), (-6.0, 8.0, 0.0), 0.0, 90.0, -8.0
    )
    radar = next(s for s in site.sensors if s.kind == "radar")
    rows = simulate_radar(ctx, [radar], [target]).feeds
    runs = {}
    for keep in (True, False):
        emitted = []
        pipe = Pipeline(site, emitted.append, keep_history=keep, detectors=[DroneDetector(site)])
        for row in sorted(rows, key=lambda r: r.t_rx_ns):
            pipe.receive(row.t_rx_ns, row.transport, row.channel, row.payload)
        pipe.finish()
        runs[keep] = (pipe, emitted)
    kept, lean = runs[True][0], runs[False][0]
    assert runs[True][1] == runs[False][1] and runs[False][1], "the same alerts go out"
    assert kept.alerts == runs[True][1] and lean.alerts == []
    assert kept.detectors[0].tracks_frame().height > 0 and kept.detectors[0].plot_history
    assert lean.detectors[0].tracks_frame().height == 0 and not lean.detectors[0].plot_history
