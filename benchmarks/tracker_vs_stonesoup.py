"""Rampart's tracker against Stone Soup on the same radar recordings: GOSPA, track counts, speed.

Scenes of 10, 50 and 200 multirotor targets (waypoint legs with turns, dashes,
climbs and hovers, flown by the simulator's autopilot) are observed by the
simulated radar (``drivers.simulated.radar``: Swerling-1 detection, SNR-scaled
noise, 2 thermal false plots per scan, 1 s scans). Both trackers get exactly
the same decoded plots.

Stone Soup runs its standard configuration: extended Kalman filter with a
nearly-constant-velocity model, the polar (elevation, bearing, range)
measurement model with the radar's datasheet noise (the spread at detection
threshold: 5 m, 1°, 2°), Mahalanobis-distance hypotheses (missed distance 3),
GNN 2-D assignment, a multi-measurement initiator (2 plots) and a time-based
deleter (5 s). Rampart runs ``fusion.drone.tracker.MultiTargetTracker`` with its
default settings.

Printed per scene size: mean GOSPA (c = 100 m, p = 2, alpha = 2, over every
scan, all confirmed tracks against all true targets), its missed and false
parts, the mean absolute and signed track-count error, and each tracker's
processing time measured in this same run on the same recordings: time per
scan, throughput in scans and plots per second of processing time, and the
ratio of the two throughputs (wall time; and thread CPU time, which leaves
out time the process spent descheduled on a shared machine). Each tracker's
timed loop covers its scan processing and reading out its confirmed track
positions; decoding the plots (and building Stone Soup's ``Detection``
objects) is done before timing, and a garbage collection just before each
tracker's loop spares it the debt of what was allocated before (the collector
stays on while timing).

    .venv/bin/python benchmarks/tracker_vs_stonesoup.py [--sizes 10,50,200] [--scans N]

Needs the optional ``stonesoup`` package (``pip install stonesoup``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.json_feeds import RadarPlotsDecoder
from drivers.simulated.base import SimContext
from drivers.simulated.objects import Leg, MovingObject, fly_legs, sensor_enu
from drivers.simulated.radar import RadarParams, simulate_radar
from drivers.simulated.site import SIM_T0_NS, sim_site
from fusion.drone.measurement import RadarAccuracy, RadarGeometry
from fusion.drone.settings import TrackerSettings
from fusion.drone.tracker import MultiTargetTracker
from fusion.geo import EnuFrame
from fusion.gospa import gospa
from fusion.records import RadarScan

NS = 1_000_000_000
GOSPA_C = 100.0


# --------------------------------------------------------------------------- scenes


def make_scene(
    n_targets: int,
    duration_s: float,
    seed: int,
    scan_period_s: float = 1.0,
    false_plots_per_scan: float = 2.0,
):
    """(site, scans, truth) for n multirotors flying random legs 400-3500 m from the radar.

    ``scans``: list of RadarScan; ``truth``: dict scan t_ns -> (n, 3) true positions.
    """
    ctx = SimContext(sim_site(), SIM_T0_NS, duration_s, seed)
    radar = ctx.site.sensor("radar-1")
    origin = sensor_enu(ctx, radar)
    rng = np.random.default_rng(seed)
    objects = []
    for i in range(n_targets):

        def point(rmin=400.0, rmax=3500.0):
            r = rng.uniform(rmin, rmax)
            b = math.radians(rng.uniform(0.0, 360.0))
            return origin[:2] + r * np.array([math.sin(b), math.cos(b)])

        alt = float(rng.uniform(40.0, 250.0))
        start = point()
        speed = float(rng.uniform(5.0, 20.0))
        legs = []
        for _ in range(int(rng.integers(3, 7))):
            p = point()
            z = float(np.clip(alt + rng.normal(0.0, 40.0), 30.0, 300.0))
            roll = rng.random()
            if roll < 0.25:
                legs.append(Leg("goto", (p[0], p[1], z), speed, stop=True))
                legs.append(Leg("hover", duration_s=float(rng.uniform(5.0, 20.0))))
            elif roll < 0.4:
                legs.append(Leg("goto", (p[0], p[1], z), float(rng.uniform(18.0, 25.0))))  # dash
            else:
                legs.append(Leg("goto", (p[0], p[1], z), speed))
        legs.append(Leg("hover", duration_s=1e9))
        t, pos, vel = fly_legs(
            0.0, duration_s, (start[0], start[1], alt), float(rng.uniform(0, 360)), speed, legs
        )
        rcs = np.full(len(t), float(rng.normal(-5.0, 2.0)))
        objects.append(MovingObject(f"t{i}", "drone", t, pos, vel, rcs))
    params = RadarParams(scan_period_s=scan_period_s, false_alarms_per_scan=false_plots_per_scan)
    out = simulate_radar(ctx, [radar], objects, params)
    dec = RadarPlotsDecoder(radar.id, "bench")
    scans = []
    for row in out.feeds:
        for rec in dec.feed(row.payload, row.t_rx_ns):
            if isinstance(rec, RadarScan):
                scans.append(rec)
    by_time: dict[int, list] = {}
    for r in out.truth_tracks:
        by_time.setdefault(r.t_ns, []).append((r.x_m, r.y_m, r.z_m))
    # Scan times travel as JSON seconds (microsecond resolution): key truth by the scan's own time.
    t_truth = np.array(sorted(by_time))
    truth = {}
    for scan in scans:
        k = int(np.argmin(np.abs(t_truth - scan.t_ns)))
        if abs(int(t_truth[k]) - scan.t_ns) < 1_000_000:
            truth[scan.t_ns] = np.array(by_time[int(t_truth[k])])
    return ctx.site, scans, truth


# --------------------------------------------------------------------------- trackers


def run_rampart(site, scans) -> tuple[dict[int, np.ndarray], float, float]:
    frame = EnuFrame(site.site.lat, site.site.lon, site.site.alt_m)
    s = site.sensor("radar-1")
    radar = RadarGeometry.build(s.id, frame, s.lat, s.lon, s.alt_m, RadarAccuracy())
    trk = MultiTargetTracker({s.id: radar}, TrackerSettings())
    trk.process_scan(scans[0].sensor, scans[0].t_ns - 3600 * NS, scans[0].plots[:0])  # compile
    trk = MultiTargetTracker({s.id: radar}, TrackerSettings())
    est: dict[int, np.ndarray] = {}
    spent = cpu = 0.0
    gc.collect()  # neither tracker pays for garbage the scene or the other tracker left
    for scan in scans:
        # Timed like Stone Soup's loop below: the scan, then the confirmed positions read out.
        t0, c0 = time.perf_counter(), time.thread_time()
        trk.process_scan(scan.sensor, scan.t_ns, scan.plots)
        slots = trk.confirmed_slots()
        est[scan.t_ns] = trk.arrays.xc[slots, 0:3].copy()
        spent += time.perf_counter() - t0
        cpu += time.thread_time() - c0
    return est, spent, cpu


def run_stonesoup(site, scans, q: float) -> tuple[dict[int, np.ndarray], float, float]:
    from stonesoup.dataassociator.neighbour import GNNWith2DAssignment
    from stonesoup.deleter.time import UpdateTimeDeleter
    from stonesoup.hypothesiser.distance import DistanceHypothesiser
    from stonesoup.initiator.simple import MultiMeasurementInitiator
    from stonesoup.measures import Mahalanobis
    from stonesoup.models.measurement.nonlinear import CartesianToElevationBearingRange
    from stonesoup.models.transition.linear import (
        CombinedLinearGaussianTransitionModel,
        ConstantVelocity,
    )
    from stonesoup.predictor.kalman import ExtendedKalmanPredictor
    from stonesoup.tracker.simple import MultiTargetTracker as SSTracker
    from stonesoup.types.array import CovarianceMatrix, StateVector
    from stonesoup.types.detection import Detection
    from stonesoup.types.state import GaussianState
    from stonesoup.updater.kalman import ExtendedKalmanUpdater

    frame = EnuFrame(site.site.lat, site.site.lon, site.site.alt_m)
    s = site.sensor("radar-1")
    x, y, z = frame.to_enu(s.lat, s.lon, s.alt_m)
    offset = StateVector([[float(x)], [float(y)], [float(z)]])
    acc = RadarAccuracy()
    default_model = CartesianToElevationBearingRange(
        ndim_state=6,
        mapping=(0, 2, 4),
        noise_covar=CovarianceMatrix(
            np.diag(
                [
                    math.radians(acc.el_sigma_deg[1]) ** 2,
                    math.radians(acc.az_sigma_deg[1]) ** 2,
                    acc.range_sigma_m[1] ** 2,
                ]
            )
        ),
        translation_offset=offset,
    )
    transition = CombinedLinearGaussianTransitionModel([ConstantVelocity(q)] * 3)
    predictor = ExtendedKalmanPredictor(transition)
    updater = ExtendedKalmanUpdater(default_model)
    hypothesiser = DistanceHypothesiser(
        predictor, updater, measure=Mahalanobis(), missed_distance=3
    )
    associator = GNNWith2DAssignment(hypothesiser)
    deleter = UpdateTimeDeleter(dt.timedelta(seconds=5))
    init_hyp = DistanceHypothesiser(predictor, updater, measure=Mahalanobis(), missed_distance=3)
    initiator = MultiMeasurementInitiator(
        prior_state=GaussianState(
            StateVector(np.zeros((6, 1))),
            CovarianceMatrix(np.diag([0, 20.0**2, 0, 20.0**2, 0, 5.0**2])),
        ),
        measurement_model=default_model,
        deleter=UpdateTimeDeleter(dt.timedelta(seconds=3)),
        data_associator=GNNWith2DAssignment(init_hyp),
        updater=updater,
        min_points=2,
    )

    def detections(scan: RadarScan):
        when = dt.datetime.fromtimestamp(scan.t_ns / NS, tz=dt.UTC).replace(tzinfo=None)
        out = set()
        for rng_m, az, el, _vr, _rcs, _snr in scan.plots:
            # Radar azimuth is clockwise from north; Stone Soup's bearing counter-clockwise from east.
            bearing = math.pi / 2 - math.radians(az)
            bearing = (bearing + math.pi) % (2 * math.pi) - math.pi
            vec = StateVector([[math.radians(el)], [bearing], [rng_m]])
            out.add(Detection(vec, timestamp=when, measurement_model=default_model))
        return when, out

    feed = [detections(scan) for scan in scans]  # built before timing: decoding is not tracking
    tracker = SSTracker(initiator, deleter, feed, associator, updater)
    est: dict[int, np.ndarray] = {}
    gc.collect()
    t0, c0 = time.perf_counter(), time.thread_time()
    for scan, (_when, tracks) in zip(scans, tracker, strict=True):
        est[scan.t_ns] = np.array(
            [[float(tr.state_vector[k, 0]) for k in (0, 2, 4)] for tr in tracks]
        ).reshape(-1, 3)
    spent = time.perf_counter() - t0
    cpu = time.thread_time() - c0
    return est, spent, cpu


# --------------------------------------------------------------------------- scoring


def evaluate(est: dict[int, np.ndarray], truth: dict[int, np.ndarray]) -> dict:
    g, miss, false, cnt_abs, cnt_signed = [], [], [], [], []
    for t_ns, tru in truth.items():
        e = est.get(t_ns, np.zeros((0, 3)))
        r = gospa(tru, e, c=GOSPA_C, p=2.0, alpha=2.0)
        g.append(r.distance)
        miss.append(len(tru) - r.n_assigned)
        false.append(len(e) - r.n_assigned)
        cnt_abs.append(abs(len(e) - len(tru)))
        cnt_signed.append(len(e) - len(tru))
    return {
        "gospa": float(np.mean(g)),
        "missed": float(np.mean(miss)),
        "false": float(np.mean(false)),
        "count_abs": float(np.mean(cnt_abs)),
        "count_signed": float(np.mean(cnt_signed)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,50,200")
    ap.add_argument(
        "--scans", default="300,150,60", help="scans per size (Stone Soup's run time bounds these)"
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--ss-q", type=float, default=1.0, help="Stone Soup CV noise (m²/s³)")
    args = ap.parse_args(argv)
    sizes = [int(v) for v in args.sizes.split(",")]
    n_scans = [int(v) for v in args.scans.split(",")]
    if len(n_scans) < len(sizes):
        n_scans += [n_scans[-1]] * (len(sizes) - len(n_scans))
    import stonesoup

    print(
        f"Stone Soup {stonesoup.__version__}; GOSPA c={GOSPA_C:g} m, p=2, alpha=2; 1 s scans, 2 false plots/scan"
    )
    head = (
        f"{'targets':>7} {'scans':>5}  {'tracker':<10} {'GOSPA m':>8} {'missed':>7} {'false':>6} "
        f"{'|count err|':>11} {'count err':>9} {'ms/scan':>9} {'scans/s':>9} {'plots/s':>11}"
    )
    print(head)
    print("-" * len(head))
    for n, k in zip(sizes, n_scans, strict=False):
        site, scans, truth = make_scene(n, float(k), args.seed + n)
        n_plots = sum(len(scan.plots) for scan in scans)
        ours, t_ours, c_ours = run_rampart(site, scans)
        theirs, t_theirs, c_theirs = run_stonesoup(site, scans, args.ss_q)
        for name, est, spent in (("rampart", ours, t_ours), ("stonesoup", theirs, t_theirs)):
            m = evaluate(est, truth)
            print(
                f"{n:>7} {len(scans):>5}  {name:<10} {m['gospa']:>8.1f} {m['missed']:>7.2f} {m['false']:>6.2f} "
                f"{m['count_abs']:>11.2f} {m['count_signed']:>+9.2f} {1000 * spent / len(scans):>9.3f} "
                f"{len(scans) / spent:>9,.0f} {n_plots / spent:>11,.0f}"
            )
        print(
            f"{'':>15}throughput ratio (Rampart scans/s / Stone Soup scans/s, same run): "
            f"{t_theirs / max(t_ours, 1e-9):,.0f}x wall time; {c_theirs / max(c_ours, 1e-9):,.0f}x "
            f"thread CPU time ({1000 * c_ours / len(scans):.3f} / {1000 * c_theirs / len(scans):.3f} ms/scan)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
