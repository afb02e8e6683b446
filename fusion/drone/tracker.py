"""The multi-target tracker: several radars feed one track picture with stable track ids.

``MultiTargetTracker`` owns the track arrays (struct of arrays, fixed capacity)
and hands each radar scan to one Numba kernel call (``kernels._process``): the
plots are first converted into the site frame with that radar's own position
and accuracy (``measurement``), then every track (whichever radar saw it
before) is predicted to the scan time, gated, assigned, updated, started,
confirmed or deleted. Scans must come in time order across radars, as the
event-time engine delivers them; an older scan is counted and skipped.

Per-scan Python work is kept to a few array allocations and that one call:
the track arrays live in two buffers (``TrackArrays``), the kernel's scratch
is kept between scans and grown geometrically, and ``ScanResult`` builds its
views only when read.

Public track ids are positive integers given at confirmation and never reused
within a tracker's life.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaincinv

from fusion.drone import kernels as K
from fusion.drone.measurement import N_PLOT_FLOATS, ConvertedPlots, RadarGeometry
from fusion.drone.settings import TrackerSettings

NS = 1_000_000_000
# The outputs of an idle scan (no plots, no track): shared, read-only.
_NO_FLOATS = np.zeros(0)
_IDLE_STATS = np.zeros(K.N_STATS, dtype=np.int64)
_NO_FLOATS.flags.writeable = False
_IDLE_STATS.flags.writeable = False


class ScanResult:
    """What one scan did: its plots in the site frame, which track took which plot, what ended.

    ``plots`` (``ConvertedPlots``), ``plot_slot`` ((n_plots,) slot that took, or
    was started by, each plot; -1 for none) and ``stats_array`` (this scan's
    ``kernels.ST_*`` counters) are views of the scan's own output buffers, made
    when first read. ``deleted``: public ids of confirmed tracks deleted by this scan.
    """

    __slots__ = ("_n", "_out_f", "_out_i", "_plots", "deleted", "sensor", "t_ns")

    def __init__(
        self,
        sensor: str,
        t_ns: int,
        out_f: np.ndarray,
        out_i: np.ndarray,
        n: int,
        deleted: list[int],
    ):
        self.sensor = sensor
        self.t_ns = t_ns
        self.deleted = deleted
        self._out_f = out_f
        self._out_i = out_i
        self._n = n
        self._plots: ConvertedPlots | None = None

    @property
    def plots(self) -> ConvertedPlots:
        if self._plots is None:
            self._plots = ConvertedPlots.from_buffers(self._out_f, self._out_i, self._n)
        return self._plots

    @property
    def n_plots(self) -> int:
        return self._n

    @property
    def plot_slot(self) -> np.ndarray:
        return self._out_i[: self._n]

    @property
    def stats_array(self) -> np.ndarray:
        return self._out_i[2 * self._n :]

    @property
    def stats(self) -> dict[str, int]:
        return {name: int(v) for name, v in zip(STAT_NAMES, self.stats_array, strict=True)}


def model_table(s: TrackerSettings) -> np.ndarray:
    """IMM model rows (q_h, q_v, turn rate, sojourn, initial probability), steady model first."""
    rows = [
        [s.q_steady, s.q_steady_vertical, 0.0, s.sojourn_steady_s, 0.0],
        [s.q_manoeuvre, s.q_manoeuvre_vertical, 0.0, s.sojourn_manoeuvre_s, 0.0],
    ]
    if s.turn_rate_dps > 0:
        w = math.radians(s.turn_rate_dps)
        for sign in (1.0, -1.0):
            rows.append([s.q_steady, s.q_steady_vertical, sign * w, s.sojourn_manoeuvre_s, 0.0])
    mdl = np.array(rows, dtype=np.float64)
    mdl[:, K.M_MU0] = 1.0 / len(rows)
    return mdl


def parameter_vector(s: TrackerSettings) -> np.ndarray:
    prm = np.zeros(K.N_PRM)
    # chi-square quantiles, 2·P⁻¹(k/2, p): scipy.special instead of scipy.stats, whose
    # import (0.7 s) alone was a quarter of the service's start-to-ready time.
    prm[K.P_GATE3] = 2.0 * gammaincinv(1.5, s.gate_probability)
    prm[K.P_GATE4] = 2.0 * gammaincinv(2.0, s.gate_probability)
    prm[K.P_SURVIVAL_TAU] = s.survival_tau_s
    prm[K.P_P_INIT] = s.p_init
    prm[K.P_P_INIT2] = max(s.p_init, 0.5)
    prm[K.P_P_CONFIRM] = s.p_confirm
    prm[K.P_CONFIRM_M] = s.confirm_m
    prm[K.P_CONFIRM_N] = s.confirm_n
    prm[K.P_P_DELETE] = s.p_delete
    prm[K.P_P_DELETE_TENT] = min(s.p_delete, s.p_init / 4.0)
    prm[K.P_MAX_POS_SIGMA] = s.max_position_sigma_m
    prm[K.P_MAX_COAST] = s.max_coast_s
    prm[K.P_INIT_VEL_SIGMA] = s.init_speed_sigma_mps
    prm[K.P_MAX_SPEED] = s.max_speed_mps
    prm[K.P_TWO_POINT_DT] = s.two_point_max_gap_s
    prm[K.P_SPAWN_SUPPRESS] = 4.0
    prm[K.P_FEAT_TAU] = s.feature_tau_s
    prm[K.P_HOVER_SPEED] = s.hover_speed_mps
    prm[K.P_MOVED_M] = s.moved_m
    prm[K.P_PD_MIN] = s.pd_min
    prm[K.P_PD_MAX] = s.pd_max
    prm[K.P_P_MAX] = 0.9999
    prm[K.P_GATE_PROB] = s.gate_probability
    prm[K.P_MAX_COAST_TENT] = s.tentative_max_coast_s
    prm[K.P_TENT_MAX_SCANS] = 4 * s.confirm_n
    prm[K.P_TENT_MAX_MISSES] = s.tentative_max_misses
    return prm


def geometry_vector(radar: RadarGeometry) -> np.ndarray:
    """The kernel's view of a radar (``kernels.G_*``): position, rotation, accuracy, scan parameters."""
    geo = np.zeros(K.N_GEO)
    geo[K.G_POS : K.G_POS + 3] = radar.position_enu
    geo[K.G_ROT : K.G_ROT + 9] = np.asarray(radar.rotation, dtype=np.float64).ravel()
    geo[K.G_ACC : K.G_SP] = radar.acc
    geo[K.G_SP : K.N_GEO] = scan_parameters(radar)
    return geo


