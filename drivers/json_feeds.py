"""Decoders for the JSON sensor streams of contract §2.1–2.3 and §2.6.

Payloads are validated with msgspec against typed schemas (unknown fields are
ignored, as the contract says). Bad-input policy, per message:

- not UTF-8 JSON, or not an object: ``bad_json``; the message is dropped;
- a required field missing or of the wrong type: ``invalid``; dropped;
- ``sensor`` naming a different sensor than the one that owns the topic:
  ``sensor_mismatch``; dropped (one sensor must not speak for another). This
  is checked even when the rest of the payload does not fit the topic's
  schema: a radar scan on the RF sensor's topic is impersonation;
- a time that is not a plausible epoch (before 2000 or after 2100): ``bad_time``;
- one radar plot (or RF detection) with absurd values (negative range,
  azimuth outside [-360, 360], elevation outside [-90, 90], non-finite
  numbers, speeds beyond 1000 m/s): that item alone is dropped and counted
  as ``invalid_plot`` / ``invalid_detection``; the rest of the scan is kept;
- arrays and objects nested deeper than ``[limits] max_json_depth``:
  ``too_deep``, found by one pass over the bytes before msgspec parses them
  (msgspec recurses per level: 100,000 levels would raise RecursionError);
- more plots, detections or spectrum bins than ``[limits]`` allows:
  ``over_limit``; the whole message is dropped (a scan cut short would be a
  false picture).
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from drivers.limits import Limits, json_depth
from fusion.records import (
    RadarScan,
    Record,
    Rejected,
    RfDetection,
    RfDetections,
    RfSpectrum,
    SwitchgearEvent,
    epoch_s_to_ns,
)

T_MIN_S = 946_684_800.0  # 2000-01-01
T_MAX_S = 4_102_444_800.0  # 2100-01-01
SWITCHGEAR_EVENTS = (
    "ats_transfer",
    "breaker_trip",
    "breaker_close",
    "ups_on_battery",
    "ups_on_mains",
    "generator_start",
    "generator_stop",
)


class _Plot(msgspec.Struct):
    range_m: float
    az_deg: float
    el_deg: float | None = None
    vr_mps: float | None = None
    rcs_dbsm: float | None = None
    snr_db: float | None = None


class _RadarMsg(msgspec.Struct):
    sensor: str
    t: float
    scan: int
    plots: list[_Plot]


class _RfDet(msgspec.Struct):
    freq_hz: float
    rssi_dbm: float
    bw_hz: float | None = None
    bearing_deg: float | None = None
    protocol: str | None = None
    uas_id: str | None = None
    uas_lat: float | None = None
    uas_lon: float | None = None
    uas_alt_m: float | None = None
    operator_lat: float | None = None
    operator_lon: float | None = None


class _RfMsg(msgspec.Struct):
    sensor: str
    t: float
    detections: list[_RfDet]


class _SpectrumMsg(msgspec.Struct):
    sensor: str
    t: float
    f_start_hz: float
    bin_hz: float
    power_dbm: list[float]


class _SwitchgearMsg(msgspec.Struct):
    sensor: str
    t: float
    event: str
    feed: str | None = None
    detail: dict = {}


class _Claim(msgspec.Struct):
    sensor: str


_claim_decoder = msgspec.json.Decoder(_Claim)


def _claimed_sensor(payload: bytes) -> str | None:
    try:
        return _claim_decoder.decode(payload).sensor
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None


def _finite(*xs: float | None) -> bool:
    return all(x is None or math.isfinite(x) for x in xs)


class _JsonDecoder:
    """Shared framing for one JSON stream: parse, check sensor and time, then convert."""

    schema: type = msgspec.Struct

    def __init__(self, sensor: str, source: str, limits: Limits | None = None):
        self.sensor = sensor
        self.source = source
        self.limits = limits if limits is not None else Limits()
        self._decoder = msgspec.json.Decoder(self.schema)

    def _reject(self, t_rx_ns: int, reason: str, detail: str) -> Rejected:
        return Rejected(self.sensor, t_rx_ns, t_rx_ns, reason, f"{self.source}: {detail}")

    def _over_limit(self, t_rx_ns: int, limit: str, what: str, value: int) -> list[Record]:
        cap = getattr(self.limits, limit)
        return [
            self._reject(t_rx_ns, "over_limit", f"{value} {what} exceeds limits.{limit} = {cap}")
        ]

    def feed(self, payload: bytes, t_rx_ns: int) -> list[Record]:
        limits = self.limits
        if len(payload) > limits.max_payload_bytes:
            return self._over_limit(t_rx_ns, "max_payload_bytes", "bytes", len(payload))
        depth = json_depth(payload, limits.max_json_depth)
        if depth > limits.max_json_depth:
            return [
                self._reject(
                    t_rx_ns,
                    "too_deep",
                    f"nesting deeper than limits.max_json_depth = {limits.max_json_depth}"
                    f" ({len(payload)} bytes)",
                )
            ]
        try:
            msg = self._decoder.decode(payload)
        except RecursionError:
            # Only if the depth limit is set beyond what msgspec can parse.
            return [self._reject(t_rx_ns, "too_deep", f"too deep to parse ({len(payload)} bytes)")]
        except msgspec.ValidationError as exc:
            # Another sensor's message on this topic is impersonation first, malformed second.
            claimed = _claimed_sensor(payload)
            if claimed is not None and claimed != self.sensor:
                return [
                    self._reject(t_rx_ns, "sensor_mismatch", f"payload says sensor {claimed!r}")
                ]
            return [self._reject(t_rx_ns, "invalid", str(exc))]
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            # msgspec raises UnicodeDecodeError for invalid UTF-8 inside a string
            # (found by the fuzzer: benchmarks/fuzz_decoders.py).
            return [self._reject(t_rx_ns, "bad_json", f"{exc} ({len(payload)} bytes)")]
        if msg.sensor != self.sensor:
            return [self._reject(t_rx_ns, "sensor_mismatch", f"payload says sensor {msg.sensor!r}")]
        if not (math.isfinite(msg.t) and T_MIN_S <= msg.t <= T_MAX_S):
            return [self._reject(t_rx_ns, "bad_time", f"t={msg.t!r} is not a plausible epoch time")]
        return self._convert(msg, epoch_s_to_ns(msg.t), t_rx_ns)

    def flush(self, t_rx_ns: int) -> list[Record]:
        return []  # one payload is one message: nothing is ever left unfinished

    def _convert(self, msg, t_ns: int, t_rx_ns: int) -> list[Record]:
        raise NotImplementedError


class RadarPlotsDecoder(_JsonDecoder):
    schema = _RadarMsg

    def _convert(self, msg: _RadarMsg, t_ns: int, t_rx_ns: int) -> list[Record]:
        if len(msg.plots) > self.limits.max_plots_per_scan:
            return self._over_limit(t_rx_ns, "max_plots_per_scan", "plots", len(msg.plots))
        out: list[Record] = []
        rows = []
        nan = math.nan
        for i, p in enumerate(msg.plots):
            ok = (
                _finite(p.range_m, p.az_deg, p.el_deg, p.vr_mps, p.rcs_dbsm, p.snr_db)
                and 0.0 <= p.range_m <= 1.0e6
                and -360.0 <= p.az_deg <= 360.0
                and (p.el_deg is None or -90.0 <= p.el_deg <= 90.0)
                and (p.vr_mps is None or abs(p.vr_mps) <= 1000.0)
            )
            if not ok:
                out.append(
                    self._reject(t_rx_ns, "invalid_plot", f"scan {msg.scan} plot {i}: {p!r}")
                )
                continue
            rows.append(
                (
                    p.range_m,
                    p.az_deg % 360.0,
                    nan if p.el_deg is None else p.el_deg,
                    nan if p.vr_mps is None else p.vr_mps,
                    nan if p.rcs_dbsm is None else p.rcs_dbsm,
                    nan if p.snr_db is None else p.snr_db,
                )
            )
        plots = np.array(rows, dtype=np.float64).reshape(len(rows), 6)
        out.append(RadarScan(self.sensor, t_ns, t_rx_ns, msg.scan, plots))
        return out


class RfDetectionsDecoder(_JsonDecoder):
    schema = _RfMsg

    def _convert(self, msg: _RfMsg, t_ns: int, t_rx_ns: int) -> list[Record]:
        n = len(msg.detections)
        if n > self.limits.max_detections_per_message:
            return self._over_limit(t_rx_ns, "max_detections_per_message", "detections", n)
        out: list[Record] = []
        dets = []
        for i, d in enumerate(msg.detections):
            ok = (
                _finite(
                    d.freq_hz, d.rssi_dbm, d.bw_hz, d.bearing_deg, d.uas_lat, d.uas_lon, d.uas_alt_m
                )
                and _finite(d.operator_lat, d.operator_lon)
                and 0.0 < d.freq_hz < 1.0e12
                and -250.0 <= d.rssi_dbm <= 50.0
                and (d.bearing_deg is None or -360.0 <= d.bearing_deg <= 360.0)
                and (d.uas_lat is None or -90.0 <= d.uas_lat <= 90.0)
                and (d.uas_lon is None or -180.0 <= d.uas_lon <= 180.0)
                and (d.operator_lat is None or -90.0 <= d.operator_lat <= 90.0)
                and (d.operator_lon is None or -180.0 <= d.operator_lon <= 180.0)
            )
            if not ok:
                out.append(self._reject(t_rx_ns, "invalid_detection", f"detection {i}: {d!r}"))
                continue
            bearing = None if d.bearing_deg is None else d.bearing_deg % 360.0
            dets.append(
                RfDetection(
                    d.freq_hz,
                    d.rssi_dbm,
                    d.bw_hz,
                    bearing,
                    d.protocol,
                    d.uas_id,
                    d.uas_lat,
                    d.uas_lon,
                    d.uas_alt_m,
                    d.operator_lat,
                    d.operator_lon,
                )
            )
        out.append(RfDetections(self.sensor, t_ns, t_rx_ns, tuple(dets)))
        return out


class RfSpectrumDecoder(_JsonDecoder):
    schema = _SpectrumMsg

    def _convert(self, msg: _SpectrumMsg, t_ns: int, t_rx_ns: int) -> list[Record]:
        if len(msg.power_dbm) > self.limits.max_bins_per_sweep:
            return self._over_limit(t_rx_ns, "max_bins_per_sweep", "bins", len(msg.power_dbm))
        power = np.asarray(msg.power_dbm, dtype=np.float64)
        if not (
            _finite(msg.f_start_hz, msg.bin_hz)
            and msg.f_start_hz > 0
            and msg.bin_hz > 0
            and power.size > 0
            and np.isfinite(power).all()
            and np.abs(power).max() <= 300.0
        ):
            return [
                self._reject(
                    t_rx_ns,
                    "invalid",
                    f"spectrum f_start={msg.f_start_hz} bin={msg.bin_hz} n={power.size}",
                )
            ]
        return [RfSpectrum(self.sensor, t_ns, t_rx_ns, msg.f_start_hz, msg.bin_hz, power)]


class SwitchgearEventsDecoder(_JsonDecoder):
    schema = _SwitchgearMsg

    def _convert(self, msg: _SwitchgearMsg, t_ns: int, t_rx_ns: int) -> list[Record]:
        if msg.event not in SWITCHGEAR_EVENTS:
            return [self._reject(t_rx_ns, "invalid", f"unknown event {msg.event!r}")]
        return [SwitchgearEvent(self.sensor, t_ns, t_rx_ns, msg.event, msg.feed, dict(msg.detail))]
