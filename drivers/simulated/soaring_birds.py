"""Large soaring birds (vultures, storks, eagles, buzzards): thermalling and gliding.

Soaring birds do not flap between thermals: they circle in rising air, then
glide straight to the next thermal, losing height, and the wind drifts both
(circles become trochoids over the ground). Figures from GPS studies of
soaring flight (Pennycuick, *Modelling the Flying Bird*, 2008, ch. 7;
Harel et al., "Decision-making by a soaring bird", J. Exp. Biol. 219, 2016;
Shamoun-Baranes et al., *Ibis* 145, 2003, on white storks):

- circling radius 20-60 m at 8-12 m/s airspeed (bank 15-35°), climbing
  0.5-3 m/s while the thermal lasts or until cloud base;
- inter-thermal glides at 10-15 m/s airspeed, sinking 0.6-1.8 m/s;
- heights from a few tens of metres to about 1,500 m above ground;
- birds share thermals ("kettles") of a few to a dozen birds.

Radar cross-section of a large bird: -25 to -10 dBsm mean (Vaughn 1985;
Melnikov et al., *IEEE TGRS* 2015), varying with aspect, with a slow body
fluctuation and **no wing-beat modulation while soaring**.

Each bird is flown kinematically at ``DT_S``: heading and airspeed with
first-order lags (a bird rolls into and out of a circle in a second or two),
vertical speed lagged likewise, plus the wind. The kettle shares the
schedule of thermals and glide courses; each bird has its own radius, speed,
climb, turn direction offset and RCS.
"""

from __future__ import annotations

import math

import numpy as np

from drivers.simulated.base import SimContext
from drivers.simulated.objects import (
    BIRD,
    DT_S,
    MovingObject,
    _aspect_rcs,
    _grid,
    _keep_outside,
    _ou,
    _unit,
    _zone,
    distance_to_polygon,
    zones_enu,
)

ALT_MIN_M, ALT_MAX_M = 30.0, 1500.0


def _schedule(
    rng: np.random.Generator, t0: float, t1: float, course_deg: float, thermal_s: tuple
) -> list[tuple[str, float, float, float]]:
    """Alternating (kind, t_start, t_end, value): thermal (value = climb m/s) or glide (course)."""
    out = []
    t = t0
    in_thermal = bool(rng.random() < 0.6)
    for _ in range(1000):
        if t >= t1:
            break
        if in_thermal:
            dur = float(rng.uniform(*thermal_s))
            out.append(("thermal", t, t + dur, float(rng.uniform(0.5, 3.0))))
        else:
            dur = float(rng.uniform(40.0, 150.0))
            out.append(("glide", t, t + dur, course_deg + float(rng.normal(0.0, 25.0))))
        t += dur
        in_thermal = not in_thermal
    return out


