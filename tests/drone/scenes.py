"""Simulated recordings for the drone tests: the radar and RF feeds of ``rampart simulate``.

``radar_rf_recording`` runs exactly what ``scenarios.build`` runs for the radar
and RF sensors (same events, same background, same named random streams), so
those feeds are byte for byte the ones ``rampart simulate`` writes for the same
scenario, seed and duration (``test_scenes_match_rampart_simulate`` checks it);
the GNSS and power models, which the drone detector never reads and which take
most of the build time, are left out.
"""

from __future__ import annotations

from pathlib import Path

from drivers.recording import RecordingWriter
from drivers.simulated import scenarios
from drivers.simulated.base import SimContext, SimOutput
from drivers.simulated.radar import simulate_radar
from drivers.simulated.rf import simulate_rf
from drivers.simulated.site import SIM_SITE_TOML, SIM_T0_NS, sim_site


def radar_rf_output(name: str, seed: int, duration_s: float | None = None) -> SimOutput:
    spec = scenarios.SCENARIOS[name]
    duration = float(spec.duration_s if duration_s is None else duration_s)
    ctx = SimContext(sim_site(), SIM_T0_NS, duration, int(seed))
    events = spec.events(ctx, ctx.rng(f"scenario:{name}"))
    objects = list(events.objects) + scenarios.background(ctx, birds=spec.background_birds)
    sensors = ctx.site.sensors
    out = SimOutput()
    out.extend(simulate_radar(ctx, [s for s in sensors if s.kind == "radar"], objects))
    out.extend(
        simulate_rf(
            ctx, [s for s in sensors if s.kind == "rf"], objects, events.jamming, events.power
        )
    )
    out.feeds.sort(key=lambda r: r.t_rx_ns)
    out.truth.sort(key=lambda r: (r.t_start_ns, r.object_id))
    out.truth_tracks.sort(key=lambda r: (r.t_ns, r.object_id))
    return out


def radar_rf_recording(name: str, seed: int, out: Path, duration_s: float | None = None) -> Path:
    """Writes the radar + RF recording of a scenario to ``out``; returns ``out``."""
    sim = radar_rf_output(name, seed, duration_s)
    with RecordingWriter(out, SIM_SITE_TOML) as w:
        w.extend(sim.feeds)
        w.write_truth(sim.truth)
        w.write_truth_tracks(sim.truth_tracks)
    return out
