"""EMP-like detection on the simulator's family of waveforms (issue #13): ``emp_family``
simulated for several seeds, replayed through the power detector, scored.

    .venv/bin/python benchmarks/power_family.py [--seeds 1-5] [--duration 60]

Prints per seed the EMP-like events, how many were alerted ``emp_like`` in time, the
detection latency (alert ``t_detect`` minus the impulse) and any other power alert.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from drivers.recording import RecordingReader, RecordingWriter
from drivers.simulated import scenarios
from fusion.alerts import encode_alert
from fusion.cli.replay import replay
from fusion.config import parse_config
from fusion.power.detector import PowerTransientDetector
from fusion.score import score

KINDS_READ = ("power", "switchgear", "rf")


def run_seed(name: str, seed: int, duration_s: float | None, tmp: Path) -> dict:
    site_toml, out = scenarios.build(name, seed, duration_s)
    site = parse_config(site_toml)
    wanted = [s for s in site.sensors if s.kind in KINDS_READ]
    ids = {s.id for s in wanted}
    topics = {s.topic.rsplit("/", 1)[0] for s in wanted if s.topic}
    rows = [r for r in out.feeds if r.channel in ids or r.channel.rsplit("/", 1)[0] in topics]
    path = tmp / f"{name}-{seed}"
    with RecordingWriter(path, site_toml) as w:
        w.extend(rows)
        w.write_truth(out.truth)
    reader = RecordingReader(path)
    site = parse_config(reader.site_toml())
    res = replay(path, site, [], detectors=[PowerTransientDetector(site)])
    alerts = [json.loads(encode_alert(a)) for a in res.pipeline.alerts]
    scored = score(reader.truth(), alerts, res.span_ns)
    rows = [t for t in reader.truth().to_dicts() if t["kind"] == "power_transient_emp"]
    firsts: dict[str, dict] = {}
    for a in alerts:
        if a["details"].get("subtype") == "emp_like":
            firsts.setdefault(a["incident_id"], a)
    lat = []
    for row in rows:
        near = [a for a in firsts.values() if abs(a["t_event_ns"] - row["t_start_ns"]) < 2_000_000]
        if near:
            lat.append((near[0]["t_detect_ns"] - row["t_start_ns"]) / 1e6)
    others = [
        a["summary"]
        for a in alerts
        if a["state"] == "open" and a["details"].get("subtype") not in (None, "emp_like")
    ]
    emp = scored["kinds"]["power_transient_emp"]
    return {
        "events": len(rows),
        "detected": emp["detected"],
        "timely": emp["timely"],
        "false": scored["totals"]["false_alarms"],
        "latency_ms": lat,
        "others": others,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="emp_family")
    ap.add_argument("--seeds", default="1-5", help="a range a-b or a comma list")
    ap.add_argument("--duration", type=float, default=None, help="seconds (default: scenario's)")
    args = ap.parse_args()
    if "-" in args.seeds:
        a, b = (int(x) for x in args.seeds.split("-"))
        seeds = list(range(a, b + 1))
    else:
        seeds = [int(x) for x in args.seeds.split(",")]
    total = timely = 0
    lats: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{args.scenario}: seed  events  detected  timely  false  latency ms")
        for seed in seeds:
            r = run_seed(args.scenario, seed, args.duration, Path(tmp))
            total += r["events"]
            timely += r["timely"]
            lats += r["latency_ms"]
            lat = ", ".join(f"{x:.1f}" for x in r["latency_ms"])
            print(
                f"  {seed:>4} {r['events']:>7} {r['detected']:>9} {r['timely']:>7} "
                f"{r['false']:>6}  {lat}"
            )
            for s in r["others"]:
                print(f"        other alert: {s}")
    lats.sort()
    if lats:
        print(
            f"timely {timely}/{total}; latency {lats[0]:.1f}-{lats[-1]:.1f} ms, "
            f"median {lats[len(lats) // 2]:.1f} ms"
        )


if __name__ == "__main__":
    main()
