"""Per-receiver features, from the receiver's own messages, updated as they arrive.

One ``ReceiverMonitor`` per configured GNSS receiver turns its decoded
messages (``GnssMessage``: NMEA and UBX, pyubx2/pynmeagps field names, or raw
bytes for the repeated-block messages of ``ubx_blocks``) into the quantities
the detector judges, each against a baseline learned from the same receiver:

- C/N0 per satellite against its own rolling baseline and the per-elevation
  expectation (``baseline.SatTable``): the common-mode drop (median residual
  over satellites), the share of satellites that dropped or were lost, how
  many are tracked and above 30 dB-Hz, the spread across satellites and the
  densest cluster of satellites that changed (spoofing).
- The static sky check (``kernels.sky_check``), which needs no baseline and
  so catches a simulator or spoofer present from the first byte: C/N0 nearly
  the same on every satellite over a wide elevation span and not rising with
  elevation (``flat_sky``), or satellites tracked below the horizon
  (``below_horizon``). Judged only while the receiver reports a valid fix
  (its elevations then come from a position it trusts), with at least
  ``sky_min_satellites`` over ``sky_min_elev_span_deg``, so a receiver that
  is still acquiring, or an obstructed antenna seeing a patch of sky, is not
  judged.
  Sources, best first: UBX NAV-SAT, NAV-SVINFO, NMEA GSV (per talker and
  signal, a group complete at its last sentence).
- Receiver power indicators per RF block: AGC count, CW jamming indicator,
  noise per ms, jamming state and antenna status (MON-RF, or MON-HW as one
  block), against rolling robust baselines.
- Fix: type, satellites used, horizontal accuracy (NAV-PVT hAcc, NAV-POSLLH,
  NAV-SOL pAcc; NMEA GST, else HDOP times ``nmea_uere_m``).
- Position offset from the reference position: the sensor's surveyed
  lat/lon/alt_m from the configuration, or for a sensor configured without
  one, the median of its first ``self_survey_s`` of fixes (self-survey).
  Receivers configured ``mobile = true`` have no reference position.
- Clock bias steps against the reported drift (NAV-CLOCK), ignoring the
  1 ms steps of receivers that keep their clock within ±0.5 ms.
- The receiver's own flags: NAV-STATUS spoofDetState, SEC-SIG jamming and
  spoofing states, MON-RF/MON-HW jammingState.

Conditions are judged with ``Persistence``: a condition counts once it held
for ``persist_s`` (two 1 Hz epochs by default) and, once counting, until its
weaker "hold" form fails (hysteresis).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusion.config import Sensor
from fusion.geo import EnuFrame, ecef_to_geodetic
from fusion.gnss import kernels as K
from fusion.gnss.baseline import RobustBaseline, SatParams, SatTable
from fusion.gnss.series import Series
from fusion.gnss.settings import GnssSettings
from fusion.gnss.ubx_blocks import mon_rf, nav_sat, nav_svinfo, ubx_payload
from fusion.records import GnssMessage

NS = 1_000_000_000
HW_BLOCK = -1  # MON-HW reports one RF path; it is kept as block -1
ANT_FAULT_STATES = {3: "short", 4: "open"}
UBX_SAT_PRECEDENCE_S = 5.0  # NMEA GSV is ignored while UBX satellite reports arrive
POWER_FRESH_S = 10.0  # a power sample older than this says nothing about now
CLOCK_LATCH_S = 30.0  # a clock step stays evidence this long
MAX_FREEZE_S = 120.0  # suspect without an incident this long: baselines learn again
MS_NS = 1_000_000
SKY_TRIM = 0.1  # share of satellites farthest from the median C/N0 left out of the sky check

# The identities whose parsed fields the monitor reads (the pipeline parses only these);
# NAV-SAT, NAV-SVINFO and MON-RF are read from raw bytes (ubx_blocks).
PARSED_IDENTITIES = frozenset(
    {
        "NAV-PVT",
        "NAV-POSLLH",
        "NAV-SOL",
        "NAV-STATUS",
        "NAV-CLOCK",
        "MON-HW",
        "SEC-SIG",
        "GGA",
        "RMC",
        "GSV",
        "GST",
    }
)
RAW_IDENTITIES = frozenset({"NAV-SAT", "NAV-SVINFO", "MON-RF"})


class Persistence:
    """A condition that must hold ``on_s`` before it counts, then counts while ``hold`` does."""

    __slots__ = ("active", "last_true", "on_s", "onset", "since")

    def __init__(self, on_s: float):
        self.on_s = on_s
        self.active = False
        self.since: float | None = None  # start of the current run of `start`
        self.onset: float | None = None  # when the active spell began (its first `start`)
        self.last_true: float | None = None

    def update(self, t: float, start: bool, hold: bool) -> bool:
        if self.active:
            if hold:
                self.last_true = t
                return True
            self.active = False
            self.since = None
        if start:
            if self.since is None:
                self.since = t
            if t - self.since >= self.on_s:
                self.active = True
                self.onset = self.since
                self.last_true = t
        else:
            self.since = None
        return self.active


def _num(v: Any) -> float:
    """A parsed field as float; '' / None / non-numbers are NaN."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v)
    return math.nan


