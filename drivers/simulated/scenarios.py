"""Scenario registry for ``rampart simulate``: every simulated sensor, composed.

A scenario is a description, a default duration and a function of the
context and the scenario's random stream that returns its events: moving
objects, GNSS jamming and spoofing episodes and power events. ``build`` adds
the site's normal background (radar clutter and noise, distant birds) and runs
every sensor model of the simulated site over the same events, so no sensor
is ever silent: radar scans, RF reports and sweeps, GNSS epochs of every
receiver, power waveforms of every feed.

Seeds vary start times, bearings, speeds and behaviours; the same name, seed
and duration always give the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from drivers.simulated.base import (
    JammingEpisode,
    PowerEvent,
    SimContext,
    SimOutput,
    SpoofingEpisode,
)
from drivers.simulated.objects import (
    aircraft_overflight,
    approaching_drone,
    bird_flock,
    far_drone,
    site_clutter,
    swarm,
)
from drivers.simulated.radar import simulate_radar
from drivers.simulated.rf import simulate_rf
from drivers.simulated.site import SIM_SITE_TOML, SIM_T0_NS, sim_site


@dataclass
class ScenarioEvents:
    """What happens in a scenario, for the sensor models to observe."""

    objects: list = field(default_factory=list)  # MovingObject and ClutterSource
    jamming: list[JammingEpisode] = field(default_factory=list)
    spoofing: list[SpoofingEpisode] = field(default_factory=list)
    power: list[PowerEvent] = field(default_factory=list)


EventsFn = Callable[[SimContext, np.random.Generator], ScenarioEvents]


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    description: str
    duration_s: float
    events: EventsFn
    background_birds: bool = True  # distant flocks (always beyond the alert radius)
    min_duration_s: float = 60.0  # shorter runs cannot hold the scenario's events


# --------------------------------------------------------------------------- scenario content


def _approach(ctx: SimContext, rng: np.random.Generator) -> ScenarioEvents:
    d = ctx.duration_s
    drone = approaching_drone(
        ctx,
        rng,
        "drone-1",
        zone="hall-a",
        t_start_s=float(rng.uniform(5.0, min(30.0, 0.1 * d))),
        arrive_by_s=d - 60.0,
        emitter=True,
    )
    return ScenarioEvents(objects=[drone])


def _swarm(ctx: SimContext, rng: np.random.Generator) -> ScenarioEvents:
    d = ctx.duration_s
    drones = swarm(
        ctx,
        rng,
        "swarm",
        zone="hall-a",
        t_start_s=float(rng.uniform(5.0, min(20.0, 0.1 * d))),
        arrive_by_s=d - 50.0,
    )
    return ScenarioEvents(objects=drones)


def _birds(ctx: SimContext, rng: np.random.Generator) -> ScenarioEvents:
    n_flocks = int(rng.integers(3, 7))
    objects = []
    for i in range(n_flocks):
        crosses = i < 2 or bool(rng.random() < 0.5)
        t_ca = float(rng.uniform(0.2, 0.8)) * ctx.duration_s
        objects += bird_flock(ctx, rng, f"flock-{i + 1}", crosses=crosses, t_closest_s=t_ca)
    return ScenarioEvents(objects=objects)


def _aircraft(ctx: SimContext, rng: np.random.Generator) -> ScenarioEvents:
    n = int(rng.integers(1, 4))
    times = np.sort(rng.uniform(0.25, 0.75, n)) * ctx.duration_s
    return ScenarioEvents(
        objects=[
            aircraft_overflight(ctx, rng, f"aircraft-{i + 1}", t_closest_s=float(t))
            for i, t in enumerate(times)
        ]
    )


def _far_drone(ctx: SimContext, rng: np.random.Generator) -> ScenarioEvents:
    n = int(rng.integers(1, 3))
    return ScenarioEvents(
        objects=[
            far_drone(
                ctx,
                rng,
                f"far-drone-{i + 1}",
                t_start_s=float(rng.uniform(5.0, 0.2 * ctx.duration_s)),
            )
            for i in range(n)
        ]
    )


def _jamming_episode(
    rng: np.random.Generator, t_start_s: float, t_latest_end_s: float, object_id: str = "jammer-1"
) -> JammingEpisode:
    bands = ("L1",)
    if rng.random() < 0.4:
        bands = ("L1", "L2", "L5")
    elif rng.random() < 0.3:
        bands = ("L1", "G1", "B1")
    t_end = min(t_latest_end_s, t_start_s + float(rng.uniform(60.0, 150.0)))
    return JammingEpisode(
        object_id,
        t_start_s,
        max(t_end, t_start_s + 10.0),
        peak_jn_db=float(rng.uniform(30.0, 50.0)),
        ramp_s=float(rng.uniform(10.0, 30.0)),
        bands=bands,
    )


def _jamming(ctx: SimContext, rng: np.random.Generator) -> ScenarioEvents:
    d = ctx.duration_s
    t0 = float(rng.uniform(0.1, 0.3)) * d
    return ScenarioEvents(jamming=[_jamming_episode(rng, t0, d - 10.0)])


def _spoofing(ctx: SimContext, rng: np.random.Generator) -> ScenarioEvents:
    d = ctx.duration_s
    t0 = float(rng.uniform(0.1, 0.3)) * d
    t1 = min(d - 10.0, t0 + float(rng.uniform(90.0, 180.0)))
    episode = SpoofingEpisode(
        "spoofer-1",
        t0,
        max(t1, t0 + 10.0),
        drift_mps=float(rng.uniform(1.0, 5.0)),
        clock_jump_ns=float(rng.uniform(1e3, 1e5)) if rng.random() < 0.5 else 0.0,
        power_advantage_db=float(rng.uniform(3.0, 10.0)),
    )
    return ScenarioEvents(spoofing=[episode])


def _spoofed_start(ctx: SimContext, rng: np.random.Generator) -> ScenarioEvents:
    """A signal simulator feeds the receivers from their first byte (no onset to see).

    Variants by seed: odd seeds make the first receiver NMEA-only, every third seed feeds
    the first receiver only (a cabled simulator), the others all (a radiating one); the
    power level, the spread the simulator adds and the time to first fix are drawn.
    """
    from drivers.simulated.gnss import SimulatorStart  # heavy module: only when built

    gnss = sorted(s.id for s in ctx.site.sensors if s.kind == "gnss")
    first = tuple(gnss[:1])
    episode = SimulatorStart(
        "simulator-1",
        float(rng.uniform(5.0, 35.0)),  # first fix: hot to cold start
        ctx.duration_s,
        drift_mps=0.0,
        level_dbhz=float(rng.uniform(38.0, 52.0)),
        spread_db=0.0 if rng.random() < 0.3 else float(rng.uniform(0.3, 1.0)),
        receivers=first if ctx.seed % 3 == 0 else (),
        nmea_only=first if ctx.seed % 2 == 1 else (),
    )
    return ScenarioEvents(spoofing=[episode])


def _spread_times(
    rng: np.random.Generator, n: int, lo: float, hi: float, min_gap_s: float
) -> list[float]:
    """n times in [lo, hi], at least ``min_gap_s`` apart where the span allows."""
    gap = min(min_gap_s, (hi - lo) / max(n, 1))
    slack = max(0.0, (hi - lo) - gap * (n - 1))
    cuts = np.sort(rng.uniform(0.0, slack, n))
    return [float(lo + c + i * gap) for i, c in enumerate(cuts)]


def _emp_events(
    rng: np.random.Generator, times: list[float], prefix: str = "emp"
) -> list[PowerEvent]:
    # magnitude scales the power model's default impulse (about 8 pu peak).
    return [
        PowerEvent(
            f"{prefix}-{i + 1}", "emp", t, ("A", "B"), magnitude=float(rng.uniform(0.6, 1.5))
        )
        for i, t in enumerate(times)
    ]


def _emp(ctx: SimContext, rng: np.random.Generator) -> ScenarioEvents:
    d = ctx.duration_s
    n = int(rng.integers(1, 4))
    return ScenarioEvents(power=_emp_events(rng, _spread_times(rng, n, 0.15 * d, 0.85 * d, 20.0)))


def _emp_family(ctx: SimContext, rng: np.random.Generator) -> ScenarioEvents:
    """2-4 EMP-like events on feeds A and B, each drawn from the power model's family of
    waveforms (polarity, coupling, saturation, ringing, spread: drivers/simulated/power.py)."""
    d = ctx.duration_s
    n = int(rng.integers(2, 5))
    times = _spread_times(rng, n, 0.15 * d, 0.85 * d, 5.0)
    return ScenarioEvents(
        power=[PowerEvent(f"emp-{i + 1}", "emp_family", t, ("A", "B")) for i, t in enumerate(times)]
    )


def _switching(ctx: SimContext, rng: np.random.Generator) -> ScenarioEvents:
    """Normal operations that must not alert, each on one feed.

    Magnitudes scale the power model's default severity of each kind; durations
    are left to the model (0: its default ranges).
    """
    d = ctx.duration_s
    kinds = ["cap_switching", "ats_transfer", "sag", "fault"]
    if rng.random() < 0.5:
        kinds.append("cap_switching")
    order = [kinds[i] for i in rng.permutation(len(kinds))]
    times = _spread_times(rng, len(order), 0.1 * d, 0.9 * d, 15.0)
    events = []
    for i, (kind, t) in enumerate(zip(order, times, strict=True)):
        feed = ("A", "B")[int(rng.integers(0, 2))]
        magnitude = float(rng.uniform(0.8, 1.2))
        events.append(PowerEvent(f"{kind.replace('_', '-')}-{i + 1}", kind, t, (feed,), magnitude))
    return ScenarioEvents(power=events)


def _coordinated(ctx: SimContext, rng: np.random.Generator) -> ScenarioEvents:
    """Jam GNSS, walk a drone in, and hit the feeds as it arrives."""
    d = ctx.duration_s
    arrive = float(rng.uniform(0.6, 0.8)) * d
    drone = approaching_drone(
        ctx,
        rng,
        "drone-1",
        zone="hall-a",
        t_start_s=float(rng.uniform(5.0, min(20.0, 0.1 * d))),
        arrive_by_s=arrive,
        enters=True,
        emitter=True,
        p_remote_id=0.0,
    )
    jam_start = max(5.0, arrive - float(rng.uniform(90.0, 150.0)))
    jam = _jamming_episode(rng, jam_start, d - 5.0)
    jam = JammingEpisode(
        jam.object_id,
        jam.t_start_s,
        max(jam.t_end_s, min(d - 5.0, arrive + 30.0)),
        jam.peak_jn_db,
        jam.ramp_s,
        jam.bands,
    )
    t_emp = min(d - 10.0, max(10.0, arrive + float(rng.uniform(-30.0, 20.0))))
    return ScenarioEvents(objects=[drone], jamming=[jam], power=_emp_events(rng, [t_emp]))


def _quiet(ctx: SimContext, rng: np.random.Generator) -> ScenarioEvents:
    return ScenarioEvents()


def _soaring_birds(ctx: SimContext, rng: np.random.Generator) -> ScenarioEvents:
    """Kettles of large soaring birds; the variant (how many, how high, wind) is per seed."""
    from drivers.simulated.soaring_birds import soaring_kettle

    wind_dir = float(rng.uniform(0.0, 2.0 * np.pi))  # one wind for every kettle
    wind = float(rng.uniform(0.0, 8.0)) * np.array([np.sin(wind_dir), np.cos(wind_dir)])
    objects = []
    for i in range(int(rng.integers(1, 5))):
        objects += soaring_kettle(
            ctx, rng, f"soaring-{i + 1}", crosses=i == 0 or bool(rng.random() < 0.6), wind_mps=wind
        )
    return ScenarioEvents(objects=objects)


def _helicopter(ctx: SimContext, rng: np.random.Generator) -> ScenarioEvents:
    """One or two helicopters hovering, surveying or orbiting within the alert radius."""
    from drivers.simulated.helicopters import helicopter

    n = 1 if rng.random() < 0.7 else 2
    return ScenarioEvents(objects=[helicopter(ctx, rng, f"helicopter-{i + 1}") for i in range(n)])


SCENARIOS: dict[str, ScenarioSpec] = {
    "approach": ScenarioSpec(
        "One drone flies in from 3-5 km on zone hall-a; it may hover or stop short",
        300.0,
        _approach,
        min_duration_s=240.0,
    ),
    "swarm": ScenarioSpec(
        "3-6 drones approach hall-a together from spread bearings",
        300.0,
        _swarm,
        min_duration_s=240.0,
    ),
    "birds": ScenarioSpec(
        "Bird flocks pass the site, several inside the alert radius; no drone", 300.0, _birds
    ),
    "aircraft": ScenarioSpec("Aircraft overflights at 300-3000 m; no drone", 240.0, _aircraft),
    "far_drone": ScenarioSpec(
        "Drones working beyond every zone's alert radius; must not alert", 240.0, _far_drone
    ),
    "jamming": ScenarioSpec(
        "A GNSS jammer (L1 at least) ramps up near the site, holds and goes",
        300.0,
        _jamming,
        min_duration_s=150.0,
    ),
    "spoofing": ScenarioSpec(
        "A GNSS spoofer captures the receivers and drags the solution away",
        300.0,
        _spoofing,
        min_duration_s=150.0,
    ),
    "spoofed_start": ScenarioSpec(
        "A GNSS signal simulator feeds the receivers from their first byte",
        120.0,
        _spoofed_start,
        min_duration_s=60.0,
    ),
    "emp": ScenarioSpec("1-3 EMP-like impulses on feeds A and B", 180.0, _emp, min_duration_s=30.0),
    "emp_family": ScenarioSpec(
        "2-4 EMP-like events on feeds A and B drawn from a family of waveforms "
        "(coupling, saturation, ringing, spread)",
        60.0,
        _emp_family,
        min_duration_s=20.0,
    ),
    "switching": ScenarioSpec(
        "Capacitor switching, an ATS transfer, a sag and a fault: normal operations, must not alert",
        240.0,
        _switching,
    ),
    "coordinated": ScenarioSpec(
        "GNSS jamming, a drone approach and an EMP-like impulse within minutes",
        300.0,
        _coordinated,
        min_duration_s=240.0,
    ),
    "soaring_birds": ScenarioSpec(
        "Kettles of large soaring birds thermalling and gliding past the site; no drone",
        300.0,
        _soaring_birds,
    ),
    "helicopter": ScenarioSpec(
        "A slow or hovering helicopter within the alert radius; no drone",
        300.0,
        _helicopter,
        min_duration_s=120.0,
    ),
    "quiet_hour": ScenarioSpec(
        "An hour of background only: clutter, noise, distant birds",
        3600.0,
        _quiet,
        min_duration_s=10.0,
    ),
}


def list_scenarios() -> list[tuple[str, str]]:
    return [(name, spec.description) for name, spec in SCENARIOS.items()]


def background(ctx: SimContext, birds: bool = True) -> list:
    """The site's normal scene: its clutter map and, now and then, a distant flock."""
    objects: list = list(site_clutter(ctx, ctx.rng("clutter")))
    if birds:
        rng = ctx.rng("background-birds")
        n = int(rng.poisson(max(1.0, ctx.duration_s / 600.0)))
        for i in range(min(n, 12)):
            objects += bird_flock(
                ctx,
                rng,
                f"bg-flock-{i + 1}",
                crosses=False,
                t_closest_s=float(rng.uniform(0.0, ctx.duration_s)),
            )
    return objects


