"""Replay speed of a 60-minute all-sensor recording, as a multiple of real time.

Usage: python benchmarks/replay_speed.py [--minutes 60] [--scenario quiet_hour] [--keep DIR]

Simulates the recording once (cached under the --keep directory), then replays
it with ``--fast`` semantics in this process (one core: the pipeline is single
threaded) and prints the speed and where the time goes: reading Parquet,
decoding per sensor kind, and the engine with its detectors. It runs twice:
as the pipeline runs (GNSS messages parsed into fields only for the identities
its detectors read) and with every GNSS message parsed by pyubx2/pynmeagps
(the cost a GNSS detector reading everything would add). Goal (issue #2): at
least 100x real time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.recording import RecordingReader
from fusion.cli.pipeline import Pipeline
from fusion.cli.simulate import write_scenario
from fusion.config import parse_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--scenario", default="quiet_hour")
    ap.add_argument("--keep", type=Path, default=Path("/tmp/rampart-bench"))
    ap.add_argument(
        "--profile", action="store_true", help="also print the top functions by own time"
    )
    args = ap.parse_args()

    rec = args.keep / f"{args.scenario}-{args.minutes:g}min"
    if not (rec / "feeds").is_dir():
        t0 = time.perf_counter()
        print(write_scenario(args.scenario, rec, seed=1, duration_s=args.minutes * 60))
        print(f"simulated in {time.perf_counter() - t0:.1f} s")

    reader = RecordingReader(rec)
    site = parse_config(reader.site_toml())
    kind_of = {s.id: s.kind for s in site.sensors}

    # Pass 1: read only (Parquet -> Python objects), to separate I/O from work.
    t0 = time.perf_counter()
    n_rows = n_bytes = 0
    for msg in reader.messages():
        n_rows += 1
        n_bytes += len(msg.payload)
    read_s = time.perf_counter() - t0

    print(f"\nrecording: {rec}  ({n_rows} messages, {n_bytes / 1e6:.0f} MB payload)")
    print(f"reading Parquet alone: {read_s:.2f} s")
    for parse_all in (False, True):
        run_pipeline(reader, site, kind_of, read_s, parse_all, args.profile)


def run_pipeline(reader, site, kind_of, read_s: float, parse_all_gnss: bool, profile: bool) -> None:
    """The full pipeline over the recording, timing decode per sensor kind."""
    pipe = Pipeline(site, lambda a: None, parse_all_gnss=parse_all_gnss)
    decode_by_kind: dict[str, float] = defaultdict(float)
    rows_by_kind: dict[str, int] = defaultdict(int)
    route = pipe.router.decode

    def timed_decode(t_rx_ns, transport, channel, payload):
        t = time.perf_counter()
        out = route(t_rx_ns, transport, channel, payload)
        parts = channel.split("/")
        sensor = channel if transport == "serial" else parts[3] if len(parts) >= 4 else channel
        kind = kind_of.get(sensor, "other")
        decode_by_kind[kind] += time.perf_counter() - t
        rows_by_kind[kind] += 1
        return out

    pipe.router.decode = timed_decode
    profiler = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if profiler:
        profiler.enable()
    first = last = None
    for msg in reader.messages():
        if first is None:
            first = msg.t_rx_ns
        last = msg.t_rx_ns
        pipe.receive(msg.t_rx_ns, msg.transport, msg.channel, msg.payload)
    pipe.finish()
    if profiler:
        profiler.disable()
    total_s = time.perf_counter() - t0
    span_s = (last - first) / 1e9

    wanted = (
        "every GNSS message parsed"
        if parse_all_gnss
        else "GNSS parsed only for what detectors read"
    )
    print(f"\n== replay, {wanted} ==")
    print(
        f"{span_s / 60:.1f} min of data replayed in {total_s:.1f} s  ->  {span_s / total_s:.0f}x real time on one core"
    )
    print(f"alerts: {len(pipe.alerts)}   rejected inputs: {pipe.ledger.total()}")
    print("where the time goes:")
    print(f"  {'read Parquet':<28} {read_s:7.2f} s  {read_s / total_s * 100:5.1f} %")
    for kind in sorted(decode_by_kind):
        s = decode_by_kind[kind]
        n = rows_by_kind[kind]
        print(
            f"  {'decode ' + kind:<28} {s:7.2f} s  {s / total_s * 100:5.1f} %   ({n} messages, {s / max(n, 1) * 1e6:.0f} µs each)"
        )
    print(
        f"  {'engine + detectors':<28} {pipe.engine_s:7.2f} s  {pipe.engine_s / total_s * 100:5.1f} %"
    )
    rest = total_s - read_s - sum(decode_by_kind.values()) - pipe.engine_s
    print(f"  {'other (loop, bookkeeping)':<28} {rest:7.2f} s  {rest / total_s * 100:5.1f} %")
    if profiler:
        print()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
