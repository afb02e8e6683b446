"""Movement families for the drone classifier, generated here (not by the simulator's scenes).

Each builder returns a ``MovingObject`` (ENU metres, 10 Hz) that the simulated
radar (``drivers.simulated.radar.simulate_radar``) turns into plots; the
detector then sees only the radar's plots. The families follow the physics of
each class, over the ranges real sensors report, not one flock model:

* **soaring bird**: thermals (circles of radius 20-60 m at 8-15 m/s, constant
  bank, climbing 0.5-3 m/s) and glides between them (straight, 12-20 m/s,
  sinking 0.5-2 m/s), all drifting with a wind of 0-8 m/s, 100-1,500 m up; RCS
  -25..-10 dBsm with aspect swing and slow fluctuation.
* **paraglider / glider**: the same physics, paragliders at 9-14 m/s (radius
  30-60 m), sailplanes at 25-50 m/s (radius 80-200 m: bank 35-50°).
* **helicopter**: hovers and moves at up to 30 m/s, 50-500 m up, RCS +5..+15
  dBsm, steady.
* **drone**: multirotor autopilot (``fly_legs``): hovers, dashes and straight
  inbound approaches at 5-25 m/s, 30-150 m up, RCS -25..-5 dBsm.

``real_track`` reads a real GPS track (``*.traj.csv``: ``t_s, lat_deg,
lon_deg, alt_m``) and places a window of it near the site, so that a real
glider or paraglider can be flown past the radar with a bird's or an
aircraft's cross-section, and the real DJI flight can be flown inbound.

``run_objects`` flies objects past the simulated site's radar (and RF sensor,
for objects with an emitter) and returns the detector's findings.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl

from drivers.json_feeds import RadarPlotsDecoder, RfDetectionsDecoder
from drivers.simulated.base import SimContext
from drivers.simulated.objects import (
    DT_S,
    G_MPS2,
    Leg,
    MovingObject,
    RfEmitter,
    _ou,
    distance_to_polygon,
    fly_legs,
    zones_enu,
)
from drivers.simulated.radar import simulate_radar
from drivers.simulated.rf import simulate_rf
from drivers.simulated.site import SIM_T0_NS, sim_site
from fusion.detector import Finding
from fusion.drone import DroneDetector
from fusion.records import RadarScan, RfDetections

NS = 1_000_000_000
REPO = Path(__file__).resolve().parents[2]
TRAJ_DIRS = (
    REPO / "tests" / "data" / "shared" / "trajectories",
    Path("/work/shared/data/trajectories"),
)
GLIDER_FILES = (
    "igc_lib_olsztyn",
    "igc_lib_new_zealand",
    "igc_lib_napret",
    "igc_lib_flight_with_middle_landing",
)
DJI_FILE = "dji_p4pro_2018-07-04_denmark"


def _grid(t0: float, t1: float) -> np.ndarray:
    return t0 + DT_S * np.arange(max(2, math.floor((t1 - t0) / DT_S) + 1))


def _object(object_id, cls, t, pos, rcs) -> MovingObject:
    vel = np.gradient(pos, DT_S, axis=0)
    return MovingObject(object_id, cls, t, pos, vel, rcs)


def _aspect(vel: np.ndarray, base_db: float, swing_db: float, phase: float) -> np.ndarray:
    heading = np.arctan2(vel[:, 0], vel[:, 1])
    return base_db + swing_db * np.cos(2.0 * heading + phase)


def thermal_soarer(
    rng: np.random.Generator,
    object_id: str,
    duration_s: float,
    *,
    centre_xy: tuple[float, float],
    speed_mps: tuple[float, float] = (8.0, 15.0),
    radius_m: tuple[float, float] = (20.0, 60.0),
    glide_speed_mps: tuple[float, float] = (12.0, 20.0),
    alt_m: tuple[float, float] = (100.0, 1500.0),
    rcs_dbsm: tuple[float, float] = (-25.0, -10.0),
    wind_mps: tuple[float, float] = (0.0, 8.0),
    cls: str = "bird",
    steady_rcs: bool = False,
) -> MovingObject:
    """Thermalling (constant-bank circles, climbing) and gliding (straight, sinking), with wind."""
    t = _grid(0.0, duration_s)
    n = len(t)
    wind_dir = rng.uniform(0.0, 2.0 * math.pi)
    wind = rng.uniform(*wind_mps) * np.array([math.sin(wind_dir), math.cos(wind_dir)])
    pos = np.empty((n, 3))
    x, y = float(centre_xy[0]), float(centre_xy[1])
    lo_alt, hi_alt = alt_m
    z = float(rng.uniform(lo_alt, 0.5 * (lo_alt + hi_alt)))
    psi = rng.uniform(0.0, 2.0 * math.pi)
    k = 0
    thermal = rng.random() < 0.7
    while k < n:
        if thermal:
            seg = float(rng.uniform(60.0, 300.0))
            v = float(rng.uniform(*speed_mps))
            r = float(rng.uniform(*radius_m))
            omega = v / r * (1.0 if rng.random() < 0.5 else -1.0)
            climb = float(rng.uniform(0.5, 3.0))
        else:
            seg = float(rng.uniform(30.0, 120.0))
            v = float(rng.uniform(*glide_speed_mps))
            omega = 0.0
            climb = -float(rng.uniform(0.5, 2.0))
            # Glide towards the start area so the bird stays in the radar's view.
            back = math.atan2(centre_xy[0] - x, centre_xy[1] - y)
            psi = back + rng.uniform(-0.8, 0.8)
        m = min(n - k, max(1, int(seg / DT_S)))
        speed_noise = 0.5 * _ou(rng, m, 1.0, 5.0)
        for j in range(m):
            psi += omega * DT_S
            s = v + speed_noise[j]
            x += (s * math.sin(psi) + wind[0]) * DT_S
            y += (s * math.cos(psi) + wind[1]) * DT_S
            z = min(max(z + climb * DT_S, lo_alt), hi_alt)
            pos[k + j] = (x, y, z)
        k += m
        thermal = not thermal
    vel = np.gradient(pos, DT_S, axis=0)
    base = float(rng.uniform(*rcs_dbsm))
    if steady_rcs:
        rcs = np.full(n, base) + _ou(rng, n, 0.5, 10.0)
    else:
        rcs = _aspect(vel, base, 2.5, rng.uniform(0, 2 * math.pi)) + _ou(rng, n, 1.5, 4.0)
    return MovingObject(object_id, cls, t, pos, vel, rcs)


def soaring_bird(rng, object_id, duration_s, centre_xy) -> MovingObject:
    return thermal_soarer(rng, object_id, duration_s, centre_xy=centre_xy)


def paraglider(rng, object_id, duration_s, centre_xy) -> MovingObject:
    return thermal_soarer(
        rng,
        object_id,
        duration_s,
        centre_xy=centre_xy,
        speed_mps=(9.0, 14.0),
        radius_m=(30.0, 60.0),
        glide_speed_mps=(10.0, 15.0),
        alt_m=(150.0, 1500.0),
        rcs_dbsm=(-10.0, 0.0),
        cls="aircraft",
    )


def glider(rng, object_id, duration_s, centre_xy) -> MovingObject:
    v = float(rng.uniform(25.0, 35.0))
    bank = math.radians(float(rng.uniform(35.0, 50.0)))
    r = v * v / (G_MPS2 * math.tan(bank))
    return thermal_soarer(
        rng,
        object_id,
        duration_s,
        centre_xy=centre_xy,
        speed_mps=(v, v + 3.0),
        radius_m=(r, r * 1.2),
        glide_speed_mps=(35.0, 50.0),
        alt_m=(300.0, 1500.0),
        rcs_dbsm=(0.0, 10.0),
        cls="aircraft",
        steady_rcs=True,
    )


def helicopter(rng, object_id, duration_s, centre_xy) -> MovingObject:
    """Slow flight and hovers (a rotorcraft's autopilot is close to a multirotor's)."""
    alt = float(rng.uniform(50.0, 500.0))
    c = np.asarray(centre_xy, dtype=np.float64)
    legs: list[Leg] = []
    p = c.copy()
    for _ in range(8):
        p = c + rng.uniform(-800.0, 800.0, 2)
        legs.append(Leg("goto", (p[0], p[1], alt), float(rng.uniform(3.0, 30.0)), stop=True))
        legs.append(Leg("hover", duration_s=float(rng.uniform(20.0, 120.0))))
    t, pos, _ = fly_legs(0.0, duration_s, (c[0], c[1], alt), rng.uniform(0, 360), 10.0, legs)
    pos = pos + np.column_stack([_ou(rng, len(t), 1.0, 8.0) for _ in range(3)])
    base = float(rng.uniform(5.0, 15.0))
    rcs = np.full(len(t), base) + _ou(rng, len(t), 0.5, 10.0)
    return _object(object_id, "aircraft", t, pos, rcs)


def inbound_drone(
    rng, object_id, duration_s, zone_xy, *, start_range_m=(2500.0, 3500.0)
) -> MovingObject:
    """A multirotor flying in on a zone: straight, maybe a hover and a dash, then over the zone."""
    bearing = rng.uniform(0.0, 2.0 * math.pi)
    u = np.array([math.sin(bearing), math.cos(bearing)])
    dist = float(rng.uniform(*start_range_m))
    start = np.asarray(zone_xy) + dist * u
    alt = float(rng.uniform(30.0, 150.0))
    cruise = float(rng.uniform(5.0, 20.0))
    legs = []
    mid = np.asarray(zone_xy) + 0.5 * dist * u
    if rng.random() < 0.4:
        legs += [Leg("goto", (mid[0], mid[1], alt), cruise, stop=True)]
        legs += [Leg("hover", duration_s=float(rng.uniform(10.0, 30.0)))]
    if rng.random() < 0.4:
        pre = np.asarray(zone_xy) + 600.0 * u
        legs += [Leg("goto", (pre[0], pre[1], alt), cruise)]
        cruise = float(rng.uniform(20.0, 25.0))
    legs += [Leg("goto", (zone_xy[0], zone_xy[1], alt), cruise, stop=True)]
    legs += [Leg("hover", duration_s=1e9)]
    t, pos, vel = fly_legs(0.0, duration_s, (start[0], start[1], alt), 0.0, cruise, legs)
    base = float(rng.uniform(-25.0, -5.0))
    rcs = _aspect(vel, base, 1.0, rng.uniform(0, 2 * math.pi)) + _ou(rng, len(t), 0.7, 3.0)
    return MovingObject(object_id, "drone", t, pos, vel, rcs)


# --------------------------------------------------------------------------- real tracks


def traj_path(name: str) -> Path | None:
    """The vendored copy of a real track, else the shared one; None if neither exists."""
    for root in TRAJ_DIRS:
        for sub in ("raw/aircraft", "raw/drones", "raw/birds", "aircraft", "drones", "birds", ""):
            p = root / sub / f"{name}.traj.csv"
            if p.exists():
                return p
    return None


def read_track(name: str) -> pl.DataFrame | None:
    p = traj_path(name)
    if p is None:
        return None
    df = pl.read_csv(p, infer_schema_length=10000).drop_nulls(["lat_deg", "lon_deg", "alt_m"])
    # Repeated time stamps (zero steps) keep their first fix.
    return df.unique(subset="t_s", keep="first", maintain_order=True).sort("t_s")


def _local_xy(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equirectangular east/north metres about the track's first point (a few km: ample)."""
    r = 6_371_000.0
    lat0 = math.radians(float(lat[0]))
    x = np.radians(lon - lon[0]) * r * math.cos(lat0)
    y = np.radians(lat - lat[0]) * r
    return x, y


