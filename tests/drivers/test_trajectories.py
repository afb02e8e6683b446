"""Real tracks: the readers on the vendored files, placement past the site, and ``--trajectories``."""

from __future__ import annotations

import csv
import gzip
import json
import math

import numpy as np
import polars as pl
import pytest

from drivers.simulated.base import SimContext
from drivers.simulated.flown import FlightSpec, auto_start, fly_specs, fly_track, parse_specs
from drivers.simulated.objects import distance_to_polygon, object_truth, zones_enu
from drivers.simulated.site import SIM_T0_NS, sim_site
from drivers.simulated.trajectories import (
    DATUM_GNSS,
    DATUM_PRESSURE,
    DATUM_TAKEOFF,
    TrajectoryError,
    read_adsb,
    read_gpx,
    read_igc,
    read_trajectory,
)
from fusion.cli import main
from tests.conftest import DATA

TRAJ = DATA / "trajectories"
SUMMARY = json.loads((TRAJ / "summary.json").read_text())
RAW_READABLE = [n for n, s in SUMMARY.items() if not s["raw_file"].endswith(".rdata")]
DJI = TRAJ / "raw/drones/dji_p4pro_2018-07-04_denmark.csv"
NAPRET = TRAJ / "raw/aircraft/igc_lib_napret.igc"
GANNET = TRAJ / "raw/birds/cape_gannet_CAGA_005_m2b.traj.csv"
CALFIRE = TRAJ / "raw/aircraft/traffic_calfire_2020-09.json.gz"


def traj_csv(name: str):
    raw = TRAJ / SUMMARY[name]["raw_file"]
    return raw.parent / f"{name}.traj.csv"


def ctx_of(duration_s: float = 300.0, seed: int = 7) -> SimContext:
    return SimContext(sim_site(), SIM_T0_NS, duration_s, seed)


# --------------------------------------------------------------------------- readers


@pytest.mark.parametrize("name", list(SUMMARY))
def test_traj_csv_rows_and_tracks_match_the_summary(name):
    f = read_trajectory(traj_csv(name))
    s = SUMMARY[name]
    assert f.fmt == "traj"
    assert f.rows == s["rows"] and len(f.tracks) == s["tracks"]
    t_last = max(float(tr.t_s[-1]) for tr in f.tracks)
    assert t_last == pytest.approx(s["span_s"], abs=0.05)
    alt = np.concatenate([tr.alt_m for tr in f.tracks])
    if s["alt_min_m"] is None:
        assert np.isnan(alt).all()
    else:
        assert np.nanmin(alt) == pytest.approx(s["alt_min_m"], abs=0.05)
        assert np.nanmax(alt) == pytest.approx(s["alt_max_m"], abs=0.05)


@pytest.mark.parametrize("name", RAW_READABLE)
def test_raw_reader_agrees_with_the_converted_file(name):
    s = SUMMARY[name]
    raw = read_trajectory(TRAJ / s["raw_file"])
    conv = {tr.track_id: tr for tr in read_trajectory(traj_csv(name)).tracks}
    assert raw.rows == s["rows"] and len(raw.tracks) == s["tracks"]
    assert raw.t0_utc is not None and raw.t0_utc.isoformat() == s["start_utc"]
    for tr in raw.tracks:
        other = conv[tr.track_id]
        assert len(tr) == len(other)
        np.testing.assert_allclose(tr.t_s, other.t_s, atol=1e-3)
        np.testing.assert_allclose(tr.lat_deg, other.lat_deg, atol=1e-6)
        np.testing.assert_allclose(tr.lon_deg, other.lon_deg, atol=1e-6)
        np.testing.assert_allclose(tr.alt_m, other.alt_m, atol=1e-3, equal_nan=True)
    expected = {"dji": DATUM_TAKEOFF, "igc": DATUM_GNSS, "adsb": DATUM_PRESSURE}
    assert raw.datum == expected[raw.fmt]


