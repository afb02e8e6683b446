"""RF spectrum sweeps -> power in each GNSS band against a learned noise floor.

An RF sensor's sweep (contract §2.3, ``RfSpectrum``) gives power per bin.
For every GNSS signal band the sweep covers, the detector compares the
band's channel power (linear power summed over its bins) with the same sum of
a per-bin noise floor learned from this sensor's own quiet sweeps, in dB: 0
on a quiet sky, +3 dB when the in-band power doubles. A jammer is the only
thing expected to raise these bands: they are protected radionavigation
allocations (ITU Radio Regulations, RR 5.328), where the satellite signals
themselves lie 20-30 dB below the thermal noise floor (Kaplan & Hegarty,
"Understanding GPS/GNSS", 3rd ed., ch. 4).

Sub-bands (main lobes of the open signals, MHz) are grouped into the three
bands an alert names:

| band | sub-band | range |
|---|---|---|
| L1 | B1 (BeiDou B1I) | 1559.05-1563.15 |
| L1 | L1/E1 (GPS L1 C/A, L1C, Galileo E1) | 1563.42-1587.42 |
| L1 | G1 (GLONASS L1 FDMA) | 1597.5-1606.0 |
| L2 | L2 (GPS L2C) | 1215.6-1239.6 |
| L2 | G2 (GLONASS L2 FDMA) | 1242.0-1249.0 |
| L5 | L5/E5a/B2a | 1164.45-1188.45 |
| L5 | E5b/B2b | 1196.9-1215.6 |

A band's rise is the largest rise among its sub-bands in a sweep. A rise
must last ``persist_s`` (two sweeps of that band) to count, so the single
broadband sweep an EMP-like impulse leaves is not taken for a jammer.
Floors learn only from sweeps in which no band is raised, and per bin only
from power within 3 dB of the floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fusion.gnss.features import Persistence
from fusion.gnss.kernels import band_update
from fusion.gnss.series import Series
from fusion.gnss.settings import GnssSettings
from fusion.records import RfSpectrum

NS = 1_000_000_000
SUB_BANDS: tuple[tuple[str, str, float, float], ...] = (
    ("L1", "B1", 1559.052e6, 1563.144e6),
    ("L1", "L1/E1", 1563.42e6, 1587.42e6),
    ("L1", "G1", 1597.5e6, 1606.0e6),
    ("L2", "L2", 1215.6e6, 1239.6e6),
    ("L2", "G2", 1242.0e6, 1249.0e6),
    ("L5", "L5/E5a", 1164.45e6, 1188.45e6),
    ("L5", "E5b", 1196.9e6, 1215.6e6),
)
BANDS = ("L1", "L2", "L5")
MIN_BINS = 2  # a sub-band needs this many bins in a sweep to be measured
FLOOR_GATE_DB = 3.0
FLOOR_TAU_SWEEPS = 300.0
MAX_LAYOUTS = 32  # distinct sweep layouts (start, bin width, bins) learned per sensor
EVIDENCE_FRESH_S = 3.0


@dataclass(slots=True)
class _Layout:
    lo: np.ndarray
    hi: np.ndarray
    groups: list[str]
    names: list[str]
    floor_lin: np.ndarray
    floor_count: np.ndarray
    sweeps: int = 0


@dataclass(slots=True)
class BandState:
    t: float = -math.inf
    rise_db: float = math.nan
    power_dbm: float = math.nan
    sub_band: str = ""
    peak_db: float = 0.0
    corroborates: Persistence = field(default_factory=lambda: Persistence(0.9))
    alone: Persistence = field(default_factory=lambda: Persistence(3.0))


class BandPowerMonitor:
    """GNSS band power of one RF sensor's sweeps."""

    def __init__(self, sensor_id: str, settings: GnssSettings):
        self.id = sensor_id
        self.s = settings
        self._layouts: dict[tuple[float, float, int], _Layout | None] = {}
        self.bands = {b: BandState() for b in BANDS}
        for st in self.bands.values():
            st.corroborates = Persistence(settings.persist_s)
            st.alone = Persistence(settings.rf_only_s)
        self.series = {b: Series(("rise_db",)) for b in BANDS}
        self.sweeps = 0

    def _layout(self, rec: RfSpectrum) -> _Layout | None:
        key = (float(rec.f_start_hz), float(rec.bin_hz), int(rec.power_dbm.size))
        if key in self._layouts:
            return self._layouts[key]
        if len(self._layouts) >= MAX_LAYOUTS or not rec.bin_hz > 0:
            return None
        centres = rec.f_start_hz + rec.bin_hz * np.arange(rec.power_dbm.size)
        lo, hi, groups, names = [], [], [], []
        for group, name, f0, f1 in SUB_BANDS:
            idx = np.flatnonzero((centres >= f0) & (centres < f1))
            if idx.size >= MIN_BINS:
                lo.append(int(idx[0]))
                hi.append(int(idx[-1]) + 1)
                groups.append(group)
                names.append(name)
        layout = None
        if lo:
            n = rec.power_dbm.size
            layout = _Layout(
                np.array(lo, dtype=np.int64),
                np.array(hi, dtype=np.int64),
                groups,
                names,
                np.zeros(n),
                np.zeros(n, dtype=np.int64),
            )
        self._layouts[key] = layout
        return layout

    def on_sweep(self, rec: RfSpectrum) -> bool:
        """Measures one sweep; True when it covered a GNSS band."""
        layout = self._layout(rec)
        if layout is None or not np.isfinite(rec.power_dbm).all():
            return False
        t = rec.t_ns / NS
        learn = not any(
            b.corroborates.active or b.rise_db >= self.s.rf_rise_db / 2
            for b in self.bands.values()
            if t - b.t <= EVIDENCE_FRESH_S
        )
        rise, power = band_update(
            rec.power_dbm,
            layout.lo,
            layout.hi,
            learn,
            FLOOR_GATE_DB,
            FLOOR_TAU_SWEEPS,
            layout.floor_lin,
            layout.floor_count,
        )
        layout.sweeps += 1
        self.sweeps += 1
        best: dict[str, tuple[float, float, str]] = {}
        for g, name, r, p in zip(layout.groups, layout.names, rise, power, strict=True):
            if math.isfinite(r) and (g not in best or r > best[g][0]):
                best[g] = (float(r), float(p), name)
        for g, (r, p, name) in best.items():
            st = self.bands[g]
            st.t, st.rise_db, st.power_dbm, st.sub_band = t, r, p, name
            # The floor needs a few sweeps before a rise means anything.
            warm = layout.sweeps >= 3
            st.corroborates.update(
                t, warm and r >= self.s.rf_rise_db, warm and r >= self.s.rf_rise_db / 2
            )
            st.alone.update(
                t, warm and r >= self.s.rf_only_rise_db, warm and r >= self.s.rf_rise_db
            )
            st.peak_db = max(st.peak_db, r) if st.corroborates.active else 0.0
            self.series[g].add(rec.t_ns, rise_db=r)
        return True

    def raised(self, t: float, alone: bool = False) -> dict[str, BandState]:
        """Bands whose rise counts now (``alone``: the stricter level that stands on its own)."""
        out = {}
        for g, st in self.bands.items():
            if t - st.t > EVIDENCE_FRESH_S:
                continue
            if (st.alone if alone else st.corroborates).active:
                out[g] = st
        return out
