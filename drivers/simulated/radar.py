"""Simulated 3D surveillance radar: one JSON plot message per scan (contract §2.1).

Detection follows the radar equation in its range-scaled form,
SNR = K + σ - 40·log10(R) (dB; Skolnik, *Introduction to Radar Systems*,
3rd ed., §2.2), with Swerling-1 scan-to-scan fluctuation: the instantaneous
SNR is the mean times an exponential variate, so Pd = exp(-T/SNR̄) for a
threshold T (Skolnik §2.8). Plots carry Gaussian measurement noise whose
spread narrows with SNR within the configured bounds. Each scan also holds
residual clutter from the site's clutter sources and Poisson thermal-noise
false alarms whose SNR is the threshold plus an exponential excess.

The model also writes the scenario's radar truth: one row per moving object
or clutter source (``objects.object_truth``) and true positions at every scan.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from drivers.simulated.base import NS, FeedRow, SimContext, SimOutput, TruthTrackRow
from drivers.simulated.objects import (
    ClutterSource,
    MovingObject,
    object_truth,
    sensor_enu,
    split_objects,
)
from fusion.config import Sensor
from fusion.geo import enu_to_polar


@dataclass(frozen=True, slots=True)
class RadarParams:
    scan_period_s: float = 1.0
    k_db: float = 168.0  # SNR of a 0 dBsm target at 1 m; -15 dBsm gives 13 dB at ~3 km
    threshold_db: float = 13.0
    max_snr_db: float = 60.0  # receiver dynamic range: strong near returns saturate
    min_range_m: float = 30.0
    max_range_m: float = 5000.0  # instrumented range
    el_min_deg: float = -5.0
    el_max_deg: float = 40.0
    range_sigma_m: tuple[float, float] = (3.0, 5.0)  # at high / at threshold SNR
    az_sigma_deg: tuple[float, float] = (0.5, 1.0)
    el_sigma_deg: tuple[float, float] = (1.0, 2.0)
    vr_sigma_mps: float = 0.3
    rcs_sigma_db: float = 1.0  # calibration error of the RCS estimate
    false_alarms_per_scan: float = 2.0
    vr_ambiguity_mps: float = 40.0
    latency_s: tuple[float, float] = (0.04, 0.15)


# Plot array columns while building a scan.
_COLS = ("scan", "range_m", "az_deg", "el_deg", "vr_mps", "rcs_dbsm", "snr_db")


def simulate_radar(
    ctx: SimContext,
    sensors: list[Sensor],
    objects: list,
    params: RadarParams = RadarParams(),
) -> SimOutput:
    """Scans of every radar in ``sensors``, plus the truth of ``objects``.

    ``objects`` holds ``MovingObject`` and ``ClutterSource`` items. Truth rows
    and truth tracks are written once, whatever the number of radars; tracks
    are sampled at the first radar's scan times (1 Hz from t0 without radar).
    """
    scene = split_objects(objects)
    out = SimOutput()
    track_times: np.ndarray | None = None
    for sensor in sensors:
        if sensor.kind != "radar":
            continue
        feeds, scan_t = _radar_feeds(ctx, sensor, scene.moving, scene.clutter, params)
        out.feeds.extend(feeds)
        if track_times is None:
            track_times = scan_t
    if track_times is None:
        track_times = np.arange(0.0, ctx.duration_s + 1e-9, 1.0)
    out.truth.extend(object_truth(ctx, scene.moving, scene.clutter))
    out.truth_tracks.extend(truth_tracks(ctx, scene.moving, track_times))
    return out


def truth_tracks(
    ctx: SimContext, objects: list[MovingObject], times_s: np.ndarray
) -> list[TruthTrackRow]:
    rows: list[TruthTrackRow] = []
    for obj in objects:
        t = times_s[obj.alive(times_s)]
        if not len(t):
            continue
        pos, _, _ = obj.state(t)
        t_ns = [ctx.at(v) for v in t.tolist()]
        for tn, (x, y, z) in zip(t_ns, pos.tolist(), strict=True):
            rows.append(TruthTrackRow(tn, obj.object_id, obj.cls, x, y, z))
    rows.sort(key=lambda r: (r.t_ns, r.object_id))
    return rows


def radar_topic(sensor: Sensor) -> str:
    topic = sensor.topic or f"rampart/sim/radar/{sensor.id}/plots"
    parts = topic.split("/")
    if parts[-1] in ("+", "#"):
        parts[-1] = "plots"
    return "/".join(parts)


def _radar_feeds(
    ctx: SimContext,
    sensor: Sensor,
    moving: list[MovingObject],
    clutter: list[ClutterSource],
    p: RadarParams,
) -> tuple[list[FeedRow], np.ndarray]:
    rng = ctx.rng(f"radar:{sensor.id}")
    origin = sensor_enu(ctx, sensor)
    phase = float(rng.uniform(0.0, p.scan_period_s))
    n_scans = max(0, math.floor((ctx.duration_s - phase) / p.scan_period_s) + 1)
    scan_t = phase + p.scan_period_s * np.arange(n_scans)
    first_scan = int(rng.integers(10_000, 5_000_000))
    parts = [np.empty((0, len(_COLS)))]
    for obj in moving:
        parts.append(_object_plots(rng, obj, scan_t, origin, p))
    for src in clutter:
        parts.append(_clutter_plots(rng, src, n_scans, origin, p))
    parts.append(_false_alarms(rng, n_scans, p))
    plots = np.concatenate(parts)
    # Radars report plots in azimuth order within a scan, not per object.
    plots = plots[np.lexsort((plots[:, 2], plots[:, 0]))]
    latency = p.latency_s[0] + (p.latency_s[1] - p.latency_s[0]) * rng.beta(2.0, 5.0, n_scans)
    bounds = np.searchsorted(plots[:, 0], np.arange(n_scans + 1))
    rounded = [
        np.round(plots[:, 1], 1).tolist(),
        np.round(plots[:, 2], 2).tolist(),
        np.round(plots[:, 3], 2).tolist(),
        np.round(plots[:, 4], 2).tolist(),
        np.round(plots[:, 5], 1).tolist(),
        np.round(plots[:, 6], 1).tolist(),
    ]
    keys = ("range_m", "az_deg", "el_deg", "vr_mps", "rcs_dbsm", "snr_db")
    rows_all = [dict(zip(keys, vals, strict=True)) for vals in zip(*rounded, strict=True)]
    topic = radar_topic(sensor)
    feeds = []
    for k in range(n_scans):
        t_ns = ctx.at(float(scan_t[k]))
        msg = {
            "sensor": sensor.id,
            "t": round(t_ns / NS, 6),
            "scan": first_scan + k,
            "plots": rows_all[bounds[k] : bounds[k + 1]],
        }
        payload = json.dumps(msg, separators=(",", ":")).encode()
        t_rx = t_ns + round(float(latency[k]) * NS)
        if sensor.transport == "serial":
            feeds.append(FeedRow(t_rx, "serial", sensor.id, payload + b"\n"))
        else:
            feeds.append(FeedRow(t_rx, "mqtt", topic, payload))
    return feeds, scan_t


def _noise_sigma(snr_db: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Measurement spread: the high-SNR bound above 25 dB, the low bound at threshold."""
    q = np.clip((25.0 - snr_db) / 12.0, 0.0, 1.0)
    return bounds[0] + (bounds[1] - bounds[0]) * q