def test_igc_drops_invalid_fixes_and_rolls_over_midnight(tmp_path):
    p = tmp_path / "night.igc"
    p.write_text(
        "AXXX001\nHFDTE311219\n"
        "B2359585212345N02012345EA0010000120\n"
        "B2359595212346N02012346EV0010000121\n"  # 2D fix: dropped
        "B0000015212347N02012347EA0010200122\n"
    )
    f = read_igc(p)
    (tr,) = f.tracks
    assert len(tr) == 2
    np.testing.assert_allclose(tr.t_s, [0.0, 3.0])
    assert tr.lat_deg[0] == pytest.approx(52 + 12.345 / 60)
    assert tr.alt_m.tolist() == [120.0, 122.0]
    assert f.t0_utc.isoformat() == "2019-12-31T23:59:58+00:00"


def test_igc_without_gnss_altitude_uses_pressure_altitude(tmp_path):
    p = tmp_path / "baro.igc"
    p.write_text("HFDTE010120\nB1200005212345N02012345EA0050000000\n")
    f = read_igc(p)
    assert f.datum == DATUM_PRESSURE and f.tracks[0].alt_m.tolist() == [500.0]


def test_gpx_reader_on_a_vendored_track_written_as_gpx(tmp_path):
    src = read_trajectory(NAPRET).tracks[0]
    t0 = 1_459_684_800  # 2016-04-03T12:00:00Z, the file's start
    pts = []
    for k in range(0, 600):
        stamp = f"2016-04-03T{12 + int(src.t_s[k]) // 3600:02d}:{int(src.t_s[k]) // 60 % 60:02d}:{int(src.t_s[k]) % 60:02d}Z"
        pts.append(
            f'<trkpt lat="{src.lat_deg[k]:.7f}" lon="{src.lon_deg[k]:.7f}">'
            f"<ele>{src.alt_m[k]:.1f}</ele><time>{stamp}</time></trkpt>"
        )
    body = (
        '<?xml version="1.0"?><gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1">'
        f"<trk><name>first</name><trkseg>{''.join(pts[:300])}</trkseg></trk>"
        f"<trk><name>second</name><trkseg>{''.join(pts[300:])}</trkseg></trk></gpx>"
    )
    p = tmp_path / "napret.gpx"
    p.write_text(body)
    f = read_gpx(p)
    assert [t.track_id for t in f.tracks] == ["first", "second"]
    assert f.rows == 600 and f.datum == DATUM_GNSS
    assert f.t0_utc.timestamp() == t0
    np.testing.assert_allclose(
        np.concatenate([t.lat_deg for t in f.tracks]), src.lat_deg[:600], atol=1e-7
    )
    np.testing.assert_allclose(np.concatenate([t.alt_m for t in f.tracks]), src.alt_m[:600])
    np.testing.assert_allclose(f.tracks[1].t_s, src.t_s[300:600])
    assert read_trajectory(p).fmt == "gpx"


def test_opensky_csv_and_states_json_readers(tmp_path):
    recs = json.loads(gzip.decompress(CALFIRE.read_bytes()))
    recs = [r for r in recs if r["flight_id"] in {"N342WN_014", "AA460_070"}]
    p = tmp_path / "states.csv"
    cols = ["time", "icao24", "lat", "lon", "velocity", "baroaltitude", "geoaltitude"]
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in recs:
            w.writerow(
                [r["timestamp"] // 1000, r["flight_id"], r["latitude"], r["longitude"],
                 r["groundspeed"] * 0.514444, r["altitude"] * 0.3048, ""]
            )  # fmt: skip
    from_traffic = read_adsb(_write_json(tmp_path / "t.json", recs))
    from_csv = read_adsb(p)
    assert from_csv.fmt == "adsb" and from_csv.rows == from_traffic.rows > 20
    for a, b in zip(from_csv.tracks, from_traffic.tracks, strict=True):
        assert a.track_id == b.track_id
        np.testing.assert_allclose(a.alt_m, b.alt_m, atol=1e-6)
        np.testing.assert_allclose(a.speed_mps, b.speed_mps, atol=1e-6)
    # REST "states" snapshots, one JSON object per line; geo altitude when baro is missing.
    lines = [
        json.dumps({"time": 1000 + k, "states": [
            ["abc123", "CS1", "X", 1000 + k, 1000 + k, 4.0 + 0.001 * k, 52.0, None, False,
             60.0, 90.0, 0.0, None, 300.0 + k, None, False, 0]]})
        for k in range(5)
    ]  # fmt: skip
    q = tmp_path / "rest.json"
    q.write_text("\n".join(lines))
    f = read_trajectory(q, "adsb")
    (tr,) = f.tracks
    assert tr.track_id == "abc123" and len(tr) == 5 and tr.alt_m.tolist()[-1] == 304.0


