"""Simulated RF sensor: drone-link detections (contract §2.2) and GNSS-band sweeps (§2.3).

Detections: each report lists the drone links heard in the last second.
Received power is EIRP minus free-space path loss (Friis: 20·log10(4πdf/c),
ITU-R P.525) minus a grazing-angle excess loss, with log-normal shadowing;
a link is reported above the sensor's sensitivity, most of the time (hopping
and bursty links are missed now and then). Direction finding adds a bearing
error that grows as the signal weakens. Remote ID / DroneID fields are decoded
within the broadcast's range, with GPS-grade position noise.

Spectrum: the sensor sweeps the GNSS bands round-robin, L1/E1/B1/G1, then L2,
then L5, one band per third of a second at 1 MHz bins; each band is revisited
every second. A jammer raises its bands by the J/N it causes at the GNSS
receivers less a few dB (the RF sensor's antenna is not the receivers'); an
EMP-like impulse puts a broadband burst into the sweep running at that instant.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from drivers.simulated.base import NS, FeedRow, JammingEpisode, PowerEvent, SimContext, SimOutput
from drivers.simulated.objects import MovingObject, sensor_enu, split_objects
from drivers.topics import stream_topic
from fusion.config import Sensor

# Swept GNSS bands: (name, centre of the first bin in Hz, bins). 1 MHz bins.
GNSS_SWEEPS: tuple[tuple[str, float, int], ...] = (
    ("L1", 1555.0e6, 58),  # 1555-1612 MHz: B1 1561, L1/E1 1575.42, G1 1598-1606
    ("L2", 1212.0e6, 31),  # 1212-1242 MHz: L2 1227.60, G2 1242
    ("L5", 1160.0e6, 33),  # 1160-1192 MHz: L5/E5a 1176.45
)
SWEEP_BIN_HZ = 1.0e6

# What a jammer covers for each band name it jams: (centre Hz, half width of the flat top Hz).
JAMMED_BAND_HZ: dict[str, tuple[float, float]] = {
    "L1": (1575.42e6, 10.0e6),
    "E1": (1575.42e6, 10.0e6),
    "B1": (1561.098e6, 4.0e6),
    "G1": (1602.0e6, 8.0e6),
    "L2": (1227.60e6, 10.0e6),
    "G2": (1246.0e6, 6.0e6),
    "L5": (1176.45e6, 10.0e6),
    "E5": (1191.795e6, 25.0e6),
}


@dataclass(frozen=True, slots=True)
class RfParams:
    report_period_s: float = 1.0
    sensitivity_dbm: float = -95.0
    p_intercept: float = 0.92
    shadowing_db: float = 2.5
    grazing_loss_db: float = 6.0  # extra loss at 0 deg elevation, fading out by 5 deg
    bearing_sigma_deg: tuple[float, float] = (3.0, 5.0)  # strong / weak signal
    p_remote_id: float = 0.85  # a Remote ID frame heard within a report window
    remote_id_eirp_dbm: float = 10.0
    gps_sigma_m: tuple[float, float] = (2.0, 4.0)  # horizontal, vertical
    latency_s: tuple[float, float] = (0.02, 0.10)
    floor_dbm: float = -100.0
    floor_noise_db: float = 0.5
    jammer_margin_db: float = 3.0  # RF sensor sees the jammer this much below the GNSS receivers
    jammer_rolloff_db_per_mhz: float = 8.0
    emp_burst_db: tuple[float, float] = (20.0, 40.0)


def simulate_rf(
    ctx: SimContext,
    sensors: list[Sensor],
    objects: list,
    jamming: list[JammingEpisode],
    power_events: list[PowerEvent],
    params: RfParams = RfParams(),
) -> SimOutput:
    """Detections and GNSS-band sweeps of every RF sensor in ``sensors``."""
    scene = split_objects(objects)
    emitters = [o for o in scene.moving if o.emitter is not None or o.remote_id is not None]
    emps = sorted((e.t_s, e.magnitude) for e in power_events if e.kind == "emp")
    out = SimOutput()
    for sensor in sensors:
        if sensor.kind != "rf":
            continue
        rng = ctx.rng(f"rf:{sensor.id}")
        out.feeds.extend(_detections(ctx, rng, sensor, emitters, params))
        out.feeds.extend(_sweeps(ctx, rng, sensor, jamming, emps, params))
    return out


def _row(site_id: str, sensor: Sensor, stream: str, t_rx_ns: int, payload: bytes) -> FeedRow:
    if sensor.transport == "serial":
        return FeedRow(t_rx_ns, "serial", sensor.id, payload + b"\n")
    return FeedRow(t_rx_ns, "mqtt", stream_topic(site_id, sensor, stream), payload)


def _fspl_db(d_m: np.ndarray, f_hz: float) -> np.ndarray:
    return 20.0 * np.log10(np.maximum(d_m, 1.0)) + 20.0 * math.log10(f_hz) - 147.55


def _detections(
    ctx: SimContext,
    rng: np.random.Generator,
    sensor: Sensor,
    emitters: list[MovingObject],
    p: RfParams,
) -> list[FeedRow]:
    origin = sensor_enu(ctx, sensor)
    phase = float(rng.uniform(0.0, p.report_period_s))
    n = max(0, math.floor((ctx.duration_s - phase) / p.report_period_s) + 1)
    t_rep = phase + p.report_period_s * np.arange(n)
    latency = rng.uniform(*p.latency_s, n)
    per_report: list[list[dict]] = [[] for _ in range(n)]
    for obj in emitters:
        for k, det in _object_detections(ctx, rng, obj, t_rep, origin, p):
            per_report[k].append(det)
    rows = []
    for k in range(n):
        t_ns = ctx.at(float(t_rep[k]))
        dets = sorted(per_report[k], key=lambda d: (d["freq_hz"], d["rssi_dbm"]))
        msg = {"sensor": sensor.id, "t": round(t_ns / NS, 6), "detections": dets}
        payload = json.dumps(msg, separators=(",", ":")).encode()
        rows.append(
            _row(
                ctx.site.site.id,
                sensor,
                "detections",
                t_ns + round(float(latency[k]) * NS),
                payload,
            )
        )
    return rows


def _object_detections(
    ctx: SimContext,
    rng: np.random.Generator,
    obj: MovingObject,
    t_rep: np.ndarray,
    origin: np.ndarray,
    p: RfParams,
) -> list[tuple[int, dict]]:
    idx = np.flatnonzero(obj.alive(t_rep))
    m = len(idx)
    if not m:
        return []
    pos, _, _ = obj.state(t_rep[idx])
    rel = pos - origin
    d = np.linalg.norm(rel, axis=1)
    horiz = np.hypot(rel[:, 0], rel[:, 1])
    bearing = np.degrees(np.arctan2(rel[:, 0], rel[:, 1])) % 360.0
    el = np.degrees(np.arctan2(rel[:, 2], horiz))
    grazing = p.grazing_loss_db * (1.0 - np.clip(el / 5.0, 0.0, 1.0))
    # Draw every variate for every live sample so detections do not shift the stream.
    shadow = rng.normal(0.0, p.shadowing_db, (m, 2))
    caught = rng.random((m, 2))
    brg_noise = rng.standard_normal((m, 2))
    hop = rng.uniform(-0.5, 0.5, m)
    gps = rng.standard_normal((m, 3)) * np.array(
        [p.gps_sigma_m[0], p.gps_sigma_m[0], p.gps_sigma_m[1]]
    )
    out: list[tuple[int, dict]] = []
    rid = obj.remote_id
    rid_fields: list[dict] | None = None
    if rid is not None:
        lat, lon, alt = ctx.frame.to_geodetic(
            pos[:, 0] + gps[:, 0], pos[:, 1] + gps[:, 1], pos[:, 2] + gps[:, 2]
        )
        op_lat, op_lon, _ = ctx.frame.to_geodetic(*rid.operator_xyz)
        rid_heard = (d <= rid.range_m) & (caught[:, 1] < p.p_remote_id)
        rid_fields = [
            {
                "uas_id": rid.uas_id,
                "uas_lat": round(float(a), 7),
                "uas_lon": round(float(b), 7),
                "uas_alt_m": round(float(c), 1),
                "operator_lat": round(float(op_lat), 7),
                "operator_lon": round(float(op_lon), 7),
            }
            if heard
            else {}
            for a, b, c, heard in zip(lat, lon, alt, rid_heard, strict=True)
        ]
    em = obj.emitter
    if em is not None:
        rssi = em.eirp_dbm - _fspl_db(d, em.freq_hz) - grazing + shadow[:, 0]
        det = (rssi >= p.sensitivity_dbm) & (caught[:, 0] < p.p_intercept)
        sigma = _bearing_sigma(rssi, p)
        for j in np.flatnonzero(det):
            freq = em.freq_hz + (
                round(hop[j] * em.hop_span_hz / 1e6) * 1e6 if em.hop_span_hz else 0.0
            )
            entry = {
                "freq_hz": float(freq),
                "bw_hz": em.bw_hz,
                "rssi_dbm": round(float(rssi[j]), 1),
                "bearing_deg": round(float((bearing[j] + sigma[j] * brg_noise[j, 0]) % 360.0), 1),
                "protocol": em.protocol,
            }
            # DJI DroneID rides inside the OcuSync signal: decoded with the link.
            if em.protocol == "ocusync" and rid_fields is not None:
                entry.update(rid_fields[j])
            out.append((int(idx[j]), entry))
    if rid_fields is not None and (em is None or em.protocol != "ocusync"):
        # Broadcast Remote ID over Bluetooth/Wi-Fi beacons: its own detection.
        rssi = p.remote_id_eirp_dbm - _fspl_db(d, 2.402e9) - grazing + shadow[:, 1]
        sigma = _bearing_sigma(rssi, p)
        for j, fields in enumerate(rid_fields):
            if not fields:
                continue
            entry = {
                "freq_hz": 2.402e9,
                "bw_hz": 2.0e6,
                "rssi_dbm": round(float(rssi[j]), 1),
                "bearing_deg": round(float((bearing[j] + sigma[j] * brg_noise[j, 1]) % 360.0), 1),
                "protocol": "remote_id",
                **fields,
            }
            out.append((int(idx[j]), entry))
    return out


def _bearing_sigma(rssi_dbm: np.ndarray, p: RfParams) -> np.ndarray:
    q = np.clip((-75.0 - rssi_dbm) / 20.0, 0.0, 1.0)
    return p.bearing_sigma_deg[0] + (p.bearing_sigma_deg[1] - p.bearing_sigma_deg[0]) * q


def _sweeps(
    ctx: SimContext,
    rng: np.random.Generator,
    sensor: Sensor,
    jamming: list[JammingEpisode],
    emps: list[tuple[float, float]],
    p: RfParams,
) -> list[FeedRow]:
    n_bands = len(GNSS_SWEEPS)
    sweep_s = 1.0 / n_bands
    phase = float(rng.uniform(0.0, 1.0))
    n_total = max(0, math.floor((ctx.duration_s - phase) / sweep_s))
    # Sweep g covers [phase + g/3, phase + (g+1)/3) and reports at its end.
    t_end = phase + sweep_s * (np.arange(n_total) + 1)
    band_of = np.arange(n_total) % n_bands
    latency = rng.uniform(*p.latency_s, n_total)
    burst_at: dict[int, float] = {}
    lo, hi = p.emp_burst_db
    for t_emp, magnitude in emps:
        g = math.floor((t_emp - phase) / sweep_s)
        level = float(rng.uniform(lo, hi)) + 10.0 * math.log10(max(magnitude, 1e-3))
        if 0 <= g < n_total:
            burst_at[g] = max(burst_at.get(g, lo), min(hi, max(lo, level)))
    power: list[list[float] | None] = [None] * n_total
    for b, (_, f0, n_bins) in enumerate(GNSS_SWEEPS):
        gs = np.flatnonzero(band_of == b)
        freqs = f0 + SWEEP_BIN_HZ * np.arange(n_bins)
        ripple = rng.normal(0.0, 0.3, n_bins)  # fixed front-end ripple of this sensor
        noise = rng.normal(0.0, p.floor_noise_db, (len(gs), n_bins))
        level = p.floor_dbm + ripple + noise
        t_mid = t_end[gs] - 0.5 * sweep_s
        excess_lin = np.zeros((len(gs), n_bins))
        for ep in jamming:
            jn = ep.jn_db(t_mid) - p.jammer_margin_db  # dB above floor, per sweep
            if not np.isfinite(jn).any():
                continue
            for band in ep.bands:
                if band not in JAMMED_BAND_HZ:
                    continue
                centre, half = JAMMED_BAND_HZ[band]
                outside_mhz = np.maximum(0.0, np.abs(freqs - centre) - half) / 1e6
                shape = -np.minimum(p.jammer_rolloff_db_per_mhz * outside_mhz, 60.0)
                with np.errstate(over="ignore"):
                    excess_lin += 10.0 ** ((jn[:, None] + shape[None, :]) / 10.0)
        level = level + 10.0 * np.log10(1.0 + excess_lin)
        bursts = [(i, burst_at[g]) for i, g in enumerate(gs.tolist()) if g in burst_at]
        for i, db in bursts:
            # An impulse is broadband but not flat: a few dB of ripple across bins.
            burst = p.floor_dbm + db + rng.normal(0.0, 2.0, n_bins)
            level[i] = 10.0 * np.log10(10.0 ** (level[i] / 10.0) + 10.0 ** (burst / 10.0))
        rounded = np.round(level, 1).tolist()
        for i, g in enumerate(gs.tolist()):
            power[g] = rounded[i]
    rows = []
    for g in range(n_total):
        _, f0, _ = GNSS_SWEEPS[band_of[g]]
        t_ns = ctx.at(float(t_end[g]))
        msg = {
            "sensor": sensor.id,
            "t": round(t_ns / NS, 6),
            "f_start_hz": f0,
            "bin_hz": SWEEP_BIN_HZ,
            "power_dbm": power[g],
        }
        payload = json.dumps(msg, separators=(",", ":")).encode()
        rows.append(
            _row(
                ctx.site.site.id, sensor, "spectrum", t_ns + round(float(latency[g]) * NS), payload
            )
        )
    return rows