def scan_parameters(radar: RadarGeometry) -> np.ndarray:
    acc = radar.accuracy
    sp = np.zeros(K.N_SP)
    sp[K.S_POS : K.S_POS + 3] = radar.position_enu
    sp[K.S_THR_LIN] = 10.0 ** (acc.threshold_db / 10.0)
    sp[K.S_PD_DEFAULT] = acc.pd_default
    sp[K.S_MAX_RANGE] = acc.max_range_m
    sp[K.S_MIN_RANGE] = acc.min_range_m
    sp[K.S_EL_MIN] = math.radians(acc.el_min_deg)
    sp[K.S_EL_MAX] = math.radians(acc.el_max_deg)
    sp[K.S_VR_AMB] = 0.0  # plots carry unfolded radial velocities unless a radar says otherwise
    return sp


class TrackArrays:
    """The track picture: one row per slot (struct of arrays, preallocated).

    Every array but ``status`` is a view of one of two buffers, ``tf`` (float64)
    and ``ti`` (int64), laid out as ``kernels._track_views`` reads them, so one
    scan hands the kernel three arrays instead of thirty.
    """

    def __init__(self, capacity: int, n_models: int, _buffers=None):
        n, m = capacity, n_models
        self.capacity, self.n_models = n, m
        nf, ni = K.track_buffer_sizes(n, m)
        if _buffers is None:
            self.status = np.zeros(n, dtype=np.int8)
            self.tf = np.zeros(nf)
            self.ti = np.zeros(ni, dtype=np.int64)
            self.ti[
                K.TRACK_INTS.index("track_plot") * n : (K.TRACK_INTS.index("track_plot") + 1) * n
            ] = -1
            self.ti[len(K.TRACK_INTS) * n] = 1  # next_id
        else:
            self.status, self.tf, self.ti = _buffers
        o = 0
        for name, shape in zip(K.TRACK_FLOATS, K.track_float_widths(m), strict=True):
            size = n * int(np.prod(shape, dtype=np.int64))
            setattr(self, name, self.tf[o : o + size].reshape((n, *shape)))
            o += size
        o = 0
        for name in K.TRACK_INTS:
            setattr(self, name, self.ti[o : o + n])
            o += n
        for name, size in (("next_id", 1), ("high_water", 1), ("n_conf", 1), ("stats", K.N_STATS)):
            setattr(
                self, name, self.ti[o : o + size]
            )  # high_water: slots at or above it are all free
            o += size

    def __deepcopy__(self, memo):
        return TrackArrays(
            self.capacity, self.n_models, (self.status.copy(), self.tf.copy(), self.ti.copy())
        )


STAT_NAMES = (
    "pairs",
    "assigned",
    "new",
    "two_point",
    "confirmed",
    "deleted",
    "pair_overflow",
    "slot_overflow",
    "clusters",
    "max_cluster",
)


