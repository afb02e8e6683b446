"""GNSS jamming/spoofing detection over simulated scenarios: latency, misses, false alarms.

Usage: python benchmarks/gnss_detection.py [--seeds 1-10] [--duration 300]
       [--start-duration 120] [--quiet-minutes 60] [--all-feeds]
       python benchmarks/gnss_detection.py --spread-sweep [--seeds 1-10]

For each seed of ``jamming``, ``coordinated`` and ``spoofing`` it simulates
the scenario, runs its feeds through the pipeline (decoders, engine, sensor
supervision and the GNSS detector) and scores the alerts with ``rampart
score``'s rules (fusion.score); ``spoofed_start`` (a signal simulator from
the receivers' first byte; latency from the first fix, deadline 10 s) runs
for ``--start-duration`` seconds with its variant per seed. It prints per seed the truth start, the
detection latency (t_detect - t_start, data time) and any false alarm, then
the median and worst latencies per kind, and finally the false alarms of a
``quiet_hour`` run. By default only the GNSS and RF feeds are replayed (the
radar and power feeds do not reach the detector; leaving them out makes the
engine's clock advance less often, so the latencies are if anything a little
pessimistic); ``--all-feeds`` replays everything.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl

from drivers.simulated import scenarios
from fusion.alerts import encode_alert
from fusion.cli.pipeline import Pipeline
from fusion.config import parse_config
from fusion.gnss import GnssDetector
from fusion.score import score
from fusion.supervision import SensorSupervision

DEADLINES = {"gnss_jamming": 5.0, "gnss_spoofing": 10.0}
START = "spoofed_start"  # its latencies are from the first fix, kept apart
TRUTH_SCHEMA = {
    "object_id": pl.Utf8,
    "kind": pl.Utf8,
    "t_start_ns": pl.Int64,
    "t_end_ns": pl.Int64,
    "must_alert": pl.Boolean,
    "deadline_ns": pl.Int64,
}


def gnss_rows(site, feeds, all_feeds: bool):
    if all_feeds:
        return feeds
    keep = {s.id for s in site.sensors if s.kind == "gnss"}
    topics = tuple(
        s.topic.rstrip("+").rstrip("/")
        for s in site.sensors
        if s.kind in ("gnss", "rf") and s.topic
    )
    return [r for r in feeds if r.channel in keep or r.channel.startswith(topics)]


def run(name: str, seed: int, duration: float | None, all_feeds: bool):
    toml, out = scenarios.build(name, seed, duration)
    site = parse_config(toml)
    alerts = []
    pipe = Pipeline(
        site, alerts.append, detectors=[SensorSupervision(site.sensors), GnssDetector(site)]
    )
    rows = gnss_rows(site, out.feeds, all_feeds)
    t0 = time.perf_counter()
    for r in rows:
        pipe.receive(r.t_rx_ns, r.transport, r.channel, r.payload)
    pipe.finish()
    wall = time.perf_counter() - t0
    truth = pl.DataFrame(
        [t.__dict__ if hasattr(t, "__dict__") else _row(t) for t in out.truth], schema=TRUTH_SCHEMA
    )
    import json

    dicts = [json.loads(encode_alert(a)) for a in alerts]
    result = score(truth, dicts, (out.feeds[0].t_rx_ns, out.feeds[-1].t_rx_ns))
    span_s = (out.feeds[-1].t_rx_ns - out.feeds[0].t_rx_ns) / 1e9
    return result, alerts, span_s, wall


def _row(t) -> dict:
    return {k: getattr(t, k) for k in TRUTH_SCHEMA}


def start_variant(seed: int, duration: float) -> str:
    """What ``spoofed_start`` does at this seed: receivers fed, NMEA-only, level, spread."""
    from drivers.simulated.base import SimContext
    from drivers.simulated.site import SIM_T0_NS, sim_site

    ctx = SimContext(sim_site(), SIM_T0_NS, duration, seed)
    (ep,) = scenarios.SCENARIOS[START].events(ctx, ctx.rng(f"scenario:{START}")).spoofing
    fed = ",".join(ep.receivers) or "all"
    nmea = ",".join(ep.nmea_only) or "-"
    return f"fed {fed}, NMEA-only {nmea}, {ep.level_dbhz:.1f} dB-Hz, spread {ep.spread_db:.2f} dB"


def spread_sweep(seeds: list[int], duration: float) -> None:
    """``spoofed_start`` with the simulator's added spread forced: where the sky check stops."""
    import dataclasses
    import json

    from drivers.simulated.base import SimContext, SimOutput
    from drivers.simulated.gnss import simulate_gnss
    from drivers.simulated.site import SIM_T0_NS, sim_site

    print(f"\n{START} with forced added spread ({duration:g} s, seeds {seeds[0]}-{seeds[-1]})")
    print(f"{'spread_db':>9} {'detected':>8} {'timely':>6} {'median_s':>8} {'max_s':>6}")
    for spread in (0.0, 0.5, 1.0, 1.25, 1.5, 2.0, 3.0):
        lat: list[float] = []
        timely = 0
        for seed in seeds:
            ctx = SimContext(sim_site(), SIM_T0_NS, duration, seed)
            (ep,) = scenarios.SCENARIOS[START].events(ctx, ctx.rng(f"scenario:{START}")).spoofing
            ep = dataclasses.replace(ep, spread_db=spread)
            gnss = [x for x in ctx.site.sensors if x.kind == "gnss"]
            out = SimOutput()
            out.extend(simulate_gnss(ctx, gnss, [], [ep]))
            site = ctx.site
            alerts: list = []
            pipe = Pipeline(
                site, alerts.append, detectors=[SensorSupervision(site.sensors), GnssDetector(site)]
            )
            for r in out.feeds:
                pipe.receive(r.t_rx_ns, r.transport, r.channel, r.payload)
            pipe.finish()
            truth = pl.DataFrame([_row(t) for t in out.truth], schema=TRUTH_SCHEMA)
            dicts = [json.loads(encode_alert(a)) for a in alerts]
            res = score(truth, dicts, (out.feeds[0].t_rx_ns, out.feeds[-1].t_rx_ns))
            (row,) = res["truth_rows"]
            if row["latency_raw_s"] is not None:
                lat.append(row["latency_raw_s"])
                timely += bool(row["timely"])
        med = f"{statistics.median(lat):8.2f}" if lat else f"{'-':>8}"
        worst = f"{max(lat):6.2f}" if lat else f"{'-':>6}"
        print(f"{spread:9.2f} {len(lat):>4}/{len(seeds):<3} {timely:>6} {med} {worst}")


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(x) for x in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1-10")
    ap.add_argument("--duration", type=float, default=300.0)
    ap.add_argument("--start-duration", type=float, default=120.0)
    ap.add_argument("--quiet-minutes", type=float, default=60.0)
    ap.add_argument("--all-feeds", action="store_true")
    ap.add_argument(
        "--spread-sweep", action="store_true", help=f"only {START} against the added spread"
    )
    args = ap.parse_args()
    seeds = parse_seeds(args.seeds)
    if args.spread_sweep:
        spread_sweep(seeds, args.start_duration)
        return
    latencies: dict[str, list[float]] = {k: [] for k in (*DEADLINES, START)}
    problems = 0
    for name in ("jamming", "coordinated", "spoofing", START):
        duration = args.start_duration if name == START else args.duration
        print(f"\n{name} ({duration:g} s)")
        print(f"{'seed':>5} {'kind':<14} {'t_start_s':>9} {'latency_s':>9}  false alarms")
        for seed in seeds:
            result, _, _, wall = run(name, seed, duration, args.all_feeds)
            for row in result["truth_rows"]:
                kind = row["kind"]
                if kind not in DEADLINES:
                    continue
                lat = row["latency_raw_s"]
                start = (row["t_start_ns"] - scenarios.SIM_T0_NS) / 1e9
                late = lat is None or lat > DEADLINES[kind]
                problems += late
                if lat is not None:
                    latencies[START if name == START else kind].append(lat)
                fa = {k: v["false_alarms"] for k, v in result["kinds"].items() if k in DEADLINES}
                fa = {k: v for k, v in fa.items() if v}
                problems += sum(fa.values())
                shown = "missed" if lat is None else f"{lat:9.2f}"
                flag = "  LATE" if late else ""
                print(
                    f"{seed:>5} {kind:<14} {start:9.1f} {shown:>9}  {fa or '-'}{flag}  ({wall:.1f} s)"
                )
                if name == START:
                    print(f"{'':>5} {start_variant(seed, duration)}")
    print("\nlatency (t_detect - t_start, data time; negative: decided before the modelled start)")
    for kind, values in latencies.items():
        if values:
            deadline = DEADLINES.get(kind, DEADLINES["gnss_spoofing"])
            print(
                f"  {kind:<14} n={len(values):3d} median {statistics.median(values):6.2f} s  "
                f"max {max(values):6.2f} s  min {min(values):6.2f} s  (deadline {deadline:g} s)"
            )
    if args.quiet_minutes > 0:
        result, alerts, span_s, wall = run("quiet_hour", 1, args.quiet_minutes * 60, args.all_feeds)
        gnss = [a for a in alerts if a.kind in DEADLINES]
        faults = [
            a for a in alerts if a.kind == "sensor_fault" and a.details.get("reason") == "antenna"
        ]
        problems += len(gnss) + len(faults)
        print(
            f"\nquiet_hour ({span_s / 60:.0f} min): {len(gnss)} gnss alerts, {len(faults)} antenna "
            f"sensor_fault alerts, replayed in {wall:.1f} s ({span_s / max(wall, 1e-9):.0f}x real time)"
        )
    print(f"\n{'OK' if not problems else f'{problems} problems'}")


if __name__ == "__main__":
    main()
