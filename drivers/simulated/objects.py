"""What the simulated radar and RF sensors see: drones, birds, aircraft and clutter.

Moving objects are flown once, at ``DT_S`` (10 Hz), in the site's ENU frame
(x east, y north, z up, metres; z = 0 is ground level at the site origin, the
terrain is taken as flat) and sampled on demand by linear interpolation.

- Drones (multirotors) follow waypoint legs with a kinematic autopilot:
  coordinated turns (turn rate g·tan(bank)/v, capped), bounded acceleration and
  climb rate, deceleration into hovers, and direct translation near a hover
  point as a multirotor does.
- Birds fly as flocks: the flock's heading and speed are Ornstein-Uhlenbeck
  processes about a mean course (meandering), each bird keeps a slowly
  wandering offset from the flock centre, and flapping alternates with glides.
  While flapping, a bird's RCS is modulated at its wing-beat rate
  (cf. Vaughn, "Birds and insects as radar targets", Proc. IEEE 73(2), 1985).
- Aircraft fly straight lines with occasional slow rate-one-half turns.
- Clutter is not a moving object: fixed ground returns (buildings, masts)
  that survive the radar's clutter filter now and then, and wind-blown
  vegetation with small random Doppler.

Builders take the scenario's random generator and vary start times, bearings,
speeds and behaviours with it. ``object_truth`` turns objects into truth rows
(contract §3) from the zone geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from drivers.simulated.base import SimContext, TruthRow

DT_S = 0.1  # trajectory sample interval
G_MPS2 = 9.80665
LEG_TIMEOUT_S = 1800.0  # an autopilot leg that cannot capture its waypoint gives up

# Class names as they appear in truth_tracks.class.
DRONE, BIRD, AIRCRAFT = "drone", "bird", "aircraft"


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class RfEmitter:
    """A drone's control/video link as an RF sensor sees it."""

    protocol: str  # "ocusync" | "elrs" | "wifi"
    freq_hz: float  # channel centre; for hopping links the centre of the hop span
    bw_hz: float
    eirp_dbm: float
    hop_span_hz: float = 0.0  # full width of the hopping span (0: fixed channel)


@dataclass(frozen=True, slots=True)
class RemoteId:
    """Remote ID / DroneID broadcast: serial number and where the pilot stands."""

    uas_id: str
    operator_xyz: tuple[float, float, float]  # ENU metres
    range_m: float  # how far the broadcast is received


