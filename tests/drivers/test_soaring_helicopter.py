"""The soaring-bird and helicopter models and their scenarios."""

from __future__ import annotations

import json

import numpy as np
import pytest

from drivers.simulated.base import SimContext
from drivers.simulated.helicopters import helicopter
from drivers.simulated.objects import AIRCRAFT, BIRD, DT_S, distance_to_polygon, zones_enu
from drivers.simulated.scenarios import SCENARIOS, build
from drivers.simulated.site import SIM_T0_NS, sim_site
from drivers.simulated.soaring_birds import soaring_kettle

SEEDS = range(1, 9)


def ctx_of(seed: int, duration_s: float = 300.0) -> SimContext:
    return SimContext(sim_site(), SIM_T0_NS, duration_s, seed)


def events(name: str, seed: int, duration_s: float = 300.0):
    ctx = ctx_of(seed, duration_s)
    return ctx, SCENARIOS[name].events(ctx, ctx.rng(f"scenario:{name}"))


def turn_rate_dps(vel: np.ndarray) -> np.ndarray:
    heading = np.unwrap(np.arctan2(vel[:, 0], vel[:, 1]))
    return np.degrees(np.abs(np.diff(heading))) / DT_S


@pytest.mark.parametrize("seed", SEEDS)
def test_soaring_birds_circle_climb_glide_and_do_not_flap(seed):
    ctx, ev = events("soaring_birds", seed)
    zone = zones_enu(ctx)[0]
    birds = ev.objects
    assert birds and all(o.cls == BIRD for o in birds)
    near = False
    for o in birds:
        assert o.flap_db == 0.0  # soaring: no wing-beat line
        air_and_wind = np.hypot(o.vel[:, 0], o.vel[:, 1])
        assert np.median(air_and_wind) < 8.0 + 15.0 + 1.0  # airspeed 8-15 plus wind <= 8
        assert o.pos[:, 2].min() >= 30.0 and o.pos[:, 2].max() <= 1500.0
        assert o.rcs_dbsm.min() >= -32.0 and o.rcs_dbsm.max() <= -5.0
        assert np.mean(turn_rate_dps(o.vel) > 6.0) > 0.2  # thermalling
        climb = o.vel[:, 2]
        assert climb.max() > 0.4 and climb.max() < 3.7
        near |= bool(
            distance_to_polygon(o.pos[:, 0], o.pos[:, 1], zone.polygon).min()
            <= 0.6 * zone.alert_radius_m + 1
        )
    assert near  # the first kettle always crosses the alert radius


def test_soaring_circles_have_the_radius_of_a_thermalling_bird():
    ctx = ctx_of(3, 400.0)
    rng = np.random.default_rng(5)
    (bird,) = soaring_kettle(ctx, rng, "k", n_birds=1, wind_mps=np.zeros(2))
    rate = np.radians(turn_rate_dps(bird.vel))
    speed = np.hypot(bird.vel[1:, 0], bird.vel[1:, 1])
    circling = rate > np.radians(4.0)
    radius = speed[circling] / rate[circling]
    assert circling.mean() > 0.2
    assert 15.0 < np.median(radius) < 65.0


def test_soaring_variants_differ_by_seed():
    shapes = set()
    for seed in SEEDS:
        _, ev = events("soaring_birds", seed)
        heights = tuple(sorted({round(o.pos[:, 2].mean(), -2) for o in ev.objects}))
        shapes.add((len(ev.objects), heights))
    assert len(shapes) >= 6


@pytest.mark.parametrize("seed", SEEDS)
def test_helicopters_are_slow_large_and_within_the_alert_radius(seed):
    ctx, ev = events("helicopter", seed)
    zone = zones_enu(ctx)[0]
    assert ev.objects and all(o.cls == AIRCRAFT for o in ev.objects)
    for o in ev.objects:
        assert o.emitter is None and o.remote_id is None
        speed = np.hypot(o.vel[:, 0], o.vel[:, 1])
        assert speed.max() <= 30.0 + 1e-6
        assert 3.0 <= np.median(o.rcs_dbsm) <= 17.0
        d = distance_to_polygon(o.pos[:, 0], o.pos[:, 1], zone.polygon)
        assert d.min() < zone.alert_radius_m


def test_helicopter_behaviours():
    ctx = ctx_of(2, 600.0)
    hover = helicopter(ctx, np.random.default_rng(1), "h", behaviour="hover", t_start_s=0.0)
    speed = np.hypot(hover.vel[:, 0], hover.vel[:, 1])
    assert np.mean(speed < 0.5) * (hover.t_last - hover.t_first) >= 55.0  # a minute of hover
    orbit = helicopter(ctx, np.random.default_rng(1), "o", behaviour="orbit", rotor_modulation=True)
    assert np.mean(turn_rate_dps(orbit.vel) > 1.0) > 0.15 and 8.0 <= orbit.flap_hz <= 35.0
    with pytest.raises(ValueError, match="behaviour"):
        helicopter(ctx, np.random.default_rng(1), "x", behaviour="loop")


@pytest.mark.parametrize("name", ["soaring_birds", "helicopter"])
def test_new_scenarios_build_with_must_not_alert_truth(name):
    _, out = build(name, 4, 120.0)
    kinds = {r.kind for r in out.truth}
    assert not any(r.must_alert for r in out.truth)
    assert (BIRD if name == "soaring_birds" else AIRCRAFT) in kinds
    ids = {r.object_id for r in out.truth_tracks}
    assert any(i.startswith(name.split("_")[0]) for i in ids)
    # The radar sees them: plots with a class-like RCS.
    rcs = [
        p["rcs_dbsm"]
        for r in out.feeds
        if r.channel.endswith("/plots")
        for p in json.loads(r.payload)["plots"]
    ]
    assert len(rcs) > 120
    if name == "helicopter":
        assert max(rcs) > 3.0
