"""Helicopters near the site: slow flight, hovers and orbits (police, medical, survey, media).

A helicopter within a few kilometres of a site flies slowly (0-30 m/s) and
often hovers, so its kinematics overlap a drone's; what tells it apart is its
size: a large, steady radar cross-section of +5 to +15 dBsm (a light
helicopter is some 1-30 m² depending on aspect; cf. Skolnik, *Radar
Handbook*, 3rd ed., §14 on rotorcraft), and it carries no drone control link.
Blade flash and rotor hub returns modulate the RCS at the blade-passing rate
(rotor 4-7 rev/s × 2-5 blades); it is optional per helicopter.

Helicopters are flown with the same kinematic autopilot as drones
(``objects.fly_legs``) with helicopter limits: gentler acceleration and
turn rates, larger climb rate.

Behaviours (one per helicopter, drawn per seed): ``hover`` (come in, hover a
few minutes near the site, leave), ``survey`` (slow back-and-forth legs with
short hovers, as a line or site inspection), ``orbit`` (slow circles round a
point near the site, as police or media do).
"""

from __future__ import annotations

import numpy as np

from drivers.simulated.base import SimContext
from drivers.simulated.objects import (
    AIRCRAFT,
    Leg,
    MovingObject,
    MultirotorLimits,
    _aspect_rcs,
    _ou,
    _unit,
    _zone,
    fly_legs,
)

HELICOPTER_LIMITS = MultirotorLimits(
    accel_mps2=1.5,
    bank_max_deg=25.0,
    turn_rate_max_dps=15.0,
    climb_mps=5.0,
    sink_mps=4.0,
    vert_accel_mps2=1.0,
)
BEHAVIOURS = ("hover", "survey", "orbit")


def helicopter(
    ctx: SimContext,
    rng: np.random.Generator,
    object_id: str,
    *,
    behaviour: str | None = None,
    zone: str | None = "hall-a",
    t_start_s: float | None = None,
    rotor_modulation: bool | None = None,
) -> MovingObject:
    """One helicopter doing ``behaviour`` within the zone's alert radius."""
    z = _zone(ctx, zone)
    behaviour = str(rng.choice(BEHAVIOURS)) if behaviour is None else behaviour
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown helicopter behaviour {behaviour!r}; one of {BEHAVIOURS}")
    d = ctx.duration_s
    t0 = float(rng.uniform(0.0, 0.15 * d)) if t_start_s is None else float(t_start_s)
    bearing = float(rng.uniform(0.0, 360.0))
    alt = float(rng.uniform(60.0, 300.0))
    cruise = float(rng.uniform(18.0, 30.0))
    centre = z.centroid
    # Where the work happens: inside the alert radius, not necessarily over the zone.
    work_r = float(rng.uniform(0.15, 0.8)) * z.alert_radius_m
    work = centre + work_r * _unit(float(rng.uniform(0.0, 360.0)))
    start_r = float(rng.uniform(2500.0, 4000.0))
    start = work + start_r * _unit(bearing)
    legs: list[Leg] = []
    if behaviour == "hover":
        legs.append(Leg("goto", (work[0], work[1], alt), cruise, stop=True))
        legs.append(Leg("hover", duration_s=float(rng.uniform(60.0, 300.0))))
        if rng.random() < 0.5:
            # Reposition slowly and hover again (a media or police helicopter).
            p2 = work + float(rng.uniform(100.0, 400.0)) * _unit(float(rng.uniform(0, 360)))
            legs.append(Leg("goto", (p2[0], p2[1], alt), float(rng.uniform(3.0, 10.0)), stop=True))
            legs.append(Leg("hover", duration_s=float(rng.uniform(30.0, 150.0))))
    elif behaviour == "survey":
        slow = float(rng.uniform(5.0, 20.0))
        heading = float(rng.uniform(0.0, 360.0))
        leg_len = float(rng.uniform(400.0, 1200.0))
        legs.append(Leg("goto", (work[0], work[1], alt), cruise))
        p = work.copy()
        for i in range(int(rng.integers(3, 7))):
            p = p + leg_len * _unit(heading + 180.0 * (i % 2)) + 80.0 * _unit(heading + 90.0)
            legs.append(Leg("goto", (p[0], p[1], alt), slow, stop=bool(rng.random() < 0.3)))
            if legs[-1].stop:
                legs.append(Leg("hover", duration_s=float(rng.uniform(10.0, 60.0))))
    else:
        radius = float(rng.uniform(300.0, 700.0))
        speed = float(rng.uniform(12.0, 30.0))
        sense = 1.0 if rng.random() < 0.5 else -1.0
        legs.append(Leg("goto", (*(work + radius * _unit(bearing)), alt), cruise))
        for i in range(1, 24 * int(rng.integers(2, 5)) + 1):
            q = work + radius * _unit(bearing + sense * 15.0 * i)
            legs.append(Leg("goto", (q[0], q[1], alt), speed))
    away = centre + 6000.0 * _unit(bearing + float(rng.uniform(-90.0, 90.0)))
    legs.append(Leg("goto", (away[0], away[1], alt), cruise))
    t, pos, vel = fly_legs(
        t0, d, (start[0], start[1], alt), (bearing + 180.0) % 360.0, cruise, legs,
        HELICOPTER_LIMITS,
    )  # fmt: skip
    base = float(rng.uniform(5.0, 15.0))
    rcs = _aspect_rcs(vel, base, 2.0, float(rng.uniform(0, 2 * np.pi))) + _ou(rng, len(t), 0.5, 5.0)
    rotor = bool(rng.random() < 0.5) if rotor_modulation is None else rotor_modulation
    blade_hz = float(rng.uniform(4.0, 7.0)) * int(rng.integers(2, 6))
    return MovingObject(
        object_id,
        AIRCRAFT,
        t,
        pos,
        vel,
        rcs,
        flap_hz=blade_hz if rotor else 0.0,
        flap_db=float(rng.uniform(1.0, 3.0)) if rotor else 0.0,
        flap_phase=float(rng.uniform(0, 2 * np.pi)),
        flapping=np.ones(len(t)) if rotor else None,
    )
