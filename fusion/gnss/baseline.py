"""Learned baselines of one receiver: per-satellite C/N0 and robust scalar baselines.

``SatTable`` holds the per-satellite state as arrays (struct of arrays, fixed
capacity) and maps a satellite's identity to its slot; the kernels in
``kernels.py`` do the arithmetic. ``RobustBaseline`` is a rolling median and
MAD of a scalar (AGC count, jamming indicator, satellites tracked, C/N0
spread, ...), learned per receiver because quiet-sky values differ from unit to
unit (AGC counts of 1560-3900 and CW jamming indicators of 2-31 are all normal
somewhere).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fusion.gnss.kernels import observe_sats, ring_median_mad, ring_push, summarise_cn0

MAD_TO_SIGMA = 1.4826  # sigma of a Gaussian from its median absolute deviation


@dataclass(frozen=True, slots=True)
class SatParams:
    tau_s: float = 120.0  # per-satellite baseline time constant
    gate_db: float = 3.0  # a report further than max(gate_db, 3 sigma) is not learned
    reseed_s: float = 60.0  # a deviation lasting this long on a quiet receiver re-seeds
    prior_var: float = 4.0  # dB^2: variance assumed for a new satellite (sigma 2 dB)
    bin_width_deg: float = 5.0
    stale_s: float = 2.5  # a satellite not reported for this long is out of the summary
    min_count: int = 3  # reports before a satellite's baseline is used
    lost_elev_deg: float = 15.0  # an untracked satellite above this elevation counts as lost
    sat_drop_db: float = 2.0  # a satellite this far below baseline has dropped
    change_db: float = 2.5  # minimum change (with 3 sigma) for the spoofing cluster
    cluster_width_db: float = 2.0
    track_floor_dbhz: float = 12.0  # a lost satellite is taken to be at most here


class SatTable:
    """Per-satellite C/N0 state of one receiver, ``capacity`` slots, slot reuse by age."""

    def __init__(self, params: SatParams = SatParams(), capacity: int = 192):
        self.params = params
        self.capacity = int(capacity)
        n = self.capacity
        self.base = np.zeros(n)
        self.var = np.zeros(n)
        self.count = np.zeros(n, dtype=np.int64)
        self.last_cno = np.zeros(n)
        self.last_elev = np.full(n, np.nan)
        self.last_t = np.full(n, -np.inf)
        self.out_since = np.full(n, np.nan)
        n_bins = math.ceil(90.0 / params.bin_width_deg) + 1
        self.bin_mean = np.zeros(n_bins)
        self.bin_count = np.zeros(n_bins, dtype=np.int64)
        self._slot: dict[tuple, int] = {}
        self._key: list[tuple | None] = [None] * n

    def slot(self, key: tuple) -> int:
        """The slot of satellite ``key``; a new satellite takes a free or the stalest slot."""
        s = self._slot.get(key)
        if s is not None:
            return s
        if len(self._slot) < self.capacity:
            s = len(self._slot)
        else:
            s = int(np.argmin(self.last_t))  # first minimum: deterministic
            del self._slot[self._key[s]]
        self._slot[key] = s
        self._key[s] = key
        self.base[s] = self.var[s] = self.last_cno[s] = 0.0
        self.count[s] = 0
        self.last_elev[s] = np.nan
        self.last_t[s] = -np.inf
        self.out_since[s] = np.nan
        return s

    def observe(self, keys: list[tuple], cno, elev, t_s: float, learn: bool) -> np.ndarray:
        slots = np.fromiter((self.slot(k) for k in keys), dtype=np.int64, count=len(keys))
        return observe_sats(
            self, slots, np.asarray(cno, float), np.asarray(elev, float), t_s, learn
        )

    def summary(self, t_s: float) -> np.ndarray:
        return summarise_cn0(self, t_s)

    def expected_cno(self, elev_deg: float) -> float:
        """The learned C/N0 at an elevation (NaN before that bin has 5 reports)."""
        if not 0.0 <= elev_deg <= 90.0:
            return math.nan
        b = min(int(elev_deg / self.params.bin_width_deg), self.bin_mean.size - 1)
        return float(self.bin_mean[b]) if self.bin_count[b] >= 5 else math.nan


class RobustBaseline:
    """Rolling median and MAD of the last ``window`` learned samples of a scalar.

    ``deviation(x)`` is x minus the median in sigmas, with sigma floored at
    ``floor_abs`` and ``floor_rel`` of the median's magnitude (a unit whose AGC
    never moves has MAD 0; a change of one count is not an event). While fewer
    than ``young_n`` samples are learned the relative floor is ``young_rel``:
    a median of two or three samples says little about the spread.
    """

    def __init__(
        self,
        window: int = 120,
        min_samples: int = 3,
        floor_abs: float = 1.0,
        floor_rel: float = 0.0,
        young_n: int = 0,
        young_rel: float = 0.0,
    ):
        self.buf = np.zeros(max(int(window), 1))
        self.state = np.zeros(2, dtype=np.int64)
        self.min_samples = max(int(min_samples), 1)
        self.floor_abs = float(floor_abs)
        self.floor_rel = float(floor_rel)
        self.young_n = int(young_n)
        self.young_rel = float(young_rel)
        self._cache: tuple[float, float] | None = None

    def learn(self, x: float) -> None:
        if math.isfinite(x):
            ring_push(self.buf, self.state, x)
            self._cache = None

    @property
    def n(self) -> int:
        return int(self.state[1])

    @property
    def ready(self) -> bool:
        return self.n >= self.min_samples

    def median_sigma(self) -> tuple[float, float]:
        if self._cache is None:
            med, mad = ring_median_mad(self.buf, self.state)
            rel = self.young_rel if self.n < self.young_n else self.floor_rel
            sigma = max(MAD_TO_SIGMA * mad, self.floor_abs, rel * abs(med))
            self._cache = (med, sigma)
        return self._cache

    def deviation(self, x: float) -> float:
        """(x - median) / sigma, NaN before ``min_samples`` or for a non-finite x."""
        if not self.ready or not math.isfinite(x):
            return math.nan
        med, sigma = self.median_sigma()
        return (x - med) / sigma

    @property
    def median(self) -> float:
        return self.median_sigma()[0] if self.ready else math.nan