@dataclass(slots=True)
class PowerBlock:
    """One RF block's indicators and their baselines."""

    agc: RobustBaseline
    jam_ind: RobustBaseline
    t: float = -math.inf
    agc_cnt: float = math.nan
    jam_value: float = math.nan
    noise: float = math.nan
    jamming_state: int = 0
    ant_status: int = 2
    agc_z: float = math.nan
    agc_change: float = math.nan  # fraction of the baseline, + when the gain rose
    jam_z: float = math.nan
    jam_rise: float = math.nan
    drop: bool = False  # AGC fell: more power in band
    rise: bool = False  # AGC rose: less power (antenna, cable)
    jam_up: bool = False  # CW jamming indicator rose


@dataclass(slots=True)
class ClockStep:
    t: float
    step_ns: float
    drift_change_nsps: float


@dataclass(slots=True)
class Fix:
    t: float = -math.inf
    ok: bool = False
    fix_type: int = 0
    num_sv: float = math.nan
    h_acc_m: float = math.nan
    lat: float = math.nan
    lon: float = math.nan
    h_m: float = math.nan
    rank: int = 0  # source rank: 3 NAV-PVT, 2 NAV-POSLLH/NAV-SOL, 1 NMEA


@dataclass(slots=True)
class Offset:
    t: float = -math.inf
    east_m: float = math.nan
    north_m: float = math.nan
    up_m: float = math.nan
    horizontal_m: float = math.nan
    limit_m: float = math.nan
    rate_mps: float = math.nan
    history: deque = field(default_factory=lambda: deque(maxlen=16))