def real_track(
    df: pl.DataFrame,
    object_id: str,
    cls: str,
    t_from_s: float,
    duration_s: float,
    *,
    centre_xy: tuple[float, float],
    rcs_dbsm: float,
    rng: np.random.Generator,
    height_floor_m: float = 50.0,
    fluctuating: bool = True,
) -> MovingObject | None:
    """A window of a real track, its mean position moved to ``centre_xy``, 10 Hz.

    Heights: the file's altitude minus its lowest value over the whole flight
    plus ``height_floor_m`` (the site is taken at the track's lowest point).
    Positions between fixes are interpolated linearly, as the radar would see a
    target that the logger sampled more coarsely.
    """
    t_all = df["t_s"].to_numpy()
    lat, lon = df["lat_deg"].to_numpy(), df["lon_deg"].to_numpy()
    alt = df["alt_m"].to_numpy().astype(np.float64)
    x_all, y_all = _local_xy(lat, lon)
    z_all = alt - np.nanmin(alt) + height_floor_m
    keep = (t_all >= t_from_s) & (t_all <= t_from_s + duration_s)
    if keep.sum() < 10:
        return None
    t_src = t_all[keep] - t_from_s
    t = _grid(0.0, float(t_src[-1]))
    pos = np.column_stack([np.interp(t, t_src, v[keep]) for v in (x_all, y_all, z_all)])
    pos[:, :2] += np.asarray(centre_xy) - pos[:, :2].mean(axis=0)
    vel = np.gradient(pos, DT_S, axis=0)
    if fluctuating:
        rcs = _aspect(vel, rcs_dbsm, 2.5, rng.uniform(0, 2 * math.pi)) + _ou(rng, len(t), 1.5, 4.0)
    else:
        rcs = np.full(len(t), rcs_dbsm) + _ou(rng, len(t), 0.5, 10.0)
    return MovingObject(object_id, cls, t, pos, vel, rcs)