def build(
    name: str,
    seed: int,
    duration_s: float | None = None,
    extra_objects: Callable[[SimContext], list] | None = None,
) -> tuple[str, SimOutput]:
    """The site TOML and every feed (sorted by receive time), truth and truth tracks.

    ``extra_objects(ctx)`` adds objects to the scene (``--trajectories``: real tracks).
    """
    # Imported here: the GNSS and power models are heavy and not needed to list scenarios.
    from drivers.simulated.gnss import simulate_gnss
    from drivers.simulated.power import simulate_power

    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    spec = SCENARIOS[name]
    duration = float(spec.duration_s if duration_s is None else duration_s)
    if not duration >= spec.min_duration_s:
        raise ValueError(
            f"scenario {name} needs at least {spec.min_duration_s:g} s, not {duration:g} s"
        )
    ctx = SimContext(sim_site(), SIM_T0_NS, duration, int(seed))
    events = spec.events(ctx, ctx.rng(f"scenario:{name}"))
    objects = list(events.objects) + background(ctx, birds=spec.background_birds)
    if extra_objects is not None:
        objects += extra_objects(ctx)
    sensors = ctx.site.sensors

    def of(kind: str) -> list:
        return [s for s in sensors if s.kind == kind]

    out = SimOutput()
    out.extend(simulate_radar(ctx, of("radar"), objects))
    out.extend(simulate_rf(ctx, of("rf"), objects, events.jamming, events.power))
    out.extend(simulate_gnss(ctx, of("gnss"), events.jamming, events.spoofing))
    out.extend(simulate_power(ctx, of("power"), of("switchgear"), events.power))
    out.feeds.sort(key=lambda r: r.t_rx_ns)
    out.truth.sort(key=lambda r: (r.t_start_ns, r.object_id))
    out.truth_tracks.sort(key=lambda r: (r.t_ns, r.object_id))
    return SIM_SITE_TOML, out
