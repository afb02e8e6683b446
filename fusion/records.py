"""Typed records: what decoders hand to the engine.

Every record carries the sensor it came from, its data time ``t_ns`` (when the
thing it describes happened, by the sensor's clock) and ``t_rx_ns`` (when the
edge box received the bytes that completed it). The engine orders records by
``t_ns``; alerts cite ``t_rx_ns`` as their decision time.

Records are plain data: numbers, strings, tuples and NumPy arrays. Nothing here
knows about wires, files or MQTT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def epoch_s_to_ns(t_s: float) -> int:
    """Float epoch seconds (JSON ``t``) to integer ns, rounded to the microsecond.

    A float64 epoch time resolves about 0.24 µs, so the last digits of a plain
    ``t * 1e9`` are noise: ``1767225600.25`` would become ...249999872 ns.
    """
    return round(t_s * 1e6) * 1000


# Columns of RadarScan.plots, in order. Absent optional fields are NaN.
PLOT_COLUMNS = ("range_m", "az_deg", "el_deg", "vr_mps", "rcs_dbsm", "snr_db")


@dataclass(frozen=True, slots=True)
class RadarScan:
    """One radar scan (contract §2.1). An empty ``plots`` array is a valid scan."""

    sensor: str
    t_ns: int
    t_rx_ns: int
    scan: int
    plots: np.ndarray  # float64, shape (n, 6), columns PLOT_COLUMNS

    def dedup_key(self) -> tuple:
        return ("scan", self.scan)


@dataclass(frozen=True, slots=True)
class RfDetection:
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


@dataclass(frozen=True, slots=True)
class RfDetections:
    """One RF detection report (contract §2.2)."""

    sensor: str
    t_ns: int
    t_rx_ns: int
    detections: tuple[RfDetection, ...]

    def dedup_key(self) -> tuple:
        return ("rf_detections", self.t_ns)


@dataclass(frozen=True, slots=True)
class RfSpectrum:
    """One spectrum sweep (contract §2.3); ``t_ns`` is the end of the sweep."""

    sensor: str
    t_ns: int
    t_rx_ns: int
    f_start_hz: float
    bin_hz: float
    power_dbm: np.ndarray  # float64, one value per bin

    def dedup_key(self) -> tuple:
        return ("rf_spectrum", self.t_ns)


@dataclass(frozen=True, slots=True)
class SwitchgearEvent:
    """A switchgear/UPS/generator state change (contract §2.6)."""

    sensor: str
    t_ns: int
    t_rx_ns: int
    event: str
    feed: str | None
    detail: dict[str, Any] = field(default_factory=dict)

    def dedup_key(self) -> tuple:
        return ("switchgear", self.t_ns, self.event, self.feed)


@dataclass(frozen=True, slots=True)
class GnssMessage:
    """One decoded NMEA sentence or UBX frame from a receiver's byte stream (contract §2.4).

    ``t_ns`` is the receive time of the bytes that completed the message: a
    serial receiver's messages carry only time of day / time of week, so the
    edge box's clock is the data time. ``fields`` holds the decoded payload
    with pyubx2's flattened names (``cno_01``, ``jamInd_01``, ...).
    """

    sensor: str
    t_ns: int
    t_rx_ns: int
    protocol: str  # "NMEA" | "UBX" | "RTCM3"
    identity: str  # "GGA", "GSV", "NAV-PVT", "MON-RF", ...
    fields: dict[str, Any]
    raw: bytes

    def dedup_key(self) -> None:
        return None  # a byte stream has no message identity to de-duplicate on


@dataclass(frozen=True, slots=True)
class PowerFrame:
    """One power waveform frame (contract §2.5), scaled to physical units.

    ``lost_frames`` is the number of frames missing between the previous frame
    of this board and this one (0 when contiguous); ``restarted`` marks a
    sequence counter that went backwards (front-end reboot).
    """

    sensor: str
    t_ns: int  # UTC time of the first sample (t0_ns)
    t_rx_ns: int
    board: int
    seq: int
    fs_hz: int
    clipped: bool  # flags bit 0
    burst: bool  # flags bit 1
    channels: tuple[str, ...]
    counts: np.ndarray  # int16, shape (n_samp, n_ch), as sent
    scale: np.ndarray  # float32, shape (n_ch,), units per count
    lost_frames: int = 0
    restarted: bool = False

    @property
    def n_samp(self) -> int:
        return int(self.counts.shape[0])

    @property
    def t_end_ns(self) -> int:
        return self.t_ns + (self.n_samp * 1_000_000_000) // max(self.fs_hz, 1)

    def values(self) -> np.ndarray:
        """Samples in physical units (V or A), float64, shape (n_samp, n_ch)."""
        return self.counts.astype(np.float64) * self.scale.astype(np.float64)

    def clipped_mask(self) -> np.ndarray:
        return (self.counts == -32768) | (self.counts == 32767)

    def dedup_key(self) -> tuple:
        return ("power", self.seq, self.t_ns)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Bytes from a sensor (or an unknown source) that did not decode.

    Rejections flow to the engine like any record so that supervision can tell
    a silent sensor from one that sends only garbage.
    """

    sensor: str  # sensor id, or "unknown" when no configured sensor owns the channel
    t_ns: int  # = t_rx_ns
    t_rx_ns: int
    reason: str
    detail: str

    def dedup_key(self) -> None:
        return None


Record = (
    RadarScan | RfDetections | RfSpectrum | SwitchgearEvent | GnssMessage | PowerFrame | Rejected
)