def dji_inbound(
    df: pl.DataFrame,
    rng: np.random.Generator,
    zone_xy: np.ndarray,
    *,
    bearing_deg: float,
    start_range_m: float = 3000.0,
    speed_mps: float = 10.0,
    rcs_dbsm: float = -18.0,
    emitter: RfEmitter | None = None,
) -> MovingObject:
    """The real DJI flight (a hover: its own climbs, descents and GPS wander) carried in
    on a zone: the log's motion about its own mean is added to a straight inbound leg
    at ``speed_mps``, which stops over the zone, where the rest of the log plays out."""
    t_src = df["t_s"].to_numpy()
    x, y = _local_xy(df["lat_deg"].to_numpy(), df["lon_deg"].to_numpy())
    z = df["alt_m"].to_numpy().astype(np.float64)
    t_log = _grid(0.0, float(t_src[-1]))
    own = np.column_stack([np.interp(t_log, t_src, v) for v in (x, y, z)])
    # The log's GPS positions step by their quantisation (implied speeds of 7 m/s while
    # the drone reports < 0.9 m/s): a 2 s moving average keeps the drone's own motion.
    box = np.ones(20) / 20.0
    own = np.column_stack([np.convolve(own[:, j], box, mode="same") for j in range(3)])
    own[:, :2] -= own[:, :2].mean(axis=0)
    u = np.array([math.sin(math.radians(bearing_deg)), math.cos(math.radians(bearing_deg))])
    start = np.asarray(zone_xy) + start_range_m * u
    t_in = start_range_m / speed_mps
    t = _grid(0.0, t_in + float(t_log[-1]))
    frac = np.clip(t / t_in, 0.0, 1.0)
    path = start[None, :] + frac[:, None] * (np.asarray(zone_xy) - start)[None, :]
    # Play the log forwards and backwards through the approach (no jump where it would
    # wrap), its wander added to the path, at least 40 m up.
    n = len(t_log)
    k = np.arange(len(t)) % (2 * n - 2)
    idx = np.where(k < n, k, 2 * n - 2 - k)
    pos = np.column_stack([path + own[idx, :2], np.maximum(own[idx, 2], 40.0)])
    vel = np.gradient(pos, DT_S, axis=0)
    rcs = _aspect(vel, rcs_dbsm, 1.0, rng.uniform(0, 2 * math.pi)) + _ou(rng, len(t), 0.7, 3.0)
    return MovingObject("dji", "drone", t, pos, vel, rcs, emitter=emitter)