class ReceiverMonitor:
    """Features of one receiver (see module docstring)."""

    def __init__(self, sensor: Sensor, settings: GnssSettings):
        self.sensor = sensor
        self.id = sensor.id
        self.s = settings
        self.mobile = sensor.mobile
        self.sats = SatTable(
            SatParams(
                tau_s=settings.baseline_tau_s,
                min_count=3,
                change_db=settings.spoof_change_db,
                cluster_width_db=settings.spoof_cluster_width_db,
            )
        )
        self.last_t = -math.inf  # data time of the last message (s)
        self.messages = 0
        self.hold_learning = False  # set by the detector while an incident involves us
        self._suspect_since: float | None = None
        # C/N0
        self.cn0 = np.full(K.N_FEATURES, np.nan)
        self.cn0_t = -math.inf
        self.cn0_source = ""
        self.spread_base = RobustBaseline(settings.baseline_window, 5, floor_abs=0.3)
        self.tracked_base = RobustBaseline(settings.baseline_window, 5, floor_abs=1.0)
        self._ubx_sats_t = -math.inf
        self._gsv: dict[tuple[str, str], list[tuple[int, float, float]]] = {}
        self.cn0_drop = Persistence(settings.persist_s)
        self.cluster = Persistence(settings.persist_s)
        self.uniform = Persistence(2.5 * max(settings.persist_s, 1.0))
        self.sky = np.full(K.N_SKY, np.nan)
        self.flat_sky = Persistence(settings.sky_persist_s)
        self.below_horizon = Persistence(settings.sky_persist_s)
        self.peak_drop_db = 0.0
        # power
        self.blocks: dict[int, PowerBlock] = {}
        self.power_drop = Persistence(settings.persist_s)
        self.power_only = Persistence(settings.power_only_s)
        self.antenna_persist = Persistence(3.0)
        self.compact_mon_rf = 0
        # fix and position
        self.fix = Fix()
        self.num_sv_base = RobustBaseline(settings.baseline_window, 5, floor_abs=1.0)
        self.h_acc_base = RobustBaseline(settings.baseline_window, 5, floor_abs=0.5)
        self.fix_lost = Persistence(settings.persist_s)
        self.had_fix = False
        self._fix_status_t = -math.inf
        self._fix_status_ok = False
        self._time_fix_t = -math.inf  # last valid time-only fix (fix type 5: timing receivers)
        self._gst: tuple[float, float] = (-math.inf, math.nan)
        self._hdop = math.nan
        self.reference: EnuFrame | None = None
        self.reference_source = ""
        if not self.mobile and sensor.lat is not None and sensor.lon is not None:
            self._set_reference(sensor.lat, sensor.lon, sensor.alt_m, "survey")
        self._has_alt = sensor.alt_m is not None
        self._survey: list[tuple[float, float, float]] = []
        self._survey_t0 = math.nan
        self.offset = Offset()
        self.displaced = Persistence(2.5 * max(settings.persist_s, 1.0))
        # clock
        self._clock: tuple[int, float, float] | None = None  # iTOW ms, bias ns, drift ns/s
        self.clock_steps: deque[ClockStep] = deque(maxlen=32)
        self.clock_bias_ns = math.nan
        self.clock_drift_nsps = math.nan
        # receiver flags
        self.spoof_flags: deque[tuple[float, str]] = deque(maxlen=64)
        self.jam_flags: deque[tuple[float, str]] = deque(maxlen=64)
        self.spoof_state = 0
        # For the report panel, one bounded series per message family.
        self.series_cn0 = Series(("cno_median", "cn0_drop_db", "tracked"))
        self.series_power = Series(("agc", "jam_ind"))
        self.series_offset = Series(("offset_m",))

    # --- input ------------------------------------------------------------------------------

    def on_message(self, msg: GnssMessage) -> bool:
        """Updates features from one message; True when a judged feature changed."""
        t = msg.t_ns / NS
        self.last_t = max(self.last_t, t)
        self.messages += 1
        ident = msg.identity
        try:
            if ident == "NAV-SAT" or ident == "NAV-SVINFO":
                rep = (nav_sat if ident == "NAV-SAT" else nav_svinfo)(ubx_payload(msg.raw))
                self._ubx_sats_t = t
                tag = "U" if ident == "NAV-SAT" else "S"
                keys = [(tag, int(a), int(b)) for a, b in zip(rep.system, rep.sv, strict=True)]
                self._observe(keys, rep.cno, rep.elev, t, ident)
                return True
            if ident == "GSV":
                return self._gsv_sentence(msg.fields, t)
            if ident == "MON-RF":
                blocks, compact = mon_rf(ubx_payload(msg.raw))
                self.compact_mon_rf += compact
                for b in blocks:
                    self._power(
                        b.block_id,
                        t,
                        b.agc_cnt,
                        b.jam_ind,
                        b.noise_per_ms,
                        b.jamming_state,
                        b.ant_status,
                    )
                self._power_judge(t, msg.t_ns)
                return True
            f = msg.fields
            if not f:
                return False  # an identity nobody asked the pipeline to parse
            if ident == "MON-HW":
                self._power(
                    HW_BLOCK,
                    t,
                    _num(f.get("agcCnt")),
                    _num(f.get("jamInd")),
                    _num(f.get("noisePerMS")),
                    int(_num(f.get("jammingState")) or 0),
                    int(_num(f.get("aStatus")) or 0),
                )
                self._power_judge(t, msg.t_ns)
                return True
            if ident == "NAV-PVT":
                ok = bool(f.get("gnssFixOk")) and int(f.get("fixType", 0)) in (2, 3, 4)
                self._time_fix(t, bool(f.get("gnssFixOk")), int(f.get("fixType", 0)))
                self._fix(
                    t,
                    msg.t_ns,
                    3,
                    ok,
                    int(f.get("fixType", 0)),
                    _num(f.get("numSV")),
                    _num(f.get("hAcc")) / 1e3,
                    _num(f.get("lat")),
                    _num(f.get("lon")),
                    _num(f.get("height")) / 1e3,
                )
                return True
            if ident == "NAV-STATUS":
                self._fix_status_t = t
                self._fix_status_ok = bool(f.get("gpsFixOk")) and int(f.get("gpsFix", 0)) in (
                    2,
                    3,
                    4,
                )
                self._time_fix(t, bool(f.get("gpsFixOk")), int(f.get("gpsFix", 0)))
                state = int(_num(f.get("spoofDetState")) or 0)
                self.spoof_state = state
                if state >= 2:
                    self.spoof_flags.append((t, f"NAV-STATUS spoofDetState {state}"))
                return state >= 2
            if ident == "NAV-POSLLH":
                ok = self._fix_status_ok and t - self._fix_status_t < 3.0
                self._fix(
                    t,
                    msg.t_ns,
                    2,
                    ok,
                    3 if ok else 0,
                    math.nan,
                    _num(f.get("hAcc")) / 1e3,
                    _num(f.get("lat")),
                    _num(f.get("lon")),
                    _num(f.get("height")) / 1e3,
                )
                return True
            if ident == "NAV-SOL":
                ok = bool(f.get("gpsfixOK", f.get("gpsFixOk"))) and int(f.get("gpsFix", 0)) in (
                    2,
                    3,
                    4,
                )
                x, y, z = (_num(f.get(k)) / 100.0 for k in ("ecefX", "ecefY", "ecefZ"))
                lat, lon, h = (float(v) for v in ecef_to_geodetic(x, y, z))
                self._fix(
                    t,
                    msg.t_ns,
                    2,
                    ok,
                    int(f.get("gpsFix", 0)),
                    _num(f.get("numSV")),
                    _num(f.get("pAcc")) / 100.0,
                    lat,
                    lon,
                    h,
                )
                return True
            if ident == "NAV-CLOCK":
                self._clock_report(
                    t, int(f.get("iTOW", 0)), _num(f.get("clkB")), _num(f.get("clkD"))
                )
                return True
            if ident == "SEC-SIG":
                jam = int(_num(f.get("jammingState")) or 0)
                spf = int(_num(f.get("spoofingState")) or 0)
                if jam >= 2:
                    self.jam_flags.append((t, f"SEC-SIG jammingState {jam}"))
                if spf >= 2:
                    self.spoof_flags.append((t, f"SEC-SIG spoofingState {spf}"))
                return jam >= 2 or spf >= 2
            if ident == "GGA":
                quality = int(_num(f.get("quality")) or 0)
                self._hdop = _num(f.get("HDOP"))
                lat, lon = _num(f.get("lat")), _num(f.get("lon"))
                h = _num(f.get("alt")) + (_num(f.get("sep")) if f.get("sep") != "" else 0.0)
                gst_t, gst_acc = self._gst
                acc = gst_acc if t - gst_t < 3.0 else self._hdop * self.s.nmea_uere_m
                ok = quality > 0 and math.isfinite(lat) and math.isfinite(lon)
                self._fix(
                    t, msg.t_ns, 1, ok, 3 if ok else 0, _num(f.get("numSV")), acc, lat, lon, h
                )
                return True
            if ident == "GST":
                s_lat, s_lon = _num(f.get("stdLat")), _num(f.get("stdLong"))
                if math.isfinite(s_lat) and math.isfinite(s_lon):
                    self._gst = (t, math.hypot(s_lat, s_lon))
                return False
        except (ValueError, TypeError, KeyError, OverflowError):
            # A message whose contents do not fit its layout: one bad report, not a fault here
            # (the decoder already validated framing and checksum).
            return False
        return False

    # --- C/N0 -------------------------------------------------------------------------------

    def _gsv_sentence(self, f: dict, t: float) -> bool:
        if t - self._ubx_sats_t < UBX_SAT_PRECEDENCE_S:
            return False
        talker = str(f.get("talker", ""))
        signal = str(f.get("signalID", ""))
        key = (talker, signal)
        num_msg, msg_num = int(_num(f.get("numMsg")) or 0), int(_num(f.get("msgNum")) or 0)
        if msg_num == 1 or key not in self._gsv:
            self._gsv[key] = []
        group = self._gsv[key]
        for i in range(1, 5):
            sv = f.get(f"svid_{i:02d}")
            if sv is None or sv == "":
                continue
            try:
                sv_i = int(sv)
            except (TypeError, ValueError):
                continue
            group.append((sv_i, _num(f.get(f"cno_{i:02d}")), _num(f.get(f"elv_{i:02d}"))))
        if msg_num < num_msg:
            return False
        del self._gsv[key]
        if not group:
            return False
        keys = [("N", talker, sv, signal) for sv, _, _ in group]
        cno = np.array([0.0 if not math.isfinite(c) else c for _, c, _ in group])
        elev = np.array([e for _, _, e in group])
        self._observe(keys, cno, elev, t, "GSV")
        return True

    def _observe(self, keys: list, cno, elev, t: float, source: str) -> None:
        learn = self.may_learn(t)
        self.sats.observe(keys, cno, elev, t, learn)
        self.cn0 = self.sats.summary(t)
        self.cn0_t = t
        self.cn0_source = source
        self.sky = K.sky_check(self.sats, t, self.s.horizon_margin_deg, SKY_TRIM)
        self._judge_sky(t)
        self._judge_cn0(t, learn)

    def _judge_sky(self, t: float) -> None:
        """The static sky check: flat C/N0 across a wide elevation span, or satellites tracked
        below the horizon, while the receiver reports a valid fix."""
        s, sky = self.s, self.sky
        fix_ok = self.solution_valid(t)
        n, span = sky[K.S_N], sky[K.S_SPAN]
        spread, slope = sky[K.S_SPREAD], sky[K.S_SLOPE]
        flat = fix_ok and math.isfinite(slope) and slope <= s.sky_flat_slope_db_per_deg
        start = (
            flat
            and n >= s.sky_min_satellites
            and span >= s.sky_min_elev_span_deg
            and spread <= s.sky_flat_spread_db
        )
        hold = (
            fix_ok
            and math.isfinite(slope)
            and slope <= s.sky_flat_slope_db_per_deg + 0.03
            and n >= max(s.sky_min_satellites - 1, 3)
            and span >= 0.8 * s.sky_min_elev_span_deg
            and spread <= 1.25 * s.sky_flat_spread_db
        )
        self.flat_sky.update(t, start, hold)
        below = fix_ok and sky[K.S_BELOW] >= s.below_horizon_min
        self.below_horizon.update(t, below, below)

    def _judge_cn0(self, t: float, learn: bool) -> None:
        c = self.cn0
        s = self.s
        n_ref = c[K.F_REF]
        med = c[K.F_MED_RES]
        enough = n_ref >= s.min_satellites
        start = enough and med <= -s.cn0_drop_db and c[K.F_FRAC_DROP] >= s.cn0_drop_fraction
        # A receiver that lost every satellite it had a baseline for is still dropped.
        hold = (enough and med <= -s.cn0_clear_db) or (c[K.F_TRACKED] == 0 and self.cn0_drop.active)
        if self.cn0_drop.update(t, start, hold):
            self.peak_drop_db = max(self.peak_drop_db, -med if math.isfinite(med) else 0.0)
        else:
            self.peak_drop_db = 0.0
        need = s.spoof_cluster_min
        self.cluster.update(
            t,
            c[K.F_CLUSTER_N] >= need and c[K.F_CLUSTER_UP] >= 2,
            c[K.F_CLUSTER_N] >= max(need - 1, 2) and c[K.F_CLUSTER_UP] >= 1,
        )
        spread = c[K.F_SPREAD]
        base_spread = self.spread_base.median
        uniform_ok = c[K.F_TRACKED] >= 6 and base_spread >= 3.0
        self.uniform.update(
            t,
            uniform_ok and spread <= max(1.0, 0.35 * base_spread),
            uniform_ok and spread <= max(1.2, 0.45 * base_spread),
        )
        if learn and self.may_learn(t):
            self.spread_base.learn(spread)
            self.tracked_base.learn(c[K.F_TRACKED])
        self.series_cn0.add(
            int(t * NS),
            cno_median=c[K.F_CNO_MEDIAN],
            cn0_drop_db=-med if math.isfinite(med) else math.nan,
            tracked=c[K.F_TRACKED],
        )

    def may_learn(self, t: float) -> bool:
        """Whether baselines may learn now: not while an incident involves this receiver, and
        not while it looks suspect, unless that has lasted ``MAX_FREEZE_S`` without becoming an
        incident (then it is the new normal: a lasting obstruction, a new antenna cable)."""
        if self.hold_learning:
            self._suspect_since = None
            return False
        if not self.suspect:
            self._suspect_since = None
            return True
        if self._suspect_since is None:
            self._suspect_since = t
        return t - self._suspect_since >= MAX_FREEZE_S

    @property
    def suspect(self) -> bool:
        """Something is off: baselines must not learn from what this receiver reports now."""
        c = self.cn0
        med = c[K.F_MED_RES]
        return bool(
            self.cn0_drop.active
            or (math.isfinite(med) and abs(med) >= self.s.cn0_clear_db)
            or c[K.F_CLUSTER_N] >= 3
            or self.cluster.active
            or self.uniform.active
            or self.flat_sky.active
            or self.below_horizon.active
            or self.power_drop.active
        )

    # --- power indicators ---------------------------------------------------------------------

    def _power(
        self,
        block_id: int,
        t: float,
        agc: float,
        jam_ind: float | None,
        noise: float,
        jam_state: int,
        ant_status: int,
    ) -> None:
        s = self.s
        b = self.blocks.get(block_id)
        if b is None:
            b = self.blocks[block_id] = PowerBlock(
                RobustBaseline(
                    s.baseline_window, 2, floor_abs=10.0, floor_rel=0.01, young_n=5, young_rel=0.05
                ),
                RobustBaseline(s.baseline_window, 2, floor_abs=2.0),
            )
        jam = math.nan if jam_ind is None else float(jam_ind)
        b.t, b.agc_cnt, b.jam_value, b.noise = t, agc, jam, noise
        b.jamming_state, b.ant_status = jam_state, ant_status
        b.agc_z = b.agc.deviation(agc)
        med = b.agc.median
        b.agc_change = (agc - med) / med if med > 0 else math.nan
        b.jam_z = b.jam_ind.deviation(jam)
        b.jam_rise = jam - b.jam_ind.median if b.jam_ind.ready else math.nan
        big = abs(b.agc_change) >= s.agc_min_change if math.isfinite(b.agc_change) else False
        b.drop = bool(big and b.agc_z <= -s.agc_sigma)
        b.rise = bool(big and b.agc_z >= s.agc_sigma)
        b.jam_up = bool(b.jam_z >= s.jam_ind_sigma and b.jam_rise >= s.jam_ind_min_rise)
        if jam_state >= 2:
            self.jam_flags.append((t, f"RF block {block_id} jammingState {jam_state}"))
        # Learn only what looks normal, and nothing while the receiver is suspect.
        if self.may_learn(t):
            if not b.agc.ready or abs(b.agc_z) < s.agc_sigma:
                b.agc.learn(agc)
            if not b.jam_ind.ready or not b.jam_up:
                b.jam_ind.learn(jam)

    def _power_judge(self, t: float, t_ns: int) -> None:
        blocks = self.fresh_blocks(t)
        drop = any(b.drop or b.jam_up for b in blocks)
        both = any(b.drop for b in blocks) and any(b.jam_up for b in blocks)
        self.power_drop.update(t, drop, drop)
        self.power_only.update(t, both, both)
        first = min(self.blocks) if self.blocks else None
        if first is not None:
            b0 = self.blocks[first]
            self.series_power.add(t_ns, agc=b0.agc_cnt, jam_ind=b0.jam_value)

    def fresh_blocks(self, t: float) -> list[PowerBlock]:
        return [
            self.blocks[k] for k in sorted(self.blocks) if t - self.blocks[k].t <= POWER_FRESH_S
        ]

    def power_known(self, t: float) -> bool:
        """Whether a fresh AGC report with a usable baseline exists."""
        return any(b.agc.ready for b in self.fresh_blocks(t))

    def power_rose(self, t: float) -> bool:
        """A fresh report of more in-band power: AGC fell or the CW jamming indicator rose."""
        return any(b.drop or b.jam_up for b in self.fresh_blocks(t))

    def gain_rose(self, t: float) -> bool:
        return any(b.rise for b in self.fresh_blocks(t))

    def antenna_fault(self, t: float) -> str:
        """'short'/'open' when a fresh report says so, else ''."""
        for b in self.fresh_blocks(t):
            if b.ant_status in ANT_FAULT_STATES:
                return ANT_FAULT_STATES[b.ant_status]
        return ""

    # --- fix, position, clock -----------------------------------------------------------------

    def _fix(
        self,
        t: float,
        t_ns: int,
        rank: int,
        ok: bool,
        fix_type: int,
        num_sv: float,
        h_acc: float,
        lat: float,
        lon: float,
        h: float,
    ) -> None:
        fx = self.fix
        if rank < fx.rank and t - fx.t < 3.0:
            return  # a better source reports this receiver's fix
        fx.t, fx.ok, fx.fix_type, fx.rank = t, ok, fix_type, rank
        fx.num_sv, fx.h_acc_m = num_sv, h_acc
        if ok:
            fx.lat, fx.lon, fx.h_m = lat, lon, h
            self.had_fix = True
        learn = ok and self.may_learn(t)
        if learn:
            self.num_sv_base.learn(num_sv)
            self.h_acc_base.learn(h_acc)
        self.fix_lost.update(t, self.had_fix and not ok, self.had_fix and not ok)
        if ok and not self.mobile:
            self._position(t, t_ns, lat, lon, h, h_acc)

    def _time_fix(self, t: float, ok: bool, fix_type: int) -> None:
        # A timing receiver at a fixed position reports "time only" (fix type 5): its
        # elevations come from that position, so the sky check judges it too.
        if ok and fix_type == 5:
            self._time_fix_t = t

    def solution_valid(self, t: float) -> bool:
        """The receiver reports a valid position, or a valid time-only fix, now."""
        fresh = self.s.stale_s
        return (self.fix.ok and t - self.fix.t <= fresh) or t - self._time_fix_t <= fresh

    def _set_reference(self, lat: float, lon: float, alt: float | None, source: str) -> None:
        self.reference = EnuFrame(lat, lon, 0.0 if alt is None else alt)
        self.reference_source = source

    def _position(
        self, t: float, t_ns: int, lat: float, lon: float, h: float, h_acc: float
    ) -> None:
        if not (math.isfinite(lat) and math.isfinite(lon)):
            return
        if self.reference is None:
            # Self-survey: the median of the first self_survey_s of good fixes.
            if math.isnan(self._survey_t0):
                self._survey_t0 = t
            self._survey.append((lat, lon, h if math.isfinite(h) else 0.0))
            if t - self._survey_t0 >= self.s.self_survey_s and len(self._survey) >= 5:
                a = np.array(self._survey)
                self._set_reference(*np.median(a, axis=0).tolist(), "self-survey")
                self._has_alt = bool(np.isfinite(a[:, 2]).all())
                self._survey = []
            return
        e, n, u = (
            float(v) for v in self.reference.to_enu(lat, lon, h if math.isfinite(h) else 0.0)
        )
        if not self._has_alt or not math.isfinite(h):
            u = math.nan
        o = self.offset
        o.t, o.east_m, o.north_m, o.up_m = t, e, n, u
        o.horizontal_m = math.hypot(e, n)
        acc = h_acc if math.isfinite(h_acc) else 0.0
        o.limit_m = max(self.s.position_limit_m, self.s.position_sigma * acc)
        o.history.append((t, e, n))
        t0, e0, n0 = o.history[0]
        o.rate_mps = math.hypot(e - e0, n - n0) / (t - t0) if t - t0 >= 1.0 else math.nan
        vert = abs(u) if math.isfinite(u) else 0.0
        start = o.horizontal_m > o.limit_m or vert > 2.0 * o.limit_m
        hold = o.horizontal_m > 0.7 * o.limit_m or vert > 1.4 * o.limit_m
        self.displaced.update(t, start, hold)
        self.series_offset.add(t_ns, offset_m=o.horizontal_m)

    def _clock_report(self, t: float, itow_ms: int, bias_ns: float, drift_nsps: float) -> None:
        self.clock_bias_ns, self.clock_drift_nsps = bias_ns, drift_nsps
        prev = self._clock
        self._clock = (itow_ms, bias_ns, drift_nsps)
        if prev is None or not (math.isfinite(bias_ns) and math.isfinite(drift_nsps)):
            return
        d_ms = (itow_ms - prev[0]) % 604_800_000
        if not 0 < d_ms <= 5000:
            return  # a gap or a repeat: no prediction to compare with
        step = bias_ns - (prev[1] + prev[2] * d_ms / 1000.0)
        mag = abs(step)
        # Receivers that do not steer their clock let the bias run to ±0.5 ms and step 1 ms back.
        ms_reset = (
            mag >= 0.5 * MS_NS and abs(mag - MS_NS * round(mag / MS_NS)) < self.s.clock_jump_ns
        )
        if mag >= self.s.clock_jump_ns and not ms_reset and self.fix.ok:
            self.clock_steps.append(ClockStep(t, step, drift_nsps - prev[2]))

    # --- judgements for the detector -------------------------------------------------------

    def fresh(self, t: float) -> bool:
        return t - self.last_t <= self.s.stale_s

    def clock_step(self, t: float) -> ClockStep | None:
        for st in reversed(self.clock_steps):
            if t - st.t <= CLOCK_LATCH_S:
                return st
        return None

    def flags(self, which: str, t: float) -> list[str]:
        """The receiver's own flags within the window, when there are at least ``flag_count``."""
        q = self.spoof_flags if which == "spoof" else self.jam_flags
        recent = [why for tt, why in q if t - tt <= self.s.flag_window_s]
        return recent if len(recent) >= self.s.flag_count else []

    def fix_degraded(self, t: float) -> bool:
        fx = self.fix
        if t - fx.t > self.s.stale_s or not self.had_fix:
            return False
        if self.fix_lost.active:
            return True
        sv_med = self.num_sv_base.median
        acc_med = self.h_acc_base.median
        return bool(
            (math.isfinite(fx.num_sv) and sv_med >= 5 and fx.num_sv <= 0.6 * sv_med)
            or (
                math.isfinite(fx.h_acc_m)
                and acc_med > 0
                and fx.h_acc_m >= max(3 * acc_med, acc_med + 10)
            )
        )
