"""Confusion matrix of the drone classifier over movement families and real tracks.

Each object is flown past the simulated site's radar (``tests/drone/movement.py``)
and every confirmed track is matched, at every scan, to the truth object within
100 m; the table counts track-scans by true class (rows) and most probable class
(columns), and per family the ``drone_approach`` incidents (false ones for
everything but drones) and, for inbound drones, those alerted before zone entry.

Families (generated, seeds 1..N): soaring birds, paragliders, gliders,
helicopters, inbound drones (radar only). Real tracks: the four glider /
paraglider logs of ``trajectories/raw/aircraft`` (soaring windows of 15 min)
flown once with a bird's RCS (-15 dBsm) and once with an aircraft's (+5), and
the DJI flight flown inbound (with and without its RF link).

    .venv/bin/python benchmarks/drone_classes.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.simulated.base import SimContext
from drivers.simulated.objects import random_emitter
from drivers.simulated.site import SIM_T0_NS, sim_site
from fusion.drone.settings import CLASSES
from tests.drone import movement as mv

NS = 1_000_000_000
TRUE = ("drone", "bird", "aircraft")


def _match(det, objs, true_cls, cm):
    tf = det.tracks_frame()
    if tf.height == 0:
        return
    t_s = (tf["t_ns"].to_numpy() - SIM_T0_NS) / NS
    xy = np.column_stack([tf["x_m"].to_numpy(), tf["y_m"].to_numpy()])
    cls = tf["class"].to_list()
    best = np.full(len(t_s), np.inf)
    who = np.full(len(t_s), -1)
    for j, o in enumerate(objs):
        alive = o.alive(t_s)
        pos, _, _ = o.state(t_s)
        d = np.where(alive, np.hypot(*(xy - pos[:, :2]).T), np.inf)
        better = d < best
        best[better], who[better] = d[better], j
    for i in np.flatnonzero(best < 100.0):
        cm[true_cls][cls[i]] += 1
    for i in np.flatnonzero(best >= 100.0):
        cm["(none: false track)"][cls[i]] += 1


def run(label, objs, true_cls, seed, duration, cm, stats, ctx=None):
    out, det, _ = mv.run_objects(objs, seed, duration, keep_history=True)
    _match(det, objs, true_cls, cm)
    app = {f.key for _, f in out if f.kind == "drone_approach"}
    stats[label]["objects"] += len(objs)
    stats[label]["drone_approach incidents"] += len(app)
    if true_cls == "drone" and ctx is not None:
        for o in objs:
            entry = mv.entry_time_s(ctx, o)
            first = [t for t, f in out if f.kind == "drone_approach" and f.state != "closed"]
            if entry is not None:
                stats[label]["inbound"] += 1
                stats[label]["alerted before entry"] += bool(first and first[0] < entry)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=900.0)
    args = ap.parse_args()
    cm: dict = defaultdict(Counter)
    stats: dict = defaultdict(Counter)
    fams = {
        "soaring bird": (mv.soaring_bird, "bird"),
        "paraglider": (mv.paraglider, "aircraft"),
        "glider": (mv.glider, "aircraft"),
        "helicopter": (mv.helicopter, "aircraft"),
    }
    for seed in range(1, args.seeds + 1):
        ctx = SimContext(sim_site(), SIM_T0_NS, args.duration, seed)
        zc = mv.zone_centre(ctx)
        for label, (build, cls) in fams.items():
            rng = np.random.default_rng([seed, 21])
            objs = []
            for i in range(4):
                a, d = rng.uniform(0, 2 * math.pi), rng.uniform(500, 2000)
                objs.append(
                    build(
                        rng,
                        f"{label}-{i}",
                        args.duration,
                        (zc[0] + d * math.sin(a), zc[1] + d * math.cos(a)),
                    )
                )
            run(label, objs, cls, seed, args.duration, cm, stats)
        rng = np.random.default_rng([seed, 22])
        d = mv.inbound_drone(rng, "drone", 600.0, zc)
        run("inbound drone (radar only)", [d], "drone", seed, 600.0, cm, stats, ctx)
    for name in mv.GLIDER_FILES:
        df = mv.read_track(name)
        if df is None:
            print(f"{name}: not found, skipped")
            continue
        t_all, alt = df["t_s"].to_numpy(), df["alt_m"].to_numpy()
        for w, t0 in enumerate(np.arange(0.0, t_all.max() - 900.0, 900.0)):
            win = (t_all >= t0) & (t_all <= t0 + 900.0)
            if not win.any() or alt[win].min() < alt.min() + 150.0:
                continue
            ctx = SimContext(sim_site(), SIM_T0_NS, 900.0, w + 1)
            zc = mv.zone_centre(ctx)
            for rcs, cls, label in (
                (-15.0, "bird", "real glider, bird RCS"),
                (5.0, "aircraft", "real glider, aircraft RCS"),
            ):
                rng = np.random.default_rng([w, 5])
                a = rng.uniform(0, 2 * math.pi)
                c = (zc[0] + 800 * math.sin(a), zc[1] + 800 * math.cos(a))
                o = mv.real_track(
                    df,
                    name,
                    cls,
                    float(t0),
                    900.0,
                    centre_xy=c,
                    rcs_dbsm=rcs,
                    rng=rng,
                    fluctuating=cls == "bird",
                )
                if o is not None:
                    run(label, [o], cls, w + 1, 900.0, cm, stats)
    df = mv.read_track(mv.DJI_FILE)
    if df is not None:
        for seed in range(1, args.seeds + 1):
            for with_rf in (True, False):
                rng = np.random.default_rng([seed, 3])
                ctx = SimContext(sim_site(), SIM_T0_NS, 900.0, seed)
                o = mv.dji_inbound(
                    df,
                    rng,
                    mv.zone_centre(ctx),
                    bearing_deg=float(rng.uniform(0, 360)),
                    speed_mps=float(rng.uniform(5, 15)),
                    rcs_dbsm=float(rng.uniform(-22, -10)),
                    emitter=random_emitter(rng, "ocusync") if with_rf else None,
                )
                label = f"real DJI inbound ({'RF link' if with_rf else 'radar only'})"
                run(label, [o], "drone", seed, float(o.t_s[-1]), cm, stats, ctx)
    print("\ntrack-scans by true class (rows) and most probable class (columns)")
    rows = []
    for t in (*TRUE, "(none: false track)"):
        c = cm.get(t, Counter())
        tot = sum(c.values()) or 1
        rows.append(
            {
                "true": t,
                **{k: c.get(k, 0) for k in CLASSES},
                "correct %": round(100 * c.get(t, 0) / tot, 1) if t in TRUE else None,
            }
        )
    with pl.Config(tbl_rows=20, tbl_cols=20, tbl_width_chars=200):
        print(pl.DataFrame(rows))
        print("\nper family")
        print(pl.DataFrame([{"family": k, **v} for k, v in stats.items()]).fill_null(0))


if __name__ == "__main__":
    main()
