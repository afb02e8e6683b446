#!/usr/bin/env python3
"""Convert the raw trajectory files under raw/ into <name>.traj.csv files.

Each output file sits next to its raw file and has the columns
    t_s, lat_deg, lon_deg, alt_m, speed_mps, track_id
t_s is seconds from the first kept sample of the file (all tracks of a
file share one time base). alt_m and speed_mps are empty where the source
reports none. Rows without a position fix are dropped; nothing else is
smoothed or filtered (see README.md for the per-format rules).

Also writes summary.json with per-file figures.

Needs: numpy, pandas, rdata (for the .rdata file).
Run:   python convert.py
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
RAW = HERE / "raw"
FT = 0.3048
KT = 0.514444

COLUMNS = ["t_s", "lat_deg", "lon_deg", "alt_m", "speed_mps", "track_id"]


# ---------------------------------------------------------------- readers
def read_dji_txtlogtocsv(path: Path) -> pd.DataFrame:
    """DJI flight record exported by TXTlogToCSVtool (10 Hz OSD rows).

    Altitude: OSD.height = barometric height above the take-off point.
    Speed: CUSTOM.hSpeed (horizontal speed, m/s)."""
    d = pd.read_csv(path, low_memory=False, encoding="latin-1")
    t = pd.to_datetime(d["CUSTOM.updateTime"], format="mixed", utc=True)
    out = pd.DataFrame(
        {
            "time": t,
            "lat_deg": pd.to_numeric(d["OSD.latitude"], errors="coerce"),
            "lon_deg": pd.to_numeric(d["OSD.longitude"], errors="coerce"),
            "alt_m": pd.to_numeric(d["OSD.height [m]"], errors="coerce"),
            "speed_mps": pd.to_numeric(d["CUSTOM.hSpeed [m/s]"], errors="coerce"),
            "track_id": "",
        }
    )
    return out


def _igc_coord(s: str, deg_digits: int) -> float:
    deg = int(s[:deg_digits])
    minutes = int(s[deg_digits : deg_digits + 5]) / 1000.0
    v = deg + minutes / 60.0
    return -v if s[-1] in "SW" else v


def read_igc(path: Path) -> pd.DataFrame:
    """IGC flight recorder file (FAI IGC technical specification).

    B records: BHHMMSS DDMMmmm[NS] DDDMMmmm[EW] V PPPPP GGGGG.
    Fix validity 'A' = 3D fix is kept, 'V' (2D / no fix) is dropped.
    Altitude: the GNSS altitude field (the spec asks for height above the
    WGS84 ellipsoid; some recorders write MSL). No speed is recorded."""
    date = None
    rows = []
    day_offset = 0
    last_sec = None
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("HFDTE"):
            s = line[5:].strip()
            if s.upper().startswith("DATE:"):
                s = s[5:]
            s = s.split(",")[0].strip()
            date = dt.date(2000 + int(s[4:6]), int(s[2:4]), int(s[0:2]))
        elif line.startswith("B") and len(line) >= 35:
            hh, mm, ss = int(line[1:3]), int(line[3:5]), int(line[5:7])
            sec = hh * 3600 + mm * 60 + ss
            if last_sec is not None and sec < last_sec - 12 * 3600:
                day_offset += 86400  # UTC midnight rollover
            last_sec = sec
            if line[24] != "A":
                continue
            lat = _igc_coord(line[7:15], 2)
            lon = _igc_coord(line[15:24], 3)
            gnss_alt = float(line[30:35])
            rows.append((sec + day_offset, lat, lon, gnss_alt))
    base = pd.Timestamp(date or dt.date(1970, 1, 1), tz="UTC")
    a = np.array(rows, dtype=float).reshape(-1, 4)
    return pd.DataFrame(
        {
            "time": base + pd.to_timedelta(a[:, 0], unit="s"),
            "lat_deg": a[:, 1],
            "lon_deg": a[:, 2],
            "alt_m": a[:, 3],
            "speed_mps": np.nan,
            "track_id": "",
        }
    )


def read_m2b_gannet(path: Path) -> pd.DataFrame:
    """R data file of CRAN package m2b 1.0: data.frame track_CAGA_005
    (x = lon, y = lat, t = POSIXct seconds, b = behaviour, id). No altitude,
    no speed."""
    import rdata

    d = rdata.read_rda(str(path))["track_CAGA_005"]
    return pd.DataFrame(
        {
            "time": pd.to_datetime(np.asarray(d["t"], dtype=float), unit="s", utc=True),
            "lat_deg": np.asarray(d["y"], dtype=float),
            "lon_deg": np.asarray(d["x"], dtype=float),
            "alt_m": np.nan,
            "speed_mps": np.nan,
            "track_id": np.asarray(d["id"]).astype(str),
        }
    )


def read_traffic_json(path: Path) -> pd.DataFrame:
    """`traffic` library sample (pandas JSON of OpenSky state vectors).

    Altitude: barometric pressure altitude (ft -> m). Speed: groundspeed
    (kt -> m/s). track_id = flight_id. Consecutive repeats of the same
    position within a flight (stale state vectors) are dropped."""
    d = pd.read_json(path)
    d["time"] = pd.to_datetime(d["timestamp"], utc=True)
    d = d.sort_values(["flight_id", "time"], kind="stable")
    same = (
        (d["flight_id"] == d["flight_id"].shift())
        & (d["latitude"] == d["latitude"].shift())
        & (d["longitude"] == d["longitude"].shift())
    )
    d = d[~same]
    return pd.DataFrame(
        {
            "time": pd.to_datetime(d["time"].values, utc=True),
            "lat_deg": d["latitude"].astype(float).values,
            "lon_deg": d["longitude"].astype(float).values,
            "alt_m": d["altitude"].astype(float).values * FT,
            "speed_mps": d["groundspeed"].astype(float).values * KT,
            "track_id": d["flight_id"].astype(str).values,
        }
    )


# name, raw path, reader, altitude datum
FILES = [
    (
        "dji_p4pro_2018-07-04_denmark",
        "drones/dji_p4pro_2018-07-04_denmark.csv",
        read_dji_txtlogtocsv,
        "barometric height above take-off point (OSD.height)",
    ),
    (
        "cape_gannet_CAGA_005_m2b",
        "birds/cape_gannet_CAGA_005_m2b.rdata",
        read_m2b_gannet,
        "none reported",
    ),
    (
        "igc_lib_olsztyn",
        "aircraft/igc_lib_olsztyn.igc",
        read_igc,
        "IGC GNSS altitude (WGS84 ellipsoid per spec)",
    ),
    (
        "igc_lib_new_zealand",
        "aircraft/igc_lib_new_zealand.igc",
        read_igc,
        "IGC GNSS altitude (WGS84 ellipsoid per spec)",
    ),
    (
        "igc_lib_napret",
        "aircraft/igc_lib_napret.igc",
        read_igc,
        "IGC GNSS altitude (WGS84 ellipsoid per spec)",
    ),
    (
        "igc_lib_flight_with_middle_landing",
        "aircraft/igc_lib_flight_with_middle_landing.igc",
        read_igc,
        "IGC GNSS altitude (WGS84 ellipsoid per spec)",
    ),
    (
        "traffic_calfire_2020-09",
        "aircraft/traffic_calfire_2020-09.json.gz",
        read_traffic_json,
        "barometric pressure altitude (ft x 0.3048, standard atmosphere)",
    ),
]


# ---------------------------------------------------------------- helpers
def haversine_m(lat1, lon1, lat2, lon2):
    r = 6371008.8
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dl = np.radians(lon2 - lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * r * np.arcsin(np.sqrt(a))


def finish(df: pd.DataFrame) -> pd.DataFrame:
    """Drop rows without a fix, sort, and set t_s from the first kept row."""
    ok = (
        df["lat_deg"].notna()
        & df["lon_deg"].notna()
        & ~((df["lat_deg"] == 0) & (df["lon_deg"] == 0))
    )
    df = df[ok].copy()
    df = df.sort_values(["time"], kind="stable").reset_index(drop=True)
    t0 = df["time"].iloc[0]
    df["t_s"] = (df["time"] - t0).dt.total_seconds()
    return df


def summarise(df: pd.DataFrame, datum: str, raw: Path) -> dict:
    dts, implied = [], []
    for _, g in df.groupby("track_id", sort=False):
        t = g["t_s"].to_numpy()
        if len(t) < 2:
            continue
        dt_ = np.diff(t)
        dts.append(dt_)
        dist = haversine_m(
            g["lat_deg"].to_numpy()[:-1],
            g["lon_deg"].to_numpy()[:-1],
            g["lat_deg"].to_numpy()[1:],
            g["lon_deg"].to_numpy()[1:],
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            v = dist / dt_
        implied.append(v[dt_ > 0])
    dts = np.concatenate(dts) if dts else np.array([])
    implied = np.concatenate(implied) if implied else np.array([])
    alt = df["alt_m"].dropna()
    spd = df["speed_mps"].dropna()

    def rnd(x, n=3):
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), n)

    return {
        "raw_file": str(raw.relative_to(HERE)),
        "raw_sha256": hashlib.sha256(raw.read_bytes()).hexdigest(),
        "rows": len(df),
        "tracks": int(df["track_id"].nunique()),
        "start_utc": df["time"].iloc[0].isoformat(),
        "span_s": rnd(df["t_s"].iloc[-1], 1),
        "median_interval_s": rnd(np.median(dts)) if len(dts) else None,
        "max_reported_speed_mps": rnd(spd.max()) if len(spd) else None,
        "p99_implied_speed_mps": rnd(np.percentile(implied, 99)) if len(implied) else None,
        "alt_min_m": rnd(alt.min(), 1) if len(alt) else None,
        "alt_max_m": rnd(alt.max(), 1) if len(alt) else None,
        "alt_datum": datum,
    }


def main() -> None:
    summary = {}
    for name, rel, reader, datum in FILES:
        raw = RAW / rel
        df = finish(reader(raw))
        out = raw.parent / f"{name}.traj.csv"
        df[COLUMNS].to_csv(out, index=False, float_format="%.7f", na_rep="")
        summary[name] = summarise(df, datum, raw)
        print(f"{name}: {summary[name]['rows']} rows -> {out.relative_to(HERE)}")
    (HERE / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
