"""``rampart simulate``: a scenario into a recording with truth."""

from __future__ import annotations

from pathlib import Path

from drivers.recording import RecordingWriter
from drivers.simulated import scenarios


def write_scenario(
    name: str,
    out: Path,
    seed: int,
    duration_s: float | None = None,
    trajectories: list | None = None,
) -> str:
    """Write scenario ``name``; ``trajectories`` (``flown.FlightSpec``) fly real tracks in it."""
    extra = None
    if trajectories:
        from drivers.simulated.flown import fly_specs

        def extra(ctx):
            return fly_specs(ctx, trajectories)

    site_toml, output = scenarios.build(name, seed, duration_s, extra_objects=extra)
    with RecordingWriter(out, site_toml) as writer:
        writer.extend(output.feeds)
        writer.write_truth(output.truth)
        writer.write_truth_tracks(output.truth_tracks)
    must = sum(1 for t in output.truth if t.must_alert)
    flown = f", {len(trajectories)} trajectory file(s) flown" if trajectories else ""
    return (
        f"{name} (seed {seed}): {len(output.feeds)} messages, {len(output.truth)} truth rows "
        f"({must} must alert), {len(output.truth_tracks)} truth track points{flown} -> {out}"
    )