# --------------------------------------------------------------------------- the run


def zone_centre(ctx: SimContext) -> np.ndarray:
    return zones_enu(ctx)[0].centroid


def entry_time_s(ctx: SimContext, obj: MovingObject) -> float | None:
    """When the object first enters the site's first zone (None if it never does)."""
    z = zones_enu(ctx)[0]
    inside = distance_to_polygon(obj.pos[:, 0], obj.pos[:, 1], z.polygon) <= 0.0
    return float(obj.t_s[np.argmax(inside)]) if inside.any() else None


def run_objects(
    objects: list[MovingObject], seed: int, duration_s: float, keep_history: bool = False
) -> tuple[list[tuple[float, Finding]], DroneDetector, SimContext]:
    """Flies ``objects`` past the simulated site's radar (and RF sensor) through a
    ``DroneDetector``; returns (scenario time, finding) pairs, the detector and the context."""
    site = sim_site()
    ctx = SimContext(site, SIM_T0_NS, duration_s, seed)
    radars = [s for s in site.sensors if s.kind == "radar"]
    feeds = list(simulate_radar(ctx, radars, objects).feeds)
    if any(o.emitter is not None for o in objects):
        rfs = [s for s in site.sensors if s.kind == "rf"]
        feeds += simulate_rf(ctx, rfs, objects, [], []).feeds
    feeds.sort(key=lambda r: r.t_rx_ns)
    decoders = {s.id: RadarPlotsDecoder(s.id, "sim") for s in radars}
    rf_dec = {s.id: RfDetectionsDecoder(s.id, "sim") for s in site.sensors if s.kind == "rf"}
    det = DroneDetector(site)
    det.keep_history = keep_history
    out: list[tuple[float, Finding]] = []
    for row in feeds:
        parts = row.channel.split("/")
        sid = parts[3]
        dec = decoders.get(sid) if parts[2] == "radar" else None
        if parts[2] == "rf" and parts[-1] == "detections":
            dec = rf_dec.get(sid)
        if dec is None:
            continue
        for rec in dec.feed(row.payload, row.t_rx_ns):
            if isinstance(rec, (RadarScan, RfDetections)):
                t_s = (rec.t_ns - SIM_T0_NS) / NS
                out += [(t_s, f) for f in det.on_record(rec)]
                out += [(t_s, f) for f in det.on_tick(rec.t_ns)]
    return out, det, ctx
