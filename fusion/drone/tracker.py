"""The multi-target tracker: several radars feed one track picture with stable track ids.

``MultiTargetTracker`` owns the track arrays (struct of arrays, fixed capacity)
and hands each radar scan to the Numba kernel ``kernels._scan``: the plots are
first converted into the site frame with that radar's own position and
accuracy (``measurement``), then every track (whichever radar saw it before)
is predicted to the scan time, gated, assigned, updated, started, confirmed or
deleted. Scans must come in time order across radars, as the event-time engine
delivers them; an older scan is counted and skipped.

Public track ids are positive integers given at confirmation and never reused
within a tracker's life.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from fusion.drone import kernels as K
from fusion.drone.measurement import ConvertedPlots, RadarGeometry, convert_plots
from fusion.drone.settings import TrackerSettings

NS = 1_000_000_000


@dataclass(slots=True)
class ScanResult:
    """What one scan did: its plots in the site frame, which track took which plot, what ended."""

    sensor: str
    t_ns: int
    plots: ConvertedPlots
    plot_slot: np.ndarray  # (n_plots,) slot that took (or was started by) each plot, -1 for none
    deleted: list[int]  # public ids of confirmed tracks deleted by this scan
    stats_array: np.ndarray  # kernels.ST_* counters of this scan

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
    prm[K.P_GATE3] = chi2.ppf(s.gate_probability, 3)
    prm[K.P_GATE4] = chi2.ppf(s.gate_probability, 4)
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
    """The track picture: one row per slot (struct of arrays, preallocated)."""

    def __init__(self, capacity: int, n_models: int):
        n, m = capacity, n_models
        self.status = np.zeros(n, dtype=np.int8)
        self.tid = np.zeros(n, dtype=np.int64)
        self.hist = np.zeros(n, dtype=np.int64)
        self.n_scans = np.zeros(n, dtype=np.int64)
        self.n_hits = np.zeros(n, dtype=np.int64)
        self.exist = np.zeros(n)
        self.t_state = np.zeros(n)
        self.t_last_hit = np.zeros(n)
        self.t_birth = np.zeros(n)
        self.xs = np.zeros((n, m, 6))
        self.Ps = np.zeros((n, m, 6, 6))
        self.mu = np.zeros((n, m))
        self.xc = np.zeros((n, 6))
        self.Pc = np.zeros((n, 6, 6))
        self.birth_z = np.zeros((n, 3))
        self.birth_R = np.zeros((n, 3, 3))
        self.birth_vr = np.zeros(n)
        self.birth_los = np.zeros((n, 3))
        self.feats = np.zeros((n, K.N_FEAT))
        self.track_plot = np.full(n, -1, dtype=np.int64)
        self.next_id = np.ones(1, dtype=np.int64)
        self.high_water = np.zeros(1, dtype=np.int64)  # slots at or above it are all free
        self.deleted = np.zeros(n, dtype=np.int64)
        self.stats = np.zeros(K.N_STATS, dtype=np.int64)


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
        self._sp = {sid: scan_parameters(r) for sid, r in self.radars.items()}
        self.arrays = TrackArrays(settings.capacity, self.mdl.shape[0])
        self.t0_ns: int | None = None
        self.t_last_ns: int | None = None
        self.scans = 0
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
        conv = convert_plots(plots, radar)
        a = self.arrays
        plot_slot = np.empty(conv.n, dtype=np.int64)
        n_del = K._scan(
            self.t_s(t_ns),
            self._sp[sensor],
            conv.z,
            conv.R,
            conv.vr,
            conv.vr_var,
            conv.has_vr,
            conv.los,
            conv.clutter_density,
            conv.range_m,
            conv.snr_lin,
            conv.rcs_lin,
            self.prm,
            self.mdl,
            a.status,
            a.tid,
            a.hist,
            a.n_scans,
            a.n_hits,
            a.exist,
            a.t_state,
            a.t_last_hit,
            a.t_birth,
            a.xs,
            a.Ps,
            a.mu,
            a.xc,
            a.Pc,
            a.birth_z,
            a.birth_R,
            a.birth_vr,
            a.birth_los,
            a.feats,
            a.track_plot,
            plot_slot,
            a.next_id,
            a.deleted,
            a.stats,
            self._totals,
            a.high_water,
        )
        self.scans += 1
        deleted = a.deleted[:n_del].tolist() if n_del else []
        return ScanResult(sensor, t_ns, conv, plot_slot, deleted, a.stats.copy())

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
        a.track_plot[:hw][old] = -1
        while hw > 0 and a.status[hw - 1] == K.FREE:
            hw -= 1
        a.high_water[0] = hw
        return gone

    def confirmed_slots(self) -> np.ndarray:
        """Slots of confirmed tracks, in slot order (deterministic for a given input)."""
        a = self.arrays
        return np.flatnonzero(a.status[: int(a.high_water[0])] == K.CONFIRMED)

    def n_tracks(self) -> tuple[int, int]:
        """(tentative, confirmed) counts."""
        st = self.arrays.status[: int(self.arrays.high_water[0])]
        return int((st == K.TENTATIVE).sum()), int((st == K.CONFIRMED).sum())