def _write_json(path, recs):
    path.write_text(json.dumps(recs))
    return path


def test_unreadable_files_name_the_file(tmp_path):
    p = tmp_path / "junk.bin"
    p.write_bytes(b"\x00\x01junk")
    with pytest.raises(TrajectoryError, match=r"junk\.bin"):
        read_trajectory(p)
    with pytest.raises(TrajectoryError, match="no such file"):
        read_trajectory(tmp_path / "absent.igc")


# --------------------------------------------------------------------------- specs


def test_spec_syntax_and_toml(tmp_path):
    a, b = parse_specs(f"{NAPRET}:as=bird:rcs=-20:start=600:bearing=90,{DJI}:place=inbound")
    assert a.kind == "bird" and a.rcs_dbsm == -20.0 and a.start_s == 600.0 and a.bearing_deg == 90
    assert b.kind is None and b.place == "inbound" and b.start_s is None
    toml = tmp_path / "fly.toml"
    toml.write_text(
        '[[trajectory]]\nfile = "x.igc"\nas = "helicopter"\nrotor = 20\ntracks = "all"\n'
    )
    (c,) = parse_specs(str(toml))
    assert c.path == tmp_path / "x.igc" and c.kind == "helicopter" and c.rotor_hz == 20.0
    assert c.max_tracks is None
    for bad, msg in (
        (f"{DJI}:as=plane", "as="),
        (f"{DJI}:colour=red", "unknown key"),
        (f"{DJI}:rcs=big", "not a number"),
        (f"{DJI}:inbound", "key=value"),
    ):
        with pytest.raises(ValueError, match=msg):
            parse_specs(bad)


# --------------------------------------------------------------------------- placement


def test_inbound_drone_track_ends_inside_the_zone_and_comes_from_the_bearing():
    ctx = ctx_of(300.0)
    zone = zones_enu(ctx)[0]
    traj = read_trajectory(NAPRET)
    spec = FlightSpec(NAPRET, kind="drone", place="inbound", bearing_deg=120.0, start_s=1000.0)
    rng = np.random.default_rng(1)
    obj = fly_track(ctx, rng, traj, traj.tracks[0], spec, "drone", "d1")
    end, start = obj.pos[-1], obj.pos[0]
    assert distance_to_polygon(end[0], end[1], zone.polygon)[0] == 0.0
    comes_from = math.degrees(math.atan2(*(start[:2] - end[:2]))) % 360.0
    assert comes_from == pytest.approx(120.0, abs=0.5)
    # Rigid motion, no time scaling: the window lasts the scenario, and the path is as long.
    assert obj.t_first == 0.0 and obj.t_last == pytest.approx(300.0, abs=0.11)
    tr = traj.tracks[0]
    sel = (tr.t_s >= 1000.0) & (tr.t_s <= 1300.0)
    ref_len = _path_len_deg(tr.lat_deg[sel], tr.lon_deg[sel])
    got = np.sum(np.hypot(*np.diff(obj.pos[:, :2], axis=0).T))
    assert got == pytest.approx(ref_len, rel=0.03)
    (row,) = object_truth(ctx, [obj], [])
    assert row.kind == "drone_approach" and row.must_alert and row.deadline_ns is not None


def _path_len_deg(lat, lon) -> float:
    r = 6_371_008.8
    dn = np.diff(np.radians(lat)) * r
    de = np.diff(np.radians(lon)) * r * np.cos(np.radians(lat[:-1]))
    return float(np.sum(np.hypot(dn, de)))