def _fly_bird(
    rng: np.random.Generator,
    t: np.ndarray,
    schedule: list[tuple[str, float, float, float]],
    start_xyz: np.ndarray,
    heading_deg: float,
    wind: np.ndarray,
    turn_sign: float,
    ceiling_m: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Integrate one bird through the kettle's schedule; returns pos, vel (n, 3)."""
    n = len(t)
    radius = float(rng.uniform(20.0, 60.0))
    v_circle = float(rng.uniform(8.0, 12.0))
    v_glide = float(rng.uniform(10.0, 15.0))
    climb_scale = float(rng.uniform(0.8, 1.2))
    sink = float(rng.uniform(0.6, 1.8))
    v_noise = _ou(rng, n, 0.4, 5.0)
    course_noise = np.radians(_ou(rng, n, 6.0, 15.0))
    pos = np.empty((n, 3))
    vel = np.empty((n, 3))
    x, y, z = (float(c) for c in start_xyz)
    psi = math.radians(heading_deg)
    speed = v_glide
    omega = 0.0
    vz = 0.0
    seg_i = 0
    thermal_done = False
    for k in range(n):
        tk = float(t[k])
        while seg_i + 1 < len(schedule) and tk >= schedule[seg_i][2]:
            if schedule[seg_i][0] == "thermal" and not thermal_done:
                break  # keep circling until the heading points along the next glide
            seg_i += 1
            thermal_done = False
        kind, _, t_end, value = schedule[seg_i]
        if kind == "thermal":
            v_cmd = v_circle
            omega_cmd = turn_sign * v_circle / radius
            vz_cmd = value * climb_scale
            if tk >= t_end and seg_i + 1 < len(schedule):
                nxt = math.radians(schedule[seg_i + 1][3])
                err = (nxt - psi + math.pi) % (2.0 * math.pi) - math.pi
                if abs(err) < 0.3:
                    thermal_done = True
            if z >= ceiling_m:
                vz_cmd = 0.0  # cloud base: circle on without climbing until it leaves
        else:
            v_cmd = v_glide
            course = math.radians(value) + course_noise[k]
            err = (course - psi + math.pi) % (2.0 * math.pi) - math.pi
            omega_cmd = max(-0.15, min(0.15, 0.3 * err))
            vz_cmd = -sink
        if z <= ALT_MIN_M + 20.0:
            vz_cmd = max(vz_cmd, 0.3)  # weak lift close to the ground: a bird does not land here
        # First-order lags: roll-in over ~1.5 s, speed and climb over a few seconds.
        omega += (omega_cmd - omega) * min(1.0, DT_S / 1.5)
        speed += (v_cmd + v_noise[k] - speed) * min(1.0, DT_S / 4.0)
        vz += (vz_cmd - vz) * min(1.0, DT_S / 3.0)
        vx = speed * math.sin(psi) + wind[0]
        vy = speed * math.cos(psi) + wind[1]
        pos[k] = (x, y, z)
        vel[k] = (vx, vy, vz)
        psi += omega * DT_S
        x += vx * DT_S
        y += vy * DT_S
        z = min(ALT_MAX_M, max(ALT_MIN_M, z + vz * DT_S))
    return pos, vel


def soaring_kettle(
    ctx: SimContext,
    rng: np.random.Generator,
    group_id: str,
    *,
    n_birds: int | None = None,
    zone: str | None = "hall-a",
    crosses: bool = True,
    t_closest_s: float | None = None,
    alt_band_m: tuple[float, float] | None = None,
    wind_mps: np.ndarray | None = None,
    rcs_mean_dbsm: float | None = None,
) -> list[MovingObject]:
    """A kettle of large soaring birds drifting past the site.

    ``crosses``: the group's position at ``t_closest_s`` falls within 60 % of
    the zone's alert radius; otherwise every bird stays beyond the radius.
    """
    z = _zone(ctx, zone)
    zones = zones_enu(ctx)
    n_birds = int(rng.choice([1, 1, 2, 3, 5, 8, 12])) if n_birds is None else int(n_birds)
    if alt_band_m is None:
        lo = float(rng.choice([60.0, 150.0, 400.0, 800.0]))
        alt_band_m = (lo, min(ALT_MAX_M, lo + float(rng.uniform(200.0, 700.0))))
    if wind_mps is None:
        w = float(rng.uniform(0.0, 8.0))
        wind_mps = w * _unit(float(rng.uniform(0.0, 360.0)))
    wind = np.asarray(wind_mps, dtype=np.float64)
    course = float(rng.uniform(0.0, 360.0))
    t = _grid(0.0, ctx.duration_s)
    t_ca = (
        float(rng.uniform(0.2, 0.8) * ctx.duration_s) if t_closest_s is None else float(t_closest_s)
    )
    thermal_s = (60.0, 240.0) if rng.random() < 0.7 else (200.0, 600.0)  # long climbs: strong lift
    schedule = _schedule(rng, 0.0, ctx.duration_s + 1.0, course, thermal_s)
    z0 = float(rng.uniform(*alt_band_m))
    ceiling = alt_band_m[1]
    turn = 1.0 if rng.random() < 0.5 else -1.0
    species_rcs = float(rng.uniform(-25.0, -10.0)) if rcs_mean_dbsm is None else rcs_mean_dbsm
    spread = float(rng.uniform(15.0, 80.0))
    paths = []
    for _ in range(n_birds):
        start = np.array(
            [rng.normal(0.0, spread), rng.normal(0.0, spread), z0 + rng.normal(0.0, 0.3 * spread)]
        )
        start[2] = min(ceiling, max(ALT_MIN_M, start[2]))
        # Birds of one kettle mostly turn the same way; a few do not.
        sign = turn if rng.random() < 0.85 else -turn
        paths.append(_fly_bird(rng, t, schedule, start, course, wind, sign, ceiling))
    # Place the kettle: its mean position at t_ca goes to the anchor point.
    i_ca = int(np.clip(round(t_ca / DT_S), 0, len(t) - 1))
    mean_ca = np.mean([p[i_ca, :2] for p, _ in paths], axis=0)
    if crosses:
        offset = float(rng.uniform(0.0, 0.6)) * z.alert_radius_m
    else:
        offset = float(rng.uniform(z.alert_radius_m + z.circumradius_m + 700.0, 4000.0))
    anchor = z.centroid + offset * _unit(float(rng.uniform(0.0, 360.0)))
    shift = anchor - mean_ca
    stacked = np.concatenate([p for p, _ in paths])
    stacked[:, :2] += shift
    if not crosses:
        moved = _keep_outside(zones, stacked, margin_m=300.0)
        shift = shift + (moved[0, :2] - stacked[0, :2])
    elif z.alert_radius_m > 0:
        # A kettle "crossing" must come within the radius at some time, whatever the wind.
        centre_track = np.mean([p[:, :2] for p, _ in paths], axis=0) + shift
        d = distance_to_polygon(centre_track[:, 0], centre_track[:, 1], z.polygon)
        i = int(np.argmin(d))
        excess = d[i] - 0.6 * z.alert_radius_m
        if excess > 0:
            direction = z.centroid - centre_track[i]
            shift = shift + excess * direction / (np.hypot(*direction) or 1.0)
    birds = []
    for j, (pos, vel) in enumerate(paths):
        pos = pos.copy()
        pos[:, :2] += shift
        rcs = _aspect_rcs(
            vel, species_rcs + float(rng.uniform(-2.0, 2.0)), 3.0, float(rng.uniform(0, 6.3))
        )
        # Body fluctuation (posture, feathers): slow, no wing-beat line.
        rcs = np.clip(rcs + _ou(rng, len(t), 1.5, 3.0), -32.0, -5.0)
        birds.append(MovingObject(f"{group_id}-{j + 1}", BIRD, t.copy(), pos, vel, rcs))
    return birds