@dataclass(eq=False)
class MovingObject:
    """A sampled trajectory: uniform grid ``t_s`` (scenario seconds) from ``t_s[0]``.

    ``rcs_dbsm`` is the slowly varying mean RCS (aspect); birds add a flapping
    term ``flap_db * flapping * sin(2π flap_hz t + flap_phase)`` that is
    evaluated analytically because wing beats are faster than the grid.
    """

    object_id: str
    cls: str
    t_s: np.ndarray
    pos: np.ndarray  # (n, 3) ENU metres
    vel: np.ndarray  # (n, 3) m/s
    rcs_dbsm: np.ndarray  # (n,)
    flap_hz: float = 0.0
    flap_db: float = 0.0
    flap_phase: float = 0.0
    flapping: np.ndarray | None = None  # (n,) 1 while flapping, 0 while gliding
    emitter: RfEmitter | None = None
    remote_id: RemoteId | None = None

    @property
    def t_first(self) -> float:
        return float(self.t_s[0])

    @property
    def t_last(self) -> float:
        return float(self.t_s[-1])

    def alive(self, t_s: np.ndarray) -> np.ndarray:
        t_s = np.asarray(t_s, dtype=np.float64)
        return (t_s >= self.t_first) & (t_s <= self.t_last)

    def _index(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.t_s)
        if n == 1:
            z = np.zeros(np.shape(t_s), dtype=np.int64)
            return z, np.zeros(np.shape(t_s))
        u = (np.asarray(t_s, dtype=np.float64) - self.t_first) / DT_S
        i0 = np.clip(np.floor(u).astype(np.int64), 0, n - 2)
        frac = np.clip(u - i0, 0.0, 1.0)
        return i0, frac

    def state(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position (k, 3), velocity (k, 3) and RCS dBsm (k,) at times ``t_s``.

        Times outside the object's life are clamped to its ends; use ``alive``.
        """
        t_s = np.asarray(t_s, dtype=np.float64)
        i0, frac = self._index(t_s)
        i1 = np.minimum(i0 + 1, len(self.t_s) - 1)
        f = frac[:, None]
        pos = self.pos[i0] * (1.0 - f) + self.pos[i1] * f
        vel = self.vel[i0] * (1.0 - f) + self.vel[i1] * f
        rcs = self.rcs_dbsm[i0] * (1.0 - frac) + self.rcs_dbsm[i1] * frac
        if self.flap_db > 0.0 and self.flapping is not None:
            flapping = self.flapping[i0] * (1.0 - frac) + self.flapping[i1] * frac
            rcs = rcs + self.flap_db * flapping * np.sin(
                2.0 * np.pi * self.flap_hz * t_s + self.flap_phase
            )
        return pos, vel, rcs

    @classmethod
    def linear(
        cls,
        object_id: str,
        obj_class: str,
        start_xyz: tuple[float, float, float],
        vel_xyz: tuple[float, float, float],
        t_start_s: float,
        t_end_s: float,
        rcs_dbsm: float,
        emitter: RfEmitter | None = None,
        remote_id: RemoteId | None = None,
    ) -> MovingObject:
        """Constant-velocity motion (a hover when the velocity is zero)."""
        t = _grid(t_start_s, t_end_s)
        v = np.asarray(vel_xyz, dtype=np.float64)
        pos = np.asarray(start_xyz, dtype=np.float64) + (t - t_start_s)[:, None] * v
        vel = np.broadcast_to(v, pos.shape).copy()
        return cls(
            object_id,
            obj_class,
            t,
            pos,
            vel,
            np.full(len(t), float(rcs_dbsm)),
            emitter=emitter,
            remote_id=remote_id,
        )


@dataclass(frozen=True, slots=True)
class ClutterSource:
    """A fixed radar clutter source (one truth row of kind ``clutter``)."""

    object_id: str
    kind: str  # "ground" | "vegetation"
    xyz: tuple[float, float, float]
    rcs_dbsm: float  # mean residual RCS after the radar's clutter filter
    p_plot: float  # chance per scan that the residue crosses the clutter map
    spread_m: float  # scatter of plot positions about the point
    doppler_sigma_mps: float  # radial velocity spread (wind-blown leaves)


# --------------------------------------------------------------------------- zones


@dataclass(frozen=True, slots=True)
class ZoneEnu:
    name: str
    polygon: np.ndarray  # (k, 2) x, y metres
    alert_radius_m: float

    @property
    def centroid(self) -> np.ndarray:
        return self.polygon.mean(axis=0)

    @property
    def circumradius_m(self) -> float:
        return float(np.max(np.hypot(*(self.polygon - self.centroid).T)))


def zones_enu(ctx: SimContext) -> list[ZoneEnu]:
    """The site's zones as ENU polygons (the zone's ground outline)."""
    out = []
    for z in ctx.site.zones:
        lat = np.array([p[0] for p in z.polygon])
        lon = np.array([p[1] for p in z.polygon])
        x, y, _ = ctx.frame.to_enu(lat, lon, np.full(len(lat), ctx.site.site.alt_m))
        out.append(ZoneEnu(z.name, np.column_stack([x, y]), z.alert_radius_m))
    return out


def distance_to_polygon(x, y, polygon: np.ndarray) -> np.ndarray:
    """Horizontal distance (m) from points to a polygon's area: 0 inside, else to the nearest edge."""
    px = np.atleast_1d(np.asarray(x, dtype=np.float64))
    py = np.atleast_1d(np.asarray(y, dtype=np.float64))
    poly = np.asarray(polygon, dtype=np.float64)
    best = np.full(px.shape, np.inf)
    inside = np.zeros(px.shape, dtype=bool)
    k = len(poly)
    for i in range(k):
        ax, ay = poly[i]
        bx, by = poly[(i + 1) % k]
        ex, ey = bx - ax, by - ay
        len2 = ex * ex + ey * ey
        u = np.clip(((px - ax) * ex + (py - ay) * ey) / len2, 0.0, 1.0) if len2 > 0 else 0.0
        best = np.minimum(best, np.hypot(px - (ax + u * ex), py - (ay + u * ey)))
        # Even-odd rule: count edges that straddle the horizontal through the point.
        straddle = (ay > py) != (by > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = ax + (py - ay) * ex / (by - ay)
        inside ^= straddle & (px < x_cross)
    return np.where(inside, 0.0, best)


def zone_distances(zones: list[ZoneEnu], pos: np.ndarray) -> np.ndarray:
    """(n_zones, n_points) horizontal distances of ENU points to each zone."""
    if not zones:
        return np.full((0, len(pos)), np.inf)
    return np.stack([distance_to_polygon(pos[:, 0], pos[:, 1], z.polygon) for z in zones])


def _zone(ctx: SimContext, name: str | None) -> ZoneEnu:
    zones = zones_enu(ctx)
    if not zones:
        # A site without zones: protect a notional 100 m square at the origin.
        sq = np.array([[-50.0, -50.0], [-50.0, 50.0], [50.0, 50.0], [50.0, -50.0]])
        return ZoneEnu("site", sq, 1500.0)
    for z in zones:
        if z.name == name:
            return z
    return zones[0]


# --------------------------------------------------------------------------- drone autopilot


@dataclass(frozen=True, slots=True)
class Leg:
    """One autopilot leg: ``goto`` a waypoint at a speed, or ``hover`` for a while."""

    kind: str  # "goto" | "hover"
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    speed_mps: float = 0.0
    duration_s: float = 0.0
    stop: bool = False  # goto only: come to rest at the waypoint (a hover follows)


@dataclass(frozen=True, slots=True)
class MultirotorLimits:
    accel_mps2: float = 2.5
    bank_max_deg: float = 30.0
    turn_rate_max_dps: float = 45.0
    climb_mps: float = 4.0
    sink_mps: float = 3.0
    vert_accel_mps2: float = 2.0


def fly_legs(
    t_start_s: float,
    t_stop_s: float,
    start_xyz: tuple[float, float, float],
    heading_deg: float,
    speed_mps: float,
    legs: list[Leg],
    limits: MultirotorLimits = MultirotorLimits(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fly waypoint legs from a start state; returns (t_s, pos, vel) at ``DT_S``.

    The flight ends when the legs are done (the object leaves the scene) or at
    ``t_stop_s``. Step count is bounded by the time span.
    """
    n_max = max(2, math.ceil((t_stop_s - t_start_s) / DT_S) + 1)
    ts = np.empty(n_max)
    ps = np.empty((n_max, 3))
    vs = np.empty((n_max, 3))
    x, y, z = (float(c) for c in start_xyz)
    psi = math.radians(heading_deg)
    s = float(speed_mps)
    w = 0.0
    dt = DT_S
    turn_cap = math.radians(limits.turn_rate_max_dps)
    tan_bank = math.tan(math.radians(limits.bank_max_deg))
    leg_i, leg_t = 0, 0.0
    k = 0
    while k < n_max:
        ts[k] = t_start_s + k * dt
        vx, vy = s * math.sin(psi), s * math.cos(psi)
        ps[k] = (x, y, z)
        vs[k] = (vx, vy, w)
        if leg_i >= len(legs):
            k += 1
            break
        leg = legs[leg_i]
        leg_t += dt
        if leg.kind == "hover":
            # Brake to rest and hold the altitude it had.
            s = max(0.0, s - limits.accel_mps2 * dt)
            z_target = z
            if leg_t >= leg.duration_s:
                leg_i, leg_t = leg_i + 1, 0.0
        else:
            z_target = leg.target[2]
            dx, dy = leg.target[0] - x, leg.target[1] - y
            d = math.hypot(dx, dy)
            psi_d = math.atan2(dx, dy)
            err = (psi_d - psi + math.pi) % (2.0 * math.pi) - math.pi
            v_cmd = leg.speed_mps
            if leg.stop:
                # Brake to arrive at rest; a multirotor slides sideways onto the point.
                v_cmd = min(v_cmd, math.sqrt(2.0 * 0.7 * limits.accel_mps2 * d))
            if leg.stop and d < 15.0:
                psi = psi_d
            else:
                omega = min(turn_cap, G_MPS2 * tan_bank / max(s, 0.5))
                psi += max(-omega * dt, min(omega * dt, err))
                v_cmd *= max(0.3, math.cos(err)) if abs(err) > 0.5 else 1.0
            s += max(-limits.accel_mps2 * dt, min(limits.accel_mps2 * dt, v_cmd - s))
            # Passing waypoints are captured early so the turn onto the next leg is smooth.
            capture = 1.5 if leg.stop else max(10.0, 2.0 * s)
            if d < capture or leg_t > LEG_TIMEOUT_S:
                leg_i, leg_t = leg_i + 1, 0.0
        w_cmd = max(-limits.sink_mps, min(limits.climb_mps, 0.5 * (z_target - z)))
        w += max(-limits.vert_accel_mps2 * dt, min(limits.vert_accel_mps2 * dt, w_cmd - w))
        x += s * math.sin(psi) * dt
        y += s * math.cos(psi) * dt
        z = max(1.0, z + w * dt)
        k += 1
    return ts[:k].copy(), ps[:k].copy(), vs[:k].copy()


# --------------------------------------------------------------------------- helpers


def _grid(t_start_s: float, t_end_s: float) -> np.ndarray:
    n = max(2, math.floor((t_end_s - t_start_s) / DT_S + 1e-9) + 1)
    return t_start_s + DT_S * np.arange(n)


def _ou(rng: np.random.Generator, n: int, sigma: float, tau_s: float) -> np.ndarray:
    """Ornstein-Uhlenbeck samples at DT_S, stationary from the first sample."""
    a = math.exp(-DT_S / tau_s)
    b = sigma * math.sqrt(1.0 - a * a)
    x0 = rng.normal(0.0, sigma)
    drive = rng.standard_normal(n)
    drive[0] = 0.0
    return lfilter([b], [1.0, -a], drive) + x0 * a ** np.arange(n)


def _clip_to_scene(ctx: SimContext, t: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    keep = (t >= 0.0) & (t <= ctx.duration_s + 1e-9)
    if keep.sum() < 2:
        keep[: min(2, len(keep))] = True
    return (t[keep], *(a[keep] for a in arrays))


def _unit(bearing_deg: float) -> np.ndarray:
    b = math.radians(bearing_deg)
    return np.array([math.sin(b), math.cos(b)])


def _aspect_rcs(vel: np.ndarray, base_db: float, swing_db: float, phase: float) -> np.ndarray:
    """Mean RCS varying with the body's heading (aspect seen from the site)."""
    heading = np.arctan2(vel[:, 0], vel[:, 1])
    return base_db + swing_db * np.cos(2.0 * heading + phase)


_SERIAL_CHARS = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"


def _uas_serial(rng: np.random.Generator) -> str:
    """An ANSI/CTA-2063-A style serial: manufacturer code, length char, serial."""
    mfr = str(rng.choice(["1581F", "1596A", "1668B", "1748C"]))
    body = "".join(str(c) for c in rng.choice(list(_SERIAL_CHARS), size=10))
    return mfr + body


def random_emitter(rng: np.random.Generator, protocol: str | None = None) -> RfEmitter:
    """A typical drone link: DJI OcuSync, ExpressLRS or Wi-Fi, 2.4 or 5.8 GHz."""
    if protocol is None:
        protocol = str(rng.choice(["ocusync", "elrs", "wifi"], p=[0.6, 0.2, 0.2]))
    if protocol == "ocusync":
        # OcuSync picks a 10 MHz channel in the 2.4 or 5.8 GHz ISM band.
        if rng.random() < 0.7:
            centre = 2.4145e9 + 1.0e6 * int(rng.integers(0, 56))
        else:
            centre = 5.735e9 + 1.0e6 * int(rng.integers(0, 106))
        return RfEmitter("ocusync", centre, 1.0e7, float(rng.uniform(20, 26)))
    if protocol == "elrs":
        return RfEmitter("elrs", 2.440e9, 8.125e5, float(rng.uniform(12, 20)), hop_span_hz=8.0e7)
    ch = float(rng.choice([2.412e9, 2.437e9, 2.462e9, 5.745e9, 5.785e9, 5.825e9]))
    return RfEmitter("wifi", ch, 2.0e7, float(rng.uniform(15, 20)))


def _remote_id(
    rng: np.random.Generator, start_xy: np.ndarray, p_broadcast: float
) -> RemoteId | None:
    if rng.random() >= p_broadcast:
        return None
    off = rng.uniform(50, 400) * _unit(rng.uniform(0, 360))
    return RemoteId(
        _uas_serial(rng),
        (float(start_xy[0] + off[0]), float(start_xy[1] + off[1]), 1.5),
        float(rng.uniform(1000, 2000)),
    )


def _point_in_zone(rng: np.random.Generator, zone: ZoneEnu) -> np.ndarray:
    lo, hi = zone.polygon.min(axis=0), zone.polygon.max(axis=0)
    for _ in range(200):
        p = rng.uniform(lo, hi)
        # Keep a margin from the edges so "inside" is unambiguous.
        if distance_to_polygon(p[0], p[1], zone.polygon)[0] == 0.0:
            q = zone.centroid + 0.6 * (p - zone.centroid)
            return q
    return zone.centroid.copy()


def _drone(
    object_id: str,
    t: np.ndarray,
    pos: np.ndarray,
    vel: np.ndarray,
    rng: np.random.Generator,
    emitter: RfEmitter | None,
    remote_id: RemoteId | None,
) -> MovingObject:
    base = float(rng.uniform(-19.0, -11.0))
    rcs = _aspect_rcs(vel, base, 1.0, float(rng.uniform(0, 2 * np.pi)))
    rcs = rcs + _ou(rng, len(t), 0.7, 3.0)
    return MovingObject(object_id, DRONE, t, pos, vel, rcs, emitter=emitter, remote_id=remote_id)


# --------------------------------------------------------------------------- drone builders


def approaching_drone(
    ctx: SimContext,
    rng: np.random.Generator,
    object_id: str,
    *,
    zone: str | None = "hall-a",
    t_start_s: float | None = None,
    arrive_by_s: float | None = None,
    bearing_deg: float | None = None,
    start_range_m: float | None = None,
    enters: bool | None = None,
    emitter: bool | RfEmitter | None = None,
    p_remote_id: float = 0.5,
    target_offset_m: tuple[float, float] = (0.0, 0.0),
) -> MovingObject:
    """A drone that flies in on a zone from 3-5 km out.

    It may dog-leg, pause in a hover, dash the last stretch, then either enter
    the zone (and hover over it) or stop short and hover; afterwards it may
    leave. ``arrive_by_s`` raises the cruise speed (up to 20 m/s) so that the
    approach fits in the scenario.
    """
    z = _zone(ctx, zone)
    t0 = float(rng.uniform(5.0, 30.0)) if t_start_s is None else float(t_start_s)
    bearing = float(rng.uniform(0.0, 360.0)) if bearing_deg is None else float(bearing_deg)
    enters = bool(rng.random() < 0.6) if enters is None else enters
    cruise = float(rng.uniform(8.0, 16.0))
    dist = float(rng.uniform(3000.0, 5000.0)) if start_range_m is None else float(start_range_m)
    pause_s = float(rng.uniform(5.0, 20.0)) if rng.random() < 0.3 else 0.0
    if arrive_by_s is not None:
        available = max(30.0, arrive_by_s - t0 - pause_s - 15.0)
        if start_range_m is None:
            dist = min(dist, max(3000.0, 18.0 * available))
        cruise = min(20.0, max(cruise, 1.1 * dist / available))
    u = _unit(bearing)
    centre = z.centroid
    start_xy = centre + dist * u
    alt = float(rng.uniform(40.0, 150.0))
    final_alt = float(rng.uniform(30.0, min(alt, 110.0)))
    if enters:
        goal_xy = _point_in_zone(rng, z) + np.asarray(target_offset_m)
    else:
        # Stop short: hover at some distance from the zone on the way in.
        stop_d = float(rng.uniform(150.0, 0.6 * z.alert_radius_m))
        edge = z.circumradius_m
        goal_xy = centre + (edge + stop_d) * u + np.asarray(target_offset_m)
    legs: list[Leg] = []
    # A dog-leg half way in: the pilot does not fly a ruler line.
    lateral = np.array([u[1], -u[0]]) * float(rng.uniform(-500.0, 500.0))
    mid = centre + 0.55 * dist * u + lateral
    legs.append(Leg("goto", (mid[0], mid[1], alt), cruise, stop=pause_s > 0))
    if pause_s > 0:
        legs.append(Leg("hover", duration_s=pause_s))
    dash = rng.random() < 0.3
    if dash:
        pre = goal_xy + 900.0 * u
        legs.append(Leg("goto", (pre[0], pre[1], alt), cruise))
        legs.append(
            Leg(
                "goto",
                (goal_xy[0], goal_xy[1], final_alt),
                float(rng.uniform(20.0, 25.0)),
                stop=True,
            )
        )
    else:
        legs.append(Leg("goto", (goal_xy[0], goal_xy[1], final_alt), cruise, stop=True))
    leaves = rng.random() < 0.5
    legs.append(Leg("hover", duration_s=float(rng.uniform(15.0, 60.0)) if leaves else 1e9))
    if leaves:
        away = centre + 5500.0 * _unit(bearing + float(rng.uniform(-60.0, 60.0)))
        legs.append(Leg("goto", (away[0], away[1], alt), cruise))
    heading = (bearing + 180.0) % 360.0
    t, pos, vel = fly_legs(
        t0, ctx.duration_s, (start_xy[0], start_xy[1], alt), heading, cruise, legs
    )
    em = _resolve_emitter(rng, emitter)
    rid = _remote_id(rng, start_xy, p_remote_id)
    return _drone(object_id, t, pos, vel, rng, em, rid)


def _resolve_emitter(
    rng: np.random.Generator, emitter: bool | RfEmitter | None
) -> RfEmitter | None:
    if isinstance(emitter, RfEmitter):
        return emitter
    if emitter is None:
        emitter = bool(rng.random() < 0.9)
    return random_emitter(rng) if emitter else None


def swarm(
    ctx: SimContext,
    rng: np.random.Generator,
    prefix: str = "swarm",
    *,
    n: int | None = None,
    zone: str | None = "hall-a",
    t_start_s: float | None = None,
    arrive_by_s: float | None = None,
) -> list[MovingObject]:
    """3-6 drones approaching together from spread bearings, with time offsets."""
    n = int(rng.integers(3, 7)) if n is None else n
    main = float(rng.uniform(0.0, 360.0))
    t0 = float(rng.uniform(5.0, 25.0)) if t_start_s is None else float(t_start_s)
    spread = float(rng.uniform(30.0, 120.0))
    dist = float(rng.uniform(3000.0, 4500.0))
    link = RfEmitter("elrs", 2.440e9, 8.125e5, float(rng.uniform(12, 20)), hop_span_hz=8.0e7)
    out = []
    for i in range(n):
        bearing = main + spread * (i / max(n - 1, 1) - 0.5) + float(rng.normal(0, 5))
        offset = (float(rng.normal(0, 40)), float(rng.normal(0, 40)))
        out.append(
            approaching_drone(
                ctx,
                rng,
                f"{prefix}-{i + 1}",
                zone=zone,
                t_start_s=t0 + float(rng.uniform(0.0, 20.0)),
                arrive_by_s=arrive_by_s,
                bearing_deg=bearing,
                start_range_m=dist + float(rng.uniform(-300, 300)),
                enters=bool(rng.random() < 0.8),
                emitter=link if rng.random() < 0.7 else False,
                p_remote_id=0.0,
                target_offset_m=offset,
            )
        )
    return out


def far_drone(
    ctx: SimContext,
    rng: np.random.Generator,
    object_id: str,
    *,
    zone: str | None = "hall-a",
    t_start_s: float | None = None,
    margin_m: float | None = None,
) -> MovingObject:
    """A drone working beyond every zone's alert radius (survey, hobby flight).

    It flies in towards the site, skirts it on an arc that keeps ``margin_m``
    outside the alert radius, hovers a while, and leaves. The path is checked
    against every zone and pushed outward if a corner came too close.
    """
    zones = zones_enu(ctx)
    z = _zone(ctx, zone)
    t0 = float(rng.uniform(5.0, 30.0)) if t_start_s is None else float(t_start_s)
    margin = float(rng.uniform(250.0, 1200.0)) if margin_m is None else float(margin_m)
    r_arc = z.circumradius_m + z.alert_radius_m + margin
    b0 = float(rng.uniform(0.0, 360.0))
    sweep = float(rng.uniform(40.0, 120.0)) * (1 if rng.random() < 0.5 else -1)
    speed = float(rng.uniform(8.0, 15.0))
    alt = float(rng.uniform(40.0, 140.0))
    centre = z.centroid
    start = centre + (r_arc + float(rng.uniform(800.0, 1500.0))) * _unit(b0)
    legs = [Leg("goto", (*(centre + r_arc * _unit(b0)), alt), speed)]
    steps = max(2, int(abs(sweep) / 8.0))
    for i in range(1, steps + 1):
        p = centre + r_arc * _unit(b0 + sweep * i / steps)
        legs.append(Leg("goto", (p[0], p[1], alt), speed, stop=i == steps))
    legs.append(Leg("hover", duration_s=float(rng.uniform(10.0, 40.0))))
    away = centre + (r_arc + 3000.0) * _unit(b0 + sweep)
    legs.append(Leg("goto", (away[0], away[1], alt), speed))
    t, pos, vel = fly_legs(
        t0, ctx.duration_s, (start[0], start[1], alt), (b0 + 180) % 360, speed, legs
    )
    pos = _keep_outside(zones, pos, margin_m=150.0)
    return _drone(
        object_id, t, pos, vel, rng, _resolve_emitter(rng, None), _remote_id(rng, start, 0.6)
    )


def _keep_outside(zones: list[ZoneEnu], pos: np.ndarray, margin_m: float) -> np.ndarray:
    """Translate a path radially away from any zone whose alert radius it enters."""
    for z in zones:
        d = distance_to_polygon(pos[:, 0], pos[:, 1], z.polygon)
        i = int(np.argmin(d))
        deficit = z.alert_radius_m + margin_m - d[i]
        if deficit > 0:
            direction = pos[i, :2] - z.centroid
            norm = float(np.hypot(*direction)) or 1.0
            pos = pos.copy()
            pos[:, :2] += (deficit + 1.0) * direction / norm
    return pos


# --------------------------------------------------------------------------- birds


def bird_flock(
    ctx: SimContext,
    rng: np.random.Generator,
    flock_id: str,
    *,
    n_birds: int | None = None,
    zone: str | None = "hall-a",
    crosses: bool = True,
    t_closest_s: float | None = None,
) -> list[MovingObject]:
    """A flock passing the site: meandering course, individual offsets, wing-beat RCS.

    ``crosses``: the flock's closest approach falls inside the zone's alert
    radius; otherwise the whole flock stays beyond it (with margin).
    """
    z = _zone(ctx, zone)
    zones = zones_enu(ctx)
    n_birds = int(rng.integers(2, 9)) if n_birds is None else n_birds
    speed = float(rng.uniform(8.0, 18.0))
    mean_heading = float(rng.uniform(0.0, 360.0))
    alt = float(rng.uniform(15.0, 80.0))
    if crosses:
        offset = float(rng.uniform(-0.5, 0.5)) * z.alert_radius_m
    else:
        offset = float(rng.choice([-1, 1])) * float(
            rng.uniform(z.alert_radius_m + z.circumradius_m + 700.0, 4000.0)
        )
    t_ca = (
        float(rng.uniform(0.2, 0.8) * ctx.duration_s) if t_closest_s is None else float(t_closest_s)
    )
    half_len_s = 4500.0 / speed
    t_a, t_b = max(0.0, t_ca - half_len_s), min(ctx.duration_s, t_ca + half_len_s)
    t = _grid(t_a, t_b)
    n = len(t)
    heading = np.radians(
        mean_heading + _ou(rng, n, float(rng.uniform(10.0, 25.0)), float(rng.uniform(6.0, 12.0)))
    )
    spd = np.clip(speed + _ou(rng, n, 1.2, 8.0), 6.0, 20.0)
    z_c = np.clip(alt + _ou(rng, n, 8.0, 30.0), 5.0, 100.0)
    # Smooth the altitude so its derivative is a plausible climb rate.
    z_c = np.convolve(np.pad(z_c, 10, mode="edge"), np.ones(21) / 21.0, mode="valid")
    vx, vy = spd * np.sin(heading), spd * np.cos(heading)
    vz = np.gradient(z_c, DT_S)
    x = np.concatenate([[0.0], np.cumsum(vx[:-1] * DT_S)])
    y = np.concatenate([[0.0], np.cumsum(vy[:-1] * DT_S)])
    # Place the nominal closest approach at t_ca, ``offset`` to the side of the zone.
    u = _unit(mean_heading)
    side = np.array([u[1], -u[0]])
    i_ca = int(np.clip(round((t_ca - t_a) / DT_S), 0, n - 1))
    anchor = z.centroid + offset * side
    x += anchor[0] - x[i_ca]
    y += anchor[1] - y[i_ca]
    centre = np.column_stack([x, y, z_c])
    if crosses:
        d = distance_to_polygon(x, y, z.polygon)
        i = int(np.argmin(d))
        excess = d[i] - 0.6 * z.alert_radius_m
        if excess > 0:
            direction = z.centroid - centre[i, :2]
            centre[:, :2] += excess * direction / (np.hypot(*direction) or 1.0)
    else:
        centre = _keep_outside(zones, centre, margin_m=300.0)
    cvel = np.column_stack([vx, vy, vz])
    flapping = _flap_mask(rng, n, soaring=bool(rng.random() < 0.4))
    wingbeat = float(rng.uniform(3.0, 9.0))
    species_rcs = float(rng.uniform(-28.0, -22.0))
    birds = []
    spread = float(rng.uniform(5.0, 30.0))
    for j in range(n_birds):
        base_off = rng.normal(0.0, spread, size=3) * np.array([1.0, 1.0, 0.3])
        wander = np.zeros((n, 3))
        dwander = np.zeros((n, 3))
        for axis in range(3):
            amp = float(rng.uniform(1.0, 4.0)) * (0.4 if axis == 2 else 1.0)
            omega = 2.0 * np.pi / float(rng.uniform(20.0, 60.0))
            ph = float(rng.uniform(0, 2 * np.pi))
            wander[:, axis] = amp * np.sin(omega * t + ph)
            dwander[:, axis] = amp * omega * np.cos(omega * t + ph)
        pos = centre + base_off + wander
        pos[:, 2] = np.clip(pos[:, 2], 5.0, 100.0)
        vel = cvel + dwander
        rcs = _aspect_rcs(
            vel, species_rcs + float(rng.uniform(-2.0, 2.0)), 1.5, float(rng.uniform(0, 6.3))
        )
        rcs = np.clip(rcs, -32.0, -18.0)
        tt, pos, vel, rcs, flap = _clip_to_scene(ctx, t, pos, vel, rcs, flapping)
        birds.append(
            MovingObject(
                f"{flock_id}-{j + 1}",
                BIRD,
                tt,
                pos,
                vel,
                rcs,
                flap_hz=wingbeat * float(rng.uniform(0.95, 1.05)),
                flap_db=float(rng.uniform(3.0, 5.0)),
                flap_phase=float(rng.uniform(0, 2 * np.pi)),
                flapping=flap,
            )
        )
    return birds


def _flap_mask(rng: np.random.Generator, n: int, soaring: bool) -> np.ndarray:
    """1 while flapping, 0 while gliding; short glides, longer ones for soaring species."""
    mask = np.ones(n)
    k, flapping = 0, True
    while k < n:
        mean_s = (8.0 if soaring else 20.0) if flapping else (10.0 if soaring else 3.0)
        seg = max(1, int(rng.exponential(mean_s) / DT_S))
        if not flapping:
            mask[k : k + seg] = 0.0
        k += seg
        flapping = not flapping
    # Wing beats fade in and out over half a second.
    return np.convolve(np.pad(mask, 2, mode="edge"), np.ones(5) / 5.0, mode="valid")


# --------------------------------------------------------------------------- aircraft


def aircraft_overflight(
    ctx: SimContext,
    rng: np.random.Generator,
    object_id: str,
    *,
    t_closest_s: float | None = None,
) -> MovingObject:
    """A crossing aircraft: straight flight, sometimes a slow turn, 300-3000 m up."""
    kind = rng.choice(["light", "airliner", "jet"], p=[0.45, 0.45, 0.10])
    if kind == "light":
        alt, speed = rng.uniform(300.0, 900.0), rng.uniform(60.0, 80.0)
    elif kind == "airliner":
        alt, speed = rng.uniform(900.0, 3000.0), rng.uniform(80.0, 150.0)
    else:
        alt, speed = rng.uniform(1500.0, 3000.0), rng.uniform(180.0, 250.0)
    alt, speed = float(alt), float(speed)
    heading0 = float(rng.uniform(0.0, 360.0))
    offset = float(rng.uniform(-3000.0, 3000.0))
    t_ca = (
        float(rng.uniform(0.3, 0.7) * ctx.duration_s) if t_closest_s is None else float(t_closest_s)
    )
    half = 7000.0 / speed
    t = _grid(max(0.0, t_ca - half), min(ctx.duration_s, t_ca + half))
    n = len(t)
    rate = np.zeros(n)
    if rng.random() < 0.4:
        # A slow turn (0.5-1.5 deg/s) for 20-60 s somewhere along the track.
        i0 = int(rng.integers(0, max(1, n // 2)))
        rate[i0 : i0 + int(rng.uniform(20.0, 60.0) / DT_S)] = float(
            rng.uniform(0.5, 1.5)
        ) * rng.choice([-1, 1])
    heading = np.radians(heading0 + np.cumsum(rate) * DT_S)
    climb = float(rng.uniform(-4.0, 4.0))
    vx, vy = speed * np.sin(heading), speed * np.cos(heading)
    vz = np.full(n, climb)
    x = np.concatenate([[0.0], np.cumsum(vx[:-1] * DT_S)])
    y = np.concatenate([[0.0], np.cumsum(vy[:-1] * DT_S)])
    zz = np.clip(alt + climb * (t - t_ca), 300.0, 3000.0)
    i_ca = int(np.clip(round((t_ca - t[0]) / DT_S), 0, n - 1))
    side = np.array([math.cos(math.radians(heading0)), -math.sin(math.radians(heading0))])
    x += offset * side[0] - x[i_ca]
    y += offset * side[1] - y[i_ca]
    pos = np.column_stack([x, y, zz])
    vel = np.column_stack([vx, vy, vz])
    rcs = _aspect_rcs(vel, float(rng.uniform(11.0, 18.0)), 2.0, float(rng.uniform(0, 6.3)))
    return MovingObject(object_id, AIRCRAFT, t, pos, vel, rcs)


# --------------------------------------------------------------------------- clutter


def site_clutter(ctx: SimContext, rng: np.random.Generator) -> list[ClutterSource]:
    """The site's clutter map residue: fixed structures and wind-blown trees."""
    out = []
    for i in range(int(rng.integers(6, 13))):
        r, b = float(rng.uniform(150.0, 3500.0)), float(rng.uniform(0.0, 360.0))
        xy = r * _unit(b)
        out.append(
            ClutterSource(
                f"clutter-ground-{i + 1}",
                "ground",
                (float(xy[0]), float(xy[1]), float(rng.uniform(0.0, 40.0))),
                rcs_dbsm=float(rng.uniform(-10.0, 5.0)),
                p_plot=float(rng.uniform(0.3, 0.9)),
                spread_m=float(rng.uniform(2.0, 5.0)),
                doppler_sigma_mps=0.05,
            )
        )
    for i in range(int(rng.integers(4, 9))):
        r, b = float(rng.uniform(100.0, 2000.0)), float(rng.uniform(0.0, 360.0))
        xy = r * _unit(b)
        out.append(
            ClutterSource(
                f"clutter-vegetation-{i + 1}",
                "vegetation",
                (float(xy[0]), float(xy[1]), float(rng.uniform(2.0, 15.0))),
                rcs_dbsm=float(rng.uniform(-20.0, -8.0)),
                p_plot=float(rng.uniform(0.1, 0.5)),
                spread_m=float(rng.uniform(5.0, 15.0)),
                doppler_sigma_mps=float(rng.uniform(0.3, 1.0)),
            )
        )
    return out


# --------------------------------------------------------------------------- truth


@dataclass
class _Episode:
    i0: int
    i1: int  # inclusive
    deadline_i: int


def _approach_episodes(t: np.ndarray, dist: np.ndarray, radii: np.ndarray) -> list[_Episode]:
    """Runs of samples within any zone's alert radius, with each run's deadline sample."""
    within = np.any(dist <= radii[:, None], axis=0)
    inside = np.any(dist <= 0.0, axis=0)
    nearest = np.min(dist, axis=0)
    edges = np.diff(within.astype(np.int8), prepend=0, append=0)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    out = []
    for a, b in zip(starts, ends, strict=True):
        ins = np.flatnonzero(inside[a : b + 1])
        if len(ins):
            dl = a + int(ins[0])
        else:
            seg = nearest[a : b + 1]
            # First moment within a metre of the closest approach (a hover holds it).
            dl = a + int(np.flatnonzero(seg <= seg.min() + 1.0)[0])
        out.append(_Episode(int(a), int(b), dl))
    return out


def object_truth(
    ctx: SimContext, objects: list[MovingObject], clutter: list[ClutterSource]
) -> list[TruthRow]:
    """Truth rows (contract §3) for moving objects and clutter sources."""
    zones = zones_enu(ctx)
    radii = np.array([z.alert_radius_m for z in zones])
    rows: list[TruthRow] = []
    end_ns = ctx.at(ctx.duration_s)
    for obj in objects:
        if obj.t_first > ctx.duration_s:
            continue  # scheduled after the end of a shortened run
        t0_ns, t1_ns = ctx.at(obj.t_first), min(end_ns, ctx.at(obj.t_last))
        if obj.cls == DRONE:
            dist = zone_distances(zones, obj.pos)
            episodes = _approach_episodes(obj.t_s, dist, radii) if zones else []
            for ep in episodes:
                rows.append(
                    TruthRow(
                        obj.object_id,
                        "drone_approach",
                        ctx.at(obj.t_s[ep.i0]),
                        min(end_ns, ctx.at(obj.t_s[ep.i1])),
                        True,
                        ctx.at(obj.t_s[ep.deadline_i]),
                    )
                )
            if not episodes:
                rows.append(TruthRow(obj.object_id, "drone_far", t0_ns, t1_ns, False, None))
        else:
            rows.append(TruthRow(obj.object_id, obj.cls, t0_ns, t1_ns, False, None))
    for c in clutter:
        rows.append(TruthRow(c.object_id, "clutter", ctx.t0_ns, end_ns, False, None))
    return rows


@dataclass
class SceneObjects:
    """Everything the radar and RF models look at."""

    moving: list[MovingObject] = field(default_factory=list)
    clutter: list[ClutterSource] = field(default_factory=list)


def split_objects(objects: list) -> SceneObjects:
    scene = SceneObjects()
    for o in objects:
        if isinstance(o, MovingObject):
            scene.moving.append(o)
        elif isinstance(o, ClutterSource):
            scene.clutter.append(o)
        else:
            raise TypeError(f"not a simulated object: {type(o).__name__}")
    return scene


def sensor_enu(ctx: SimContext, sensor) -> np.ndarray:
    """A sensor's ENU position from its configured lat/lon/alt_m (alt: site origin + 2 m if absent)."""
    s = ctx.site.site
    lat = s.lat if sensor.lat is None else sensor.lat
    lon = s.lon if sensor.lon is None else sensor.lon
    alt = s.alt_m + 2.0 if sensor.alt_m is None else sensor.alt_m
    x, y, z = ctx.frame.to_enu(lat, lon, alt)
    return np.array([float(x), float(y), float(z)])