def _measure(
    rng: np.random.Generator,
    scan: np.ndarray,
    rel: np.ndarray,
    vel_rel: np.ndarray,
    snr_mean_db: np.ndarray,
    p: RadarParams,
) -> np.ndarray:
    """Swerling-1 detection and noisy plots for n candidate returns; rows of _COLS."""
    n = len(scan)
    fluct = rng.exponential(1.0, n)
    noise = rng.standard_normal((n, 5))
    rng_m, az, el = enu_to_polar(rel[:, 0], rel[:, 1], rel[:, 2])
    with np.errstate(divide="ignore"):
        snr = snr_mean_db + 10.0 * np.log10(fluct)
    cover = (
        (rng_m >= p.min_range_m)
        & (rng_m <= p.max_range_m)
        & (el >= p.el_min_deg)
        & (el <= p.el_max_deg)
    )
    det = cover & (snr >= p.threshold_db)
    if not det.any():
        return np.empty((0, len(_COLS)))
    rng_m, az, el, snr, noise = rng_m[det], az[det], el[det], snr[det], noise[det]
    vr = np.sum(vel_rel[det] * rel[det], axis=1) / rng_m
    snr = np.minimum(snr, p.max_snr_db)
    r_meas = np.maximum(1.0, rng_m + _noise_sigma(snr, p.range_sigma_m) * noise[:, 0])
    az_meas = (az + _noise_sigma(snr, p.az_sigma_deg) * noise[:, 1]) % 360.0
    el_meas = el + _noise_sigma(snr, p.el_sigma_deg) * noise[:, 2]
    vr_meas = vr + p.vr_sigma_mps * noise[:, 3]
    rcs_meas = snr - p.k_db + 40.0 * np.log10(r_meas) + p.rcs_sigma_db * noise[:, 4]
    return np.column_stack([scan[det], r_meas, az_meas, el_meas, vr_meas, rcs_meas, snr])