class MultiTargetTracker:
    """IMM + GNN tracker over any number of radars (see ``kernels`` for the method)."""

    def __init__(self, radars: dict[str, RadarGeometry], settings: TrackerSettings | None = None):
        settings = settings if settings is not None else TrackerSettings()
        self.settings = settings
        self.radars = dict(radars)
        self.mdl = model_table(settings)
        self.prm = parameter_vector(settings)
        self._geo = {sid: geometry_vector(r) for sid, r in self.radars.items()}
        self._sp = {sid: g[K.G_SP : K.N_GEO] for sid, g in self._geo.items()}
        self.arrays = TrackArrays(settings.capacity, self.mdl.shape[0])
        self._conf_of: TrackArrays | None = None  # arrays whose conf_slots the last scan wrote
        self._hc = 0  # the kernel scratch is sized for this many used slots ...
        self._pc = 0  # ... and plots
        self._grow(0, 0)
        self.t0_ns: int | None = None
        self.t_last_ns: int | None = None
        self.scans = 0
        self.idle_scans = 0  # empty scans with no track alive: the kernel was skipped
        self.skip_idle = True  # (tests turn it off to compare with the kernel's answer)
        self.stale_scans = 0
        self.unknown_radar_scans = 0
        self._totals = np.zeros(K.N_STATS, dtype=np.int64)

    def t_s(self, t_ns: int) -> float:
        """Tracker time (s since its first scan) of an epoch time in ns."""
        return (t_ns - (self.t0_ns or 0)) / NS

    def process_scan(self, sensor: str, t_ns: int, plots: np.ndarray) -> ScanResult | None:
        """Runs one scan of radar ``sensor`` (plots: ``RadarScan.plots``); None if skipped."""
        radar = self.radars.get(sensor)
        if radar is None:
            self.unknown_radar_scans += 1
            return None
        if self.t_last_ns is not None and t_ns < self.t_last_ns:
            self.stale_scans += 1
            return None
        if self.t0_ns is None:
            self.t0_ns = t_ns
        self.t_last_ns = t_ns
        if not (plots.dtype == np.float64 and plots.ndim == 2 and plots.flags.c_contiguous):
            plots = np.ascontiguousarray(plots, dtype=np.float64).reshape(-1, 6)
        n = plots.shape[0]
        a = self.arrays
        hw = int(a.high_water[0])
        if n == 0 and hw == 0 and self.skip_idle:
            # An empty scan while no track is alive (a quiet radar's usual scan, at 10
            # scans/s per radar the common case): the kernel would change nothing.
            self.scans += 1
            self.idle_scans += 1
            return ScanResult(sensor, t_ns, _NO_FLOATS, _IDLE_STATS, 0, [])
        if hw > self._hc or n > self._pc:
            self._grow(hw, n)
        out_f = np.empty(n * N_PLOT_FLOATS)
        out_i = np.empty(2 * n + K.N_STATS, dtype=np.int64)
        n_del = K._process(
            (t_ns - self.t0_ns) / NS,
            plots,
            self._geo[sensor],
            self.prm,
            self.mdl,
            a.status,
            a.tf,
            a.ti,
            self._totals,
            self._wf,
            self._wi,
            self._hc,
            self._pc,
            out_f,
            out_i,
        )
        self._conf_of = a
        self.scans += 1
        deleted = a.deleted[:n_del].tolist() if n_del else []
        return ScanResult(sensor, t_ns, out_f, out_i, n, deleted)

    def _grow(self, hw: int, n: int) -> None:
        """Scratch for at least ``hw`` used slots and ``n`` plots, grown geometrically."""
        if hw > self._hc or self._hc == 0:
            self._hc = min(max(hw, 2 * self._hc, 64), self.arrays.capacity)
        if n > self._pc or self._pc == 0:
            self._pc = max(n, 2 * self._pc, 64)
        nf, ni = K._work_size(self._hc, self._pc, self.mdl.shape[0])
        self._wf = np.empty(nf)
        self._wi = np.empty(ni, dtype=np.int64)

    @property
    def totals(self) -> dict[str, int]:
        """Counters summed over every scan (``max_cluster``: the largest)."""
        return {name: int(v) for name, v in zip(STAT_NAMES, self._totals, strict=True)}

    def expire(self, t_ns: int) -> list[int]:
        """Deletes tracks with no plot for ``max_coast_s`` by ``t_ns`` (a radar gone silent)."""
        if self.t0_ns is None:
            return []
        a = self.arrays
        t = self.t_s(t_ns)
        hw = int(a.high_water[0])
        st = a.status[:hw]
        old = (st != K.FREE) & (t - a.t_last_hit[:hw] > self.settings.max_coast_s)
        if not old.any():
            return []
        gone = a.tid[:hw][old & (st == K.CONFIRMED)].tolist()
        st[old] = K.FREE
        self._conf_of = None
        a.track_plot[:hw][old] = -1
        while hw > 0 and a.status[hw - 1] == K.FREE:
            hw -= 1
        a.high_water[0] = hw
        return gone

    def confirmed_slots(self) -> np.ndarray:
        """Slots of confirmed tracks, in slot order (deterministic for a given input)."""
        a = self.arrays
        if self._conf_of is a:
            return a.conf_slots[: a.n_conf[0]].copy()
        return np.flatnonzero(a.status[: int(a.high_water[0])] == K.CONFIRMED)

    def n_tracks(self) -> tuple[int, int]:
        """(tentative, confirmed) counts."""
        st = self.arrays.status[: int(self.arrays.high_water[0])]
        return int((st == K.TENTATIVE).sum()), int((st == K.CONFIRMED).sum())
