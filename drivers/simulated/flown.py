"""Real tracks flown past the simulated site: placement, windowing, class and RCS.

``rampart simulate SCENARIO --trajectories SPEC`` reads real tracks
(``drivers/simulated/trajectories.py``), places them in the site's ENU frame
and hands them to the radar and RF models as ``MovingObject`` items, so they
get truth rows and truth tracks like the simulator's own objects.

A SPEC is ``FILE[:key=value...]``; several are separated by commas (or the
option is repeated), or FILE is a ``.toml`` with ``[[trajectory]]`` tables
holding ``file = "..."`` and the same keys. Keys (all optional):

- ``as``: drone | bird | glider | aircraft | helicopter (default: drone for
  DJI logs, glider for IGC, aircraft for ADS-B, and for ``*.traj.csv`` the
  folder it sits in: ``drones/``, ``birds/``, ``aircraft/``);
- ``rcs``: mean RCS in dBsm (default: drawn from the class range, see
  ``CLASS_RCS_DBSM``); ``size`` small | medium | large for birds (large);
  ``flap``: wing-beat Hz for a flapping bird (0: soaring, no modulation);
  ``rotor``: blade-passing Hz for a helicopter (0: none);
- ``place``: pass | inbound | keep (default inbound for drones, else pass).
  *pass* rotates the track by ``rotate`` degrees about the sample in the
  middle of its window and puts that sample ``offset`` m from the zone's
  centroid on ``bearing``; *inbound* rotates the track so that it comes from
  ``bearing`` and shifts it so that its window's last sample is inside the
  zone; *keep* uses the real coordinates (a track recorded at the site);
  ``zone`` names the zone (default: the first). Defaults for ``bearing``,
  ``rotate`` and ``offset`` (within half the alert radius) are drawn from the seed;
- ``start``: seconds into the track where the window begins, or ``auto``
  (default: the first sample where it is airborne and moving); ``at``:
  scenario second at which the window starts (default 0). The window lasts
  to the end of the scenario or of the track; time is never scaled;
- ``ground``: the ground's altitude in the file's datum (default: 0 for
  heights above take-off and for ADS-B altitudes, the track's lowest
  altitude for GNSS altitudes, i.e. its launch or landing field);
  ``height``: a constant height in m (default 20 m for files without altitude);
- ``track``: the one track id to fly from a multi-track file; ``tracks``: how
  many of its longest tracks (default 10, ``all``);
- ``link``: a drone's RF link, auto | none | ocusync | elrs | wifi;
  ``format``: traj | igc | gpx | dji | adsb; ``id``: object id prefix.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from drivers.simulated.base import SimContext
from drivers.simulated.objects import (
    AIRCRAFT,
    BIRD,
    DRONE,
    DT_S,
    MovingObject,
    _aspect_rcs,
    _ou,
    _point_in_zone,
    _resolve_emitter,
    _unit,
    _zone,
    random_emitter,
)
from drivers.simulated.trajectories import (
    DATUM_GNSS,
    DATUM_NONE,
    Track,
    TrajectoryError,
    TrajectoryFile,
    read_trajectory,
)
from fusion.geo import EnuFrame

KINDS = ("drone", "bird", "glider", "aircraft", "helicopter")
PLACES = ("pass", "inbound", "keep")
# Mean RCS ranges (dBsm) by class; one value per track is drawn from its range.
CLASS_RCS_DBSM: dict[str, tuple[float, float]] = {
    "drone": (-19.0, -11.0),  # small multirotor
    "bird-small": (-35.0, -28.0),  # passerines
    "bird-medium": (-30.0, -20.0),  # pigeons, gulls
    "bird-large": (-25.0, -10.0),  # vultures, storks, gannets, eagles
    "glider": (-10.0, 0.0),  # composite sailplane or paraglider wing
    "aircraft": (5.0, 15.0),  # light aircraft
    "helicopter": (5.0, 15.0),
}
# (aspect swing dB, fluctuation sigma dB, fluctuation time constant s)
_RCS_MOTION = {
    "drone": (1.0, 0.7, 3.0),
    "bird": (3.0, 1.5, 3.0),
    "glider": (3.0, 1.0, 3.0),
    "aircraft": (2.0, 0.5, 5.0),
    "helicopter": (2.0, 0.5, 5.0),
}
_CLASS = {"drone": DRONE, "bird": BIRD, "glider": AIRCRAFT, "aircraft": AIRCRAFT}
_CLASS["helicopter"] = AIRCRAFT
DEFAULT_HEIGHT_M = 20.0
DEFAULT_MAX_TRACKS = 10
_KEYS = {
    "as", "rcs", "size", "flap", "rotor", "place", "bearing", "offset", "rotate", "zone",
    "start", "at", "ground", "height", "track", "tracks", "link", "format", "id",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class FlightSpec:
    """How to fly one trajectory file past the site (see the module docstring)."""

    path: Path
    kind: str | None = None
    fmt: str | None = None
    rcs_dbsm: float | None = None
    bird_size: str = "large"
    flap_hz: float = 0.0
    rotor_hz: float = 0.0
    place: str | None = None
    bearing_deg: float | None = None
    offset_m: float | None = None
    rotate_deg: float | None = None
    zone: str | None = None
    start_s: float | None = None  # None: auto
    at_s: float = 0.0
    ground_m: float | None = None  # None: by datum
    height_m: float | None = None
    track: str | None = None
    max_tracks: int | None = DEFAULT_MAX_TRACKS  # None: all
    link: str = "auto"
    object_id: str | None = None


# --------------------------------------------------------------------------- parsing


def _spec_from(path: Path, opts: dict, where: str) -> FlightSpec:
    unknown = set(opts) - _KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(_KEYS)}")

    def num(key: str) -> float | None:
        if key not in opts:
            return None
        try:
            return float(opts[key])
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {key}={opts[key]!r} is not a number") from None

    kind = opts.get("as")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"{where}: as={kind!r}; one of {', '.join(KINDS)}")
    place = opts.get("place")
    if place is not None and place not in PLACES:
        raise ValueError(f"{where}: place={place!r}; one of {', '.join(PLACES)}")
    size = str(opts.get("size", "large"))
    if f"bird-{size}" not in CLASS_RCS_DBSM:
        raise ValueError(f"{where}: size={size!r}; one of small, medium, large")
    link = str(opts.get("link", "auto"))
    if link not in ("auto", "none", "ocusync", "elrs", "wifi"):
        raise ValueError(f"{where}: link={link!r}; one of auto, none, ocusync, elrs, wifi")
    start = opts.get("start", "auto")
    tracks = opts.get("tracks", DEFAULT_MAX_TRACKS)
    at = num("at") or 0.0
    if at < 0:
        raise ValueError(f"{where}: at must be >= 0")
    return FlightSpec(
        path=path,
        kind=kind,
        fmt=opts.get("format"),
        rcs_dbsm=num("rcs"),
        bird_size=size,
        flap_hz=num("flap") or 0.0,
        rotor_hz=num("rotor") or 0.0,
        place=place,
        bearing_deg=num("bearing"),
        offset_m=num("offset"),
        rotate_deg=num("rotate"),
        zone=opts.get("zone"),
        start_s=None if str(start) == "auto" else num("start"),
        at_s=at,
        ground_m=num("ground"),
        height_m=num("height"),
        track=None if opts.get("track") is None else str(opts["track"]),
        max_tracks=None if str(tracks) == "all" else max(1, int(float(tracks))),
        link=link,
        object_id=opts.get("id"),
    )


def parse_specs(text: str) -> list[FlightSpec]:
    """``FILE[:k=v...][,FILE...]`` or a ``.toml`` spec file -> flight specs."""
    out: list[FlightSpec] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        path_s, *pairs = item.split(":")
        opts: dict = {}
        for pair in pairs:
            if "=" not in pair:
                raise ValueError(f"trajectory {item!r}: {pair!r} is not key=value")
            k, v = pair.split("=", 1)
            opts[k.strip()] = v.strip()
        path = Path(path_s)
        if path.suffix == ".toml":
            if opts:
                raise ValueError(f"{path}: options go inside the TOML file")
            out.extend(_parse_toml(path))
        else:
            out.append(_spec_from(path, opts, f"trajectory {item!r}"))
    return out


def _parse_toml(path: Path) -> list[FlightSpec]:
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    tables = doc.get("trajectory", [])
    if not isinstance(tables, list) or not tables:
        raise ValueError(f"{path}: needs [[trajectory]] tables with file = ...")
    out = []
    for i, t in enumerate(tables, start=1):
        t = dict(t)
        if "file" not in t:
            raise ValueError(f"{path}: [[trajectory]] #{i} has no file")
        f = Path(t.pop("file"))
        out.append(_spec_from(f if f.is_absolute() else path.parent / f, t, f"{path} #{i}"))
    return out


# --------------------------------------------------------------------------- flying


def default_kind(traj: TrajectoryFile) -> str:
    if traj.fmt == "dji":
        return "drone"
    if traj.fmt == "igc":
        return "glider"
    if traj.fmt == "adsb":
        return "aircraft"
    parts = {p.lower() for p in traj.path.parts}
    if "drones" in parts:
        return "drone"
    if "birds" in parts:
        return "bird"
    if "aircraft" in parts:
        return "glider" if "igc" in traj.path.name.lower() else "aircraft"
    raise ValueError(f"{traj.path}: say what it is: as={'|'.join(KINDS)}")


def _dedupe(t: np.ndarray, *cols: np.ndarray) -> tuple[np.ndarray, ...]:
    """One sample per time stamp (the mean of repeats: DJI and IGC logs repeat times)."""
    uniq, inv = np.unique(t, return_inverse=True)
    if len(uniq) == len(t):
        return (t, *cols)
    counts = np.bincount(inv)
    return (uniq, *(np.bincount(inv, weights=c) / counts for c in cols))


def _fill_nan(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    ok = np.isfinite(v)
    if ok.all() or not ok.any():
        return v
    return np.interp(t, t[ok], v[ok])


def _heights(traj: TrajectoryFile, tr: Track, spec: FlightSpec, kind: str, ctx: SimContext):
    if spec.height_m is not None:
        return np.full(len(tr), spec.height_m)
    alt = tr.alt_m
    if traj.datum == DATUM_NONE or not np.isfinite(alt).any():
        return np.full(len(tr), DEFAULT_HEIGHT_M)
    alt = _fill_nan(tr.t_s, alt)
    if spec.ground_m is not None:
        ground = spec.ground_m
    elif traj.datum == DATUM_GNSS:
        # Flat site: heights above the keep-mode site altitude, or the track's lowest point.
        ground = ctx.site.site.alt_m if spec.place == "keep" else float(np.min(alt))
    else:
        ground = 0.0
    return np.maximum(0.0, alt - ground)


def auto_start(t: np.ndarray, xy: np.ndarray, z: np.ndarray) -> float:
    """Seconds into the track when it is first airborne (15 m up) and moving (60 m in 30 s).

    A track that never moves 60 m in 30 s (a hover) only needs to be airborne;
    one without height variation only needs to move.
    """
    rel = t - t[0]
    airborne = (z - z.min() > 15.0) if (z.max() - z.min()) > 15.0 else np.ones(len(t), bool)
    j = np.searchsorted(t, t + 30.0).clip(max=len(t) - 1)
    moved = np.hypot(*(xy[j] - xy).T) > 60.0
    ok = airborne & moved if moved.any() else airborne
    idx = np.flatnonzero(ok)
    return float(rel[idx[0]]) if len(idx) else 0.0


def _rotate(v: np.ndarray, deg: float) -> np.ndarray:
    """Rotate ENU x/y clockwise by ``deg`` (bearings grow clockwise)."""
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    out = v.copy()
    out[:, 0] = c * v[:, 0] + s * v[:, 1]
    out[:, 1] = -s * v[:, 0] + c * v[:, 1]
    return out


def _rcs(
    rng: np.random.Generator, spec: FlightSpec, kind: str, vel: np.ndarray
) -> tuple[np.ndarray, float, float]:
    """Mean-RCS series and (modulation Hz, dB) for the class."""
    key = f"bird-{spec.bird_size}" if kind == "bird" else kind
    base = float(rng.uniform(*CLASS_RCS_DBSM[key])) if spec.rcs_dbsm is None else spec.rcs_dbsm
    swing, sigma, tau = _RCS_MOTION[kind]
    rcs = _aspect_rcs(vel, base, swing, float(rng.uniform(0, 2 * np.pi)))
    rcs = rcs + _ou(rng, len(vel), sigma, tau)
    if kind == "bird" and spec.flap_hz > 0:
        return rcs, spec.flap_hz, 4.0
    if kind == "helicopter" and spec.rotor_hz > 0:
        return rcs, spec.rotor_hz, 2.0
    return rcs, 0.0, 0.0


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_") or "track"


def _pick_tracks(traj: TrajectoryFile, spec: FlightSpec) -> list[Track]:
    if spec.track is not None:
        picked = [t for t in traj.tracks if t.track_id == spec.track]
        if not picked:
            raise ValueError(f"{traj.path}: no track {spec.track!r}")
        return picked
    tracks = [t for t in traj.tracks if len(t) >= 2]
    if spec.max_tracks is not None and len(tracks) > spec.max_tracks:
        longest = sorted(tracks, key=lambda t: -(t.t_s[-1] - t.t_s[0]))[: spec.max_tracks]
        keep = {id(t) for t in longest}
        tracks = [t for t in tracks if id(t) in keep]
    return tracks


def fly_track(
    ctx: SimContext,
    rng: np.random.Generator,
    traj: TrajectoryFile,
    tr: Track,
    spec: FlightSpec,
    kind: str,
    object_id: str,
) -> MovingObject:
    """One real track as a scenario object (see the module docstring for the rules)."""
    place = spec.place or ("inbound" if kind == "drone" else "pass")
    z_all = _heights(traj, tr, replace(spec, place=place), kind, ctx)
    if place == "keep":
        s = ctx.site.site
        x, y, _ = ctx.frame.to_enu(tr.lat_deg, tr.lon_deg, np.full(len(tr), s.alt_m))
    else:
        ref = EnuFrame(float(tr.lat_deg[0]), float(tr.lon_deg[0]), 0.0)
        x, y, _ = ref.to_enu(tr.lat_deg, tr.lon_deg, np.zeros(len(tr)))
    t, x, y, z = _dedupe(tr.t_s.astype(np.float64), np.asarray(x), np.asarray(y), z_all)
    if len(t) < 2:
        raise ValueError(f"{traj.path}: track {tr.track_id or '-'} has fewer than 2 time stamps")
    xy = np.column_stack([x, y])
    start = auto_start(t, xy, z) if spec.start_s is None else spec.start_s
    w0 = t[0] + start
    length = min(ctx.duration_s - spec.at_s, t[-1] - w0)
    if length < 1.0:
        raise ValueError(
            f"{traj.path}: track {tr.track_id or '-'} has under 1 s left after start={start:g} s "
            f"(span {t[-1] - t[0]:g} s) or at={spec.at_s:g} is past the scenario's end"
        )
    g = w0 + DT_S * np.arange(math.floor(length / DT_S + 1e-9) + 1)
    pos = np.column_stack([np.interp(g, t, x), np.interp(g, t, y), np.interp(g, t, z)])
    # True velocity: the displacement over one second centred on each sample.
    ahead, behind = np.minimum(g + 0.5, t[-1]), np.maximum(g - 0.5, t[0])
    span = np.maximum(ahead - behind, 1e-6)[:, None]
    vel = (
        np.column_stack([np.interp(ahead, t, c) for c in (x, y, z)])
        - np.column_stack([np.interp(behind, t, c) for c in (x, y, z)])
    ) / span
    if place != "keep":
        z_enu = _zone(ctx, spec.zone)
        bearing = float(rng.uniform(0, 360)) if spec.bearing_deg is None else spec.bearing_deg
        if place == "pass":
            i_ref = len(g) // 2
            rotate = float(rng.uniform(0, 360)) if spec.rotate_deg is None else spec.rotate_deg
            offset = (
                float(rng.uniform(0.0, 0.5)) * z_enu.alert_radius_m
                if spec.offset_m is None
                else spec.offset_m
            )
            target = z_enu.centroid + offset * _unit(bearing)
        else:
            i_ref = len(g) - 1
            d = pos[0, :2] - pos[i_ref, :2]
            comes_from = math.degrees(math.atan2(d[0], d[1])) if np.hypot(*d) > 1.0 else 0.0
            rotate = bearing - comes_from
            target = _point_in_zone(rng, z_enu)
        ref_xy = pos[i_ref, :2].copy()
        pos[:, :2] = _rotate(pos[:, :2] - ref_xy, rotate) + target
        vel[:, :2] = _rotate(vel[:, :2], rotate)
    rcs, mod_hz, mod_db = _rcs(rng, spec, kind, vel)
    emitter = None
    if kind == "drone" and spec.link != "none":
        emitter = (
            _resolve_emitter(rng, None) if spec.link == "auto" else random_emitter(rng, spec.link)
        )
    return MovingObject(
        object_id,
        _CLASS[kind],
        spec.at_s + (g - g[0]),
        pos,
        vel,
        rcs,
        flap_hz=mod_hz,
        flap_db=mod_db,
        flap_phase=float(rng.uniform(0, 2 * np.pi)),
        flapping=np.ones(len(g)) if mod_db > 0 else None,
        emitter=emitter,
    )


def fly_specs(ctx: SimContext, specs: list[FlightSpec]) -> list[MovingObject]:
    """Every track of every spec as scenario objects; each file has its own random stream."""
    out: list[MovingObject] = []
    for i, spec in enumerate(specs, start=1):
        try:
            traj = read_trajectory(spec.path, spec.fmt)
        except TrajectoryError as exc:
            raise ValueError(str(exc)) from exc
        kind = spec.kind or default_kind(traj)
        stem = spec.object_id or f"traj{i}-{kind}-{_slug(spec.path.name.split('.')[0])}"
        tracks = _pick_tracks(traj, spec)
        for j, tr in enumerate(tracks, start=1):
            rng = ctx.rng(f"trajectory:{i}:{j}:{spec.path.name}:{tr.track_id}")
            oid = stem if len(tracks) == 1 else f"{stem}-{_slug(tr.track_id or str(j))}"
            out.append(fly_track(ctx, rng, traj, tr, spec, kind, oid))
    return out
