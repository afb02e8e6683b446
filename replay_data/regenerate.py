"""Regenerate the recorded scenarios in replay_data/ and their expected alerts.

Usage: python replay_data/regenerate.py [NAME ...]   (or: make regen-replay-data)

Each entry below is one scenario directory: a recording (simulated with a
fixed seed, with any sensor faults injected) and ``expected-alerts.jsonl``,
the alerts ``rampart replay`` gives on it. ``tests/test_replay_data.py``
replays every directory and compares byte for byte, so a change in behaviour
shows up as a diff; regenerate on purpose, and review the diff of the
expected alerts in the same commit that changes the behaviour.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.jsonl_sink import JsonlSink  # noqa: E402
from drivers.recording import RecordingWriter  # noqa: E402
from drivers.simulated import scenarios  # noqa: E402
from drivers.simulated.base import SimContext  # noqa: E402
from drivers.simulated.faults import SensorFault, apply_faults  # noqa: E402
from drivers.simulated.site import SIM_T0_NS  # noqa: E402
from fusion.cli.replay import replay  # noqa: E402
from fusion.config import parse_config  # noqa: E402

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Entry:
    scenario: str
    seed: int
    duration_s: float
    faults: tuple[SensorFault, ...] = field(default=())
    about: str = ""


ENTRIES = {
    "sensor_faults": Entry(
        "quiet_hour",
        seed=11,
        duration_s=60,
        faults=(SensorFault("radar-1", "outage", 15, 35), SensorFault("gnss-1", "garbage", 25, 40)),
        about="A minute of the site's background; the radar loses power for 20 s and "
        "gnss-1's cable picks up line noise for 15 s. Expect sensor_fault open/closed for both.",
    ),
    "emp": Entry(
        "emp",
        seed=3,
        duration_s=30,
        about="30 s with EMP-like impulses on both feeds. Expect power_transient emp_like "
        "alerts about 50 ms after each impulse, raised to critical by the burst captures.",
    ),
}


def regenerate(name: str, entry: Entry) -> None:
    out = HERE / name
    if out.exists():
        shutil.rmtree(out)
    site_toml, sim = scenarios.build(entry.scenario, entry.seed, entry.duration_s)
    ctx = SimContext(parse_config(site_toml), SIM_T0_NS, entry.duration_s, entry.seed)
    feeds = apply_faults(ctx, sim.feeds, list(entry.faults))
    with RecordingWriter(out, site_toml) as writer:
        writer.extend(feeds)
        writer.write_truth(sim.truth)
        writer.write_truth_tracks(sim.truth_tracks)
    (out / "ABOUT.md").write_text(
        f"# {name}\n\n{entry.about}\n\nMade by `python replay_data/regenerate.py {name}`: scenario "
        f"`{entry.scenario}`, seed {entry.seed}, {entry.duration_s:g} s"
        + (", faults: " + "; ".join(f"{f.sensor} {f.kind} {f.t_start_s:g}-{f.t_end_s:g} s" for f in entry.faults) if entry.faults else "")
        + ".\n"
    )
    sink = JsonlSink(out / "expected-alerts.jsonl")
    result = replay(out, parse_config(site_toml), [sink])
    sink.close()
    print(f"{name}: {len(feeds)} messages, {len(result.pipeline.alerts)} alerts")


def main(names: list[str]) -> None:
    for name in names or list(ENTRIES):
        regenerate(name, ENTRIES[name])


if __name__ == "__main__":
    main(sys.argv[1:])
