"""Broadband RF bursts in spectrum sweeps (contract §2.3): corroboration for an EMP-like event.

An EMP-like pulse radiates across the whole spectrum at once, so the sweep
running at that instant comes back raised in nearly every bin together,
where a jammer raises a band and ramps over seconds and a drone link occupies
a few bins. A sweep is a *broadband burst* when, against the previous sweep
of the same band by the same sensor, at least ``min_fraction`` of its bins
rose by ``min_rise_db`` or more and the median rise is at least
``min_rise_db``. Comparing with the previous sweep of the same band (not with
a long average) makes a slowly ramping jammer invisible here; only a jump
between two visits of the band counts.

A sweep's ``t`` is its end (contract §2.3); its start is taken as the end of
the sensor's previous sweep (sweeps run back to back), at most
``max_sweep_s`` before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusion.records import RfSpectrum

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class RfBurst:
    sensor: str
    t_start_ns: int
    t_end_ns: int
    f_lo_hz: float
    f_hi_hz: float
    median_rise_db: float
    fraction: float

    def as_dict(self) -> dict:
        return {
            "sensor": self.sensor,
            "t_start_ns": self.t_start_ns,
            "t_end_ns": self.t_end_ns,
            "f_lo_hz": self.f_lo_hz,
            "f_hi_hz": self.f_hi_hz,
            "median_rise_db": round(self.median_rise_db, 1),
            "bins_raised": round(self.fraction, 3),
        }


class RfBurstWatch:
    def __init__(
        self, min_rise_db: float = 10.0, min_fraction: float = 0.9, max_sweep_s: float = 2.0
    ):
        self.min_rise_db = min_rise_db
        self.min_fraction = min_fraction
        self.max_sweep_ns = int(max_sweep_s * NS)
        self._last_band: dict[tuple[str, float, float, int], np.ndarray] = {}
        self._last_end: dict[str, int] = {}

    def on_sweep(self, sp: RfSpectrum) -> RfBurst | None:
        power = np.asarray(sp.power_dbm, dtype=np.float64)
        key = (sp.sensor, round(sp.f_start_hz), round(sp.bin_hz), len(power))
        prev_end = self._last_end.get(sp.sensor)
        self._last_end[sp.sensor] = sp.t_ns
        before = self._last_band.get(key)
        self._last_band[key] = power
        if before is None or len(power) < 4:
            return None
        rise = power - before
        ok = np.isfinite(rise)
        if not ok.any():
            return None
        rise = rise[ok]
        fraction = float(np.mean(rise >= self.min_rise_db))
        median = float(np.median(rise))
        if fraction < self.min_fraction or median < self.min_rise_db:
            return None
        start = sp.t_ns - self.max_sweep_ns
        if prev_end is not None and prev_end < sp.t_ns:
            start = max(start, prev_end)
        half = sp.bin_hz / 2.0
        return RfBurst(
            sensor=sp.sensor,
            t_start_ns=start,
            t_end_ns=sp.t_ns,
            f_lo_hz=float(sp.f_start_hz - half),
            f_hi_hz=float(sp.f_start_hz + (len(power) - 1) * sp.bin_hz + half),
            median_rise_db=median,
            fraction=fraction,
        )