def test_pass_placement_puts_the_middle_sample_at_offset_and_rebases_altitude():
    ctx = ctx_of(200.0)
    zone = zones_enu(ctx)[0]
    traj = read_trajectory(NAPRET)
    tr = traj.tracks[0]
    spec = FlightSpec(NAPRET, kind="glider", bearing_deg=45.0, offset_m=800.0, rotate_deg=30.0,
                      start_s=0.0, at_s=20.0)  # fmt: skip
    obj = fly_track(ctx, np.random.default_rng(2), traj, tr, spec, "glider", "g1")
    mid = obj.pos[len(obj.t_s) // 2, :2]
    expect = zone.centroid + 800.0 * np.array([math.sin(math.pi / 4), math.cos(math.pi / 4)])
    np.testing.assert_allclose(mid, expect, atol=1e-6)
    assert obj.cls == "aircraft" and obj.t_first == 20.0
    # GNSS altitude: ground is the track's lowest point (its landing field).
    np.testing.assert_allclose(obj.pos[0, 2], tr.alt_m[0] - tr.alt_m.min(), atol=1.5)
    assert -10.0 <= np.median(obj.rcs_dbsm) <= 0.0 and obj.flap_db == 0.0


def test_auto_window_starts_when_airborne_and_hover_logs_fly_as_recorded():
    traj = read_trajectory(DJI)
    tr = traj.tracks[0]
    start = auto_start(tr.t_s, np.zeros((len(tr), 2)), tr.alt_m)
    k = np.searchsorted(tr.t_s, start)
    assert tr.alt_m[k] > 15.0 and (tr.alt_m[: max(k - 1, 0)] <= 15.0).all()
    ctx = ctx_of(120.0)
    (obj,) = fly_specs(ctx, [FlightSpec(DJI, link="ocusync")])
    assert obj.cls == "drone" and obj.emitter is not None and obj.emitter.protocol == "ocusync"
    speed = np.hypot(obj.vel[:, 0], obj.vel[:, 1])
    assert np.percentile(speed, 95) < 3.0  # a hover log stays a hover


def test_multi_track_files_fly_their_longest_tracks():
    ctx = ctx_of(120.0)
    objs = fly_specs(ctx, [FlightSpec(CALFIRE, max_tracks=3)])
    assert len(objs) == 3 and len({o.object_id for o in objs}) == 3
    assert all(o.cls == "aircraft" for o in objs)
    (one,) = fly_specs(
        ctx, [FlightSpec(CALFIRE, track="AA460_070", kind="helicopter", rotor_hz=18)]
    )
    assert one.object_id.endswith("traffic_calfire_2020-09") and one.flap_hz == 18.0
    with pytest.raises(ValueError, match="no track"):
        fly_specs(ctx, [FlightSpec(CALFIRE, track="nope")])
    with pytest.raises(ValueError, match="start="):
        fly_specs(ctx, [FlightSpec(DJI, start_s=10_000.0)])


# --------------------------------------------------------------------------- end to end


def test_simulate_with_trajectories_writes_truth_naming_the_class(tmp_path, capsys):
    out = tmp_path / "rec"
    spec = f"{DJI}:at=5,{GANNET}:as=bird:size=large:flap=3.5,{NAPRET}:as=glider:start=300"
    rc = main(["simulate", "quiet_hour", "--out", str(out), "--seed", "3", "--duration", "60",
               "--trajectories", spec])  # fmt: skip
    assert rc == 0 and "3 trajectory file(s) flown" in capsys.readouterr().out
    truth = pl.read_parquet(out / "truth.parquet")
    kinds = dict(zip(truth["object_id"], truth["kind"], strict=True))
    assert kinds["traj1-drone-dji_p4pro_2018-07-04_denmark"] == "drone_approach"
    assert kinds["traj2-bird-cape_gannet_CAGA_005_m2b"] == "bird"
    assert kinds["traj3-glider-igc_lib_napret"] == "aircraft"
    drone = truth.filter(pl.col("object_id").str.starts_with("traj1"))
    assert drone["must_alert"].to_list() == [True]
    assert drone["t_start_ns"][0] == SIM_T0_NS + 5 * 1_000_000_000
    tracks = pl.read_parquet(out / "truth_tracks.parquet")
    classes = dict(
        tracks.filter(pl.col("object_id").str.starts_with("traj"))
        .group_by("object_id")
        .agg(pl.col("class").first())
        .iter_rows()
    )
    assert classes == {
        "traj1-drone-dji_p4pro_2018-07-04_denmark": "drone",
        "traj2-bird-cape_gannet_CAGA_005_m2b": "bird",
        "traj3-glider-igc_lib_napret": "aircraft",
    }
    # A bad spec is a usage error (exit 2), not a traceback.
    bad = main(["simulate", "quiet_hour", "--out", str(tmp_path / "x"), "--duration", "30",
                "--trajectories", f"{DJI}:as=zeppelin"])  # fmt: skip
    assert bad == 2
