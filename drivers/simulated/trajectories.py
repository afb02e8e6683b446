"""Readers of real movement tracks: ``*.traj.csv``, IGC, GPX, DJI flight-record CSV, ADS-B.

Every reader returns a ``TrajectoryFile``: its tracks as plain arrays
(``t_s``, ``lat_deg``, ``lon_deg``, ``alt_m``, ``speed_mps``; NaN where the
source reports nothing), all on one time base per file (seconds from the
file's first kept sample, as the shared ``convert.py`` writes them), and the
file's altitude datum so that placement (``drivers/simulated/flown.py``) can
rebase heights. Rows without a fix are dropped (NaN, lat = lon = 0, IGC
validity ``V``); nothing is smoothed.

Formats:
- ``traj``: the shared ``*.traj.csv`` (t_s, lat_deg, lon_deg, alt_m, speed_mps, track_id).
- ``igc``: FAI IGC flight recorder files, B records (FAI *Technical
  Specification for IGC-approved GNSS flight recorders*, A4.1 and §4.1 of
  the B record): ``BHHMMSSDDMMmmmNDDDMMmmmEVPPPPPGGGGG``; the date from
  ``HFDTE``, the UTC midnight rollover handled; GNSS altitude, else pressure.
- ``gpx``: GPX 1.0/1.1 ``trk/trkseg/trkpt`` with ``time`` (one track per ``trk``).
- ``dji``: DJI flight records exported as CSV (TXTlogToCSVtool / Airdata
  column names): ``CUSTOM.updateTime``, ``OSD.latitude``, ``OSD.longitude``,
  ``OSD.height [m]`` (barometric height above take-off), ``CUSTOM.hSpeed [m/s]``.
- ``adsb``: ADS-B state vectors. OpenSky historical CSV / JSON records
  (``time`` s, ``icao24``, ``lat``, ``lon``, ``baroaltitude``/``geoaltitude``
  m, ``velocity`` m/s), OpenSky REST ``{"time", "states": [...]}`` snapshots
  (one per line or a list), and ``traffic`` records (``timestamp``,
  ``latitude``, ``longitude``, ``altitude``/``geoaltitude`` ft,
  ``groundspeed`` kt, ``flight_id``/``icao24``); ``.gz`` is read transparently.
  Consecutive repeats of a position within a track (stale state vectors) are
  dropped. Barometric altitude is used where a track has it, geometric otherwise.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FT_M = 0.3048
KT_MPS = 0.514444
FORMATS = ("traj", "igc", "gpx", "dji", "adsb")

# Altitude datums, for placement: what z = 0 means in the file.
DATUM_TAKEOFF = "takeoff"  # height above the take-off point (DJI OSD.height)
DATUM_GNSS = "gnss"  # GNSS altitude (ellipsoid or MSL): ground is somewhere below
DATUM_PRESSURE = "pressure"  # barometric pressure altitude (standard atmosphere)
DATUM_GEOMETRIC = "geometric"  # ADS-B geometric altitude
DATUM_NONE = "none"  # no altitude reported


class TrajectoryError(ValueError):
    """A trajectory file that cannot be read; the message names the file (and line)."""


@dataclass(frozen=True, slots=True)
class Track:
    """One mover's samples, sorted by time (stable: equal times keep file order)."""

    track_id: str  # "" in single-mover files
    t_s: np.ndarray  # seconds from the file's first kept sample
    lat_deg: np.ndarray
    lon_deg: np.ndarray
    alt_m: np.ndarray  # NaN where none
    speed_mps: np.ndarray  # NaN where none

    def __len__(self) -> int:
        return len(self.t_s)


@dataclass(slots=True)
class TrajectoryFile:
    path: Path
    fmt: str
    datum: str
    t0_utc: dt.datetime | None  # time of t_s = 0 where the source says
    tracks: list[Track] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(len(t) for t in self.tracks)


# --------------------------------------------------------------------------- shared