def _object_plots(
    rng: np.random.Generator,
    obj: MovingObject,
    scan_t: np.ndarray,
    origin: np.ndarray,
    p: RadarParams,
) -> np.ndarray:
    idx = np.flatnonzero(obj.alive(scan_t))
    if not len(idx):
        return np.empty((0, len(_COLS)))
    pos, vel, rcs = obj.state(scan_t[idx])
    rel = pos - origin
    r = np.maximum(np.linalg.norm(rel, axis=1), 1.0)
    snr_mean = p.k_db + rcs - 40.0 * np.log10(r)
    return _measure(rng, idx.astype(np.float64), rel, vel, snr_mean, p)


def _clutter_plots(
    rng: np.random.Generator, src: ClutterSource, n_scans: int, origin: np.ndarray, p: RadarParams
) -> np.ndarray:
    shows = rng.random(n_scans) < src.p_plot
    scatter = rng.normal(0.0, 1.0, (n_scans, 3)) * np.array([src.spread_m, src.spread_m, 1.0])
    leaf_vr = rng.normal(0.0, src.doppler_sigma_mps, n_scans)
    idx = np.flatnonzero(shows)
    rel = np.asarray(src.xyz) + scatter[idx] - origin
    r = np.maximum(np.linalg.norm(rel, axis=1), 1.0)
    snr_mean = p.k_db + src.rcs_dbsm - 40.0 * np.log10(r)
    # A line-of-sight velocity equal to leaf_vr: a radial unit vector times it.
    vel = rel / r[:, None] * leaf_vr[idx][:, None]
    return _measure(rng, idx.astype(np.float64), rel, vel, snr_mean, p)


def _false_alarms(rng: np.random.Generator, n_scans: int, p: RadarParams) -> np.ndarray:
    counts = rng.poisson(p.false_alarms_per_scan, n_scans)
    n = int(counts.sum())
    scan = np.repeat(np.arange(n_scans, dtype=np.float64), counts)
    r = rng.uniform(p.min_range_m, p.max_range_m, n)
    az = rng.uniform(0.0, 360.0, n)
    el = rng.uniform(p.el_min_deg, p.el_max_deg, n)
    vr = rng.uniform(-p.vr_ambiguity_mps, p.vr_ambiguity_mps, n)
    # Noise that crossed the threshold: an exponential excess over it (noise power units).
    snr = 10.0 * np.log10(10.0 ** (p.threshold_db / 10.0) + rng.exponential(1.0, n))
    rcs = snr - p.k_db + 40.0 * np.log10(r)
    return np.column_stack([scan, r, az, el, vr, rcs, snr])