def _open_text(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8-sig", errors="replace") if _is_utf8(data) else data.decode("latin-1")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _float(s) -> float:
    if s is None:
        return np.nan
    try:
        return float(s)
    except (TypeError, ValueError):
        return np.nan


def _assemble(
    path: Path,
    fmt: str,
    datum: str,
    rows: list[tuple[float, float, float, float, float, str]],
    t0_utc: dt.datetime | None = None,
    times_are_relative: bool = False,
) -> TrajectoryFile:
    """Rows (t, lat, lon, alt, speed, id) -> tracks: drop rows without a fix, sort, rebase time."""
    if not rows:
        raise TrajectoryError(f"{path}: no position samples")
    t = np.array([r[0] for r in rows], dtype=np.float64)
    lat = np.array([r[1] for r in rows], dtype=np.float64)
    lon = np.array([r[2] for r in rows], dtype=np.float64)
    alt = np.array([r[3] for r in rows], dtype=np.float64)
    spd = np.array([r[4] for r in rows], dtype=np.float64)
    ids = np.array([r[5] for r in rows], dtype=object)
    ok = np.isfinite(lat) & np.isfinite(lon) & np.isfinite(t) & ~((lat == 0) & (lon == 0))
    if not ok.any():
        raise TrajectoryError(f"{path}: no sample has a position fix")
    t, lat, lon, alt, spd, ids = t[ok], lat[ok], lon[ok], alt[ok], spd[ok], ids[ok]
    order = np.argsort(t, kind="stable")
    t, lat, lon, alt, spd, ids = (
        t[order],
        lat[order],
        lon[order],
        alt[order],
        spd[order],
        ids[order],
    )
    t_first = float(t[0])
    if not times_are_relative and t0_utc is None:
        t0_utc = dt.datetime.fromtimestamp(t_first, dt.UTC)
    t = t - t_first
    out = TrajectoryFile(path, fmt, datum, t0_utc)
    for tid in dict.fromkeys(ids.tolist()):
        m = ids == tid
        out.tracks.append(Track(str(tid), t[m], lat[m], lon[m], alt[m], spd[m]))
    return out


# --------------------------------------------------------------------------- traj.csv


def _datum_from_summary(path: Path) -> str:
    """The datum of a shared ``*.traj.csv`` from its folder's ``summary.json``, if any."""
    name = path.name.removesuffix(".traj.csv")
    for folder in (path.parent, *path.parents):
        summary = folder / "summary.json"
        if summary.is_file():
            try:
                text = json.loads(summary.read_text()).get(name, {}).get("alt_datum", "")
            except (OSError, ValueError):
                return ""
            text = text.lower()
            if "take-off" in text or "takeoff" in text:
                return DATUM_TAKEOFF
            if "pressure" in text:
                return DATUM_PRESSURE
            if "none" in text:
                return DATUM_NONE
            return DATUM_GNSS if "gnss" in text else ""
    return ""


def read_traj_csv(path: Path) -> TrajectoryFile:
    """The shared ``*.traj.csv`` format (see the data's README)."""
    path = Path(path)
    reader = csv.DictReader(io.StringIO(_open_text(path)))
    need = {"t_s", "lat_deg", "lon_deg"}
    if not need <= set(reader.fieldnames or ()):
        raise TrajectoryError(f"{path}: a traj.csv needs the columns {sorted(need)}")
    rows = [
        (
            _float(r["t_s"]),
            _float(r["lat_deg"]),
            _float(r["lon_deg"]),
            _float(r.get("alt_m")),
            _float(r.get("speed_mps")),
            r.get("track_id") or "",
        )
        for r in reader
    ]
    alt_any = any(np.isfinite(r[3]) for r in rows)
    datum = _datum_from_summary(path) or (DATUM_GNSS if alt_any else DATUM_NONE)
    return _assemble(path, "traj", datum, rows, times_are_relative=True)


# --------------------------------------------------------------------------- IGC


def _igc_coord(s: str, deg_digits: int) -> float:
    deg = int(s[:deg_digits])
    minutes = int(s[deg_digits : deg_digits + 5]) / 1000.0
    v = deg + minutes / 60.0
    return -v if s[-1] in "SW" else v


def _igc_date(line: str) -> dt.date | None:
    s = line[5:].strip()
    if s.upper().startswith("DATE:"):
        s = s[5:]
    s = s.split(",")[0].strip()
    if len(s) < 6 or not s[:6].isdigit():
        return None
    return dt.date(2000 + int(s[4:6]), int(s[2:4]), int(s[0:2]))


def read_igc(path: Path) -> TrajectoryFile:
    """IGC B records; fixes flagged ``V`` (2D or no fix) are dropped."""
    path = Path(path)
    date: dt.date | None = None
    rows: list[tuple[float, float, float, float, float, str]] = []
    press: list[float] = []
    day_offset, last_sec = 0, None
    for n, line in enumerate(_open_text(path).splitlines(), start=1):
        if line.startswith("HFDTE"):
            date = _igc_date(line) or date
        elif line.startswith("B") and len(line) >= 35:
            try:
                sec = int(line[1:3]) * 3600 + int(line[3:5]) * 60 + int(line[5:7])
                if last_sec is not None and sec < last_sec - 12 * 3600:
                    day_offset += 86400  # UTC midnight rollover
                last_sec = sec
                if line[24] != "A":
                    continue
                lat, lon = _igc_coord(line[7:15], 2), _igc_coord(line[15:24], 3)
                gnss_alt, press_alt = float(line[30:35]), float(line[25:30])
            except ValueError as exc:
                raise TrajectoryError(f"{path}:{n}: malformed B record: {exc}") from exc
            rows.append((float(sec + day_offset), lat, lon, gnss_alt, np.nan, ""))
            press.append(press_alt)
    datum = DATUM_GNSS
    if rows and all(r[3] == 0.0 for r in rows) and any(p != 0.0 for p in press):
        # A recorder without GNSS altitude writes zeros there: use the pressure altitude.
        rows = [(r[0], r[1], r[2], p, r[4], r[5]) for r, p in zip(rows, press, strict=True)]
        datum = DATUM_PRESSURE
    base = dt.datetime.combine(date or dt.date(1970, 1, 1), dt.time(), dt.UTC)
    t0 = base + dt.timedelta(seconds=min(r[0] for r in rows)) if rows else None
    return _assemble(path, "igc", datum, rows, t0_utc=t0)


# --------------------------------------------------------------------------- GPX


def _parse_time(s: str) -> float:
    """ISO 8601 (``Z`` or an offset; naive = UTC) -> POSIX seconds."""
    s = s.strip().replace("Z", "+00:00").replace(" ", "T", 1)
    t = dt.datetime.fromisoformat(s)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def read_gpx(path: Path) -> TrajectoryFile:
    """GPX tracks: each ``trk`` is a track; its segments are joined in time order."""
    path = Path(path)
    try:
        root = ET.fromstring(_open_text(path))
    except ET.ParseError as exc:
        raise TrajectoryError(f"{path}: not GPX XML: {exc}") from exc
    rows = []
    trk_n = 0
    for trk in root.iter():
        if trk.tag.rsplit("}", 1)[-1] != "trk":
            continue
        trk_n += 1
        name = next((c.text for c in trk if c.tag.endswith("name") and c.text), None)
        tid = (name or f"trk{trk_n}").strip()
        for pt in trk.iter():
            if pt.tag.rsplit("}", 1)[-1] != "trkpt":
                continue
            kids = {c.tag.rsplit("}", 1)[-1]: c.text for c in pt}
            if not kids.get("time"):
                raise TrajectoryError(f"{path}: track {tid!r} has a point without <time>")
            try:
                t = _parse_time(kids["time"])
            except ValueError as exc:
                raise TrajectoryError(f"{path}: bad <time> {kids['time']!r}") from exc
            rows.append(
                (
                    t,
                    _float(pt.get("lat")),
                    _float(pt.get("lon")),
                    _float(kids.get("ele")),
                    _float(kids.get("speed")),
                    tid,
                )
            )
    if trk_n == 1:
        rows = [(*r[:5], "") for r in rows]
    datum = DATUM_GNSS if any(np.isfinite(r[3]) for r in rows) else DATUM_NONE
    return _assemble(path, "gpx", datum, rows)


# --------------------------------------------------------------------------- DJI CSV


def _dji_time(s: str) -> float:
    s = s.strip()
    for fmt in ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"):
        try:
            return dt.datetime.strptime(s, fmt).replace(tzinfo=dt.UTC).timestamp()
        except ValueError:
            continue
    return _parse_time(s)


_DJI_COLUMNS = {
    # TXTlogToCSVtool names, then Airdata's.
    "time": ("CUSTOM.updateTime", "datetime(utc)"),
    "lat": ("OSD.latitude", "latitude"),
    "lon": ("OSD.longitude", "longitude"),
    "height": ("OSD.height [m]", "height_above_takeoff(meters)", "height_above_takeoff(feet)"),
    "speed": ("CUSTOM.hSpeed [m/s]", "speed(m/s)", "speed(mph)"),
}


def read_dji_csv(path: Path) -> TrajectoryFile:
    """A DJI flight record as CSV; height is barometric, above the take-off point."""
    path = Path(path)
    reader = csv.DictReader(io.StringIO(_open_text(path)))
    names = set(reader.fieldnames or ())
    col = {}
    for key, options in _DJI_COLUMNS.items():
        col[key] = next((c for c in options if c in names), None)
    missing = [k for k in ("time", "lat", "lon") if col[k] is None]
    if missing:
        raise TrajectoryError(f"{path}: no DJI columns for {missing} (have {sorted(names)[:8]}…)")
    h_scale = FT_M if col["height"] and "feet" in col["height"] else 1.0
    v_scale = 0.44704 if col["speed"] and "mph" in col["speed"] else 1.0
    rows = []
    for n, r in enumerate(reader, start=2):
        try:
            t = _dji_time(r[col["time"]])
        except (ValueError, TypeError) as exc:
            raise TrajectoryError(f"{path}:{n}: bad time {r[col['time']]!r}") from exc
        rows.append(
            (
                t,
                _float(r[col["lat"]]),
                _float(r[col["lon"]]),
                _float(r.get(col["height"])) * h_scale if col["height"] else np.nan,
                _float(r.get(col["speed"])) * v_scale if col["speed"] else np.nan,
                "",
            )
        )
    return _assemble(path, "dji", DATUM_TAKEOFF, rows)


# --------------------------------------------------------------------------- ADS-B

# OpenSky REST "states" vector positions.
_STATE_ICAO, _STATE_TPOS, _STATE_LON, _STATE_LAT, _STATE_BARO = 0, 3, 5, 6, 7
_STATE_VEL, _STATE_GEO = 9, 13


def _adsb_records(text: str) -> list[dict]:
    """Normalised records {t, id, lat, lon, baro_m, geo_m, speed} from CSV or JSON."""
    s = text.lstrip()
    if s.startswith(("[", "{")):
        try:
            docs = [json.loads(s)]
        except json.JSONDecodeError:
            docs = [json.loads(line) for line in s.splitlines() if line.strip()]
        items: list = []
        for d in docs:
            items.extend(d if isinstance(d, list) else [d])
        raw: list[dict] = []
        for d in items:
            if isinstance(d, dict) and "states" in d:
                for st in d["states"] or ():
                    raw.append(
                        {
                            "time": st[_STATE_TPOS] if st[_STATE_TPOS] is not None else d["time"],
                            "icao24": st[_STATE_ICAO],
                            "lat": st[_STATE_LAT],
                            "lon": st[_STATE_LON],
                            "baroaltitude": st[_STATE_BARO],
                            "geoaltitude": st[_STATE_GEO],
                            "velocity": st[_STATE_VEL],
                        }
                    )
            elif isinstance(d, dict):
                raw.append(d)
    else:
        raw = list(csv.DictReader(io.StringIO(text)))
    out = []
    for r in raw:
        if "latitude" in r:  # traffic: feet and knots
            t = r.get("timestamp", r.get("time"))
            rec = {
                "lat": _float(r.get("latitude")),
                "lon": _float(r.get("longitude")),
                "baro_m": _float(r.get("altitude")) * FT_M,
                "geo_m": _float(r.get("geoaltitude")) * FT_M,
                "speed": _float(r.get("groundspeed")) * KT_MPS,
                "id": str(r.get("flight_id") or r.get("icao24") or r.get("callsign") or ""),
            }
        else:  # OpenSky: SI units
            t = r.get("time", r.get("timestamp"))
            rec = {
                "lat": _float(r.get("lat")),
                "lon": _float(r.get("lon")),
                "baro_m": _float(r.get("baroaltitude")),
                "geo_m": _float(r.get("geoaltitude")),
                "speed": _float(r.get("velocity")),
                "id": str(r.get("icao24") or r.get("callsign") or ""),
            }
        if isinstance(t, str) and not t.replace(".", "", 1).isdigit():
            rec["t"] = _parse_time(t)
        else:
            tv = _float(t)
            rec["t"] = tv / 1000.0 if tv > 1e11 else tv  # epoch ms (traffic) or s
        out.append(rec)
    return out


def read_adsb(path: Path) -> TrajectoryFile:
    """ADS-B state vectors (OpenSky CSV/JSON or ``traffic`` JSON), one track per flight."""
    path = Path(path)
    try:
        recs = _adsb_records(_open_text(path))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise TrajectoryError(f"{path}: not ADS-B state vectors: {exc}") from exc
    by_id: dict[str, list[dict]] = {}
    for r in recs:
        by_id.setdefault(r["id"], []).append(r)
    rows = []
    geo_only = False
    for tid, rs in by_id.items():
        rs.sort(key=lambda r: r["t"])
        use_baro = any(np.isfinite(r["baro_m"]) for r in rs)
        geo_only |= not use_baro
        prev = None
        for r in rs:
            pos = (r["lat"], r["lon"])
            if pos == prev:
                continue  # a stale state vector repeats the last position
            prev = pos
            alt = r["baro_m"] if use_baro else r["geo_m"]
            rows.append((r["t"], r["lat"], r["lon"], alt, r["speed"], tid))
    return _assemble(path, "adsb", DATUM_GEOMETRIC if geo_only else DATUM_PRESSURE, rows)


# --------------------------------------------------------------------------- dispatch

READERS = {
    "traj": read_traj_csv,
    "igc": read_igc,
    "gpx": read_gpx,
    "dji": read_dji_csv,
    "adsb": read_adsb,
}


def guess_format(path: Path) -> str:
    """The format from the name, else from the first bytes."""
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith(".traj.csv"):
        return "traj"
    if name.endswith(".igc"):
        return "igc"
    if name.endswith(".gpx"):
        return "gpx"
    head = _open_text(Path(path))[:4000]
    if "<gpx" in head:
        return "gpx"
    first = head.splitlines()[0] if head else ""
    if "OSD.latitude" in first or "height_above_takeoff" in first:
        return "dji"
    if first.startswith("t_s,") or "lat_deg" in first:
        return "traj"
    if any(line.startswith("B") and len(line) >= 35 for line in head.splitlines()[:50]) and (
        head.startswith("A")
    ):
        return "igc"
    if "icao24" in head or "latitude" in head or '"states"' in head:
        return "adsb"
    raise TrajectoryError(f"{path}: cannot tell the format; say format=traj|igc|gpx|dji|adsb")


def read_trajectory(path: Path, fmt: str | None = None) -> TrajectoryFile:
    """Read any supported file; ``fmt`` overrides the guess."""
    path = Path(path)
    if not path.is_file():
        raise TrajectoryError(f"{path}: no such file")
    fmt = fmt or guess_format(path)
    if fmt not in READERS:
        raise TrajectoryError(f"{path}: unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    return READERS[fmt](path)
