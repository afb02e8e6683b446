"""GNSS jamming and spoofing detector: receivers' own reports fused with RF band power.

Reads every configured GNSS receiver (``features.ReceiverMonitor``) and every
RF sensor's spectrum sweeps (``band_power.BandPowerMonitor``) and judges the
site as a whole after each report:

Jamming (``gnss_jamming``) and antenna faults (``sensor_fault``, reason
``antenna``). Wideband interference raises the noise density N0, so the C/N0
of every tracked satellite falls together (the effective-C/N0 model:
C/N0_eff = C / (N0 + J), Kaplan & Hegarty, "Understanding GPS/GNSS", 3rd ed.,
§9.2) and the receiver's AGC lowers its gain to hold the input level; a CW
tone raises the receiver's CW jamming indicator. A failed antenna, a cut or
waterlogged cable or a covered antenna also lowers every C/N0, but it takes
power away: the AGC holds or raises its gain (Groves, "Principles of GNSS,
Inertial, and Multisensor Integrated Navigation Systems", 2nd ed., §10.3.1
on AGC monitoring). So a receiver whose C/N0 fell across the sky (median over
satellites, ``cn0_drop_db``) is judged:

- jammed, when its AGC fell or its jamming indicator rose, it flags jamming
  itself, or an RF sensor sees a GNSS band rise;
- antenna fault, when its antenna status is short/open, or its AGC rose or
  held steady (power known, no rise), and no RF sensor sees a rise;
- undetermined when it reports no power indicators (NMEA-only): then jammed
  if another receiver is also affected or none can be compared, an antenna
  fault if the site's other receivers are fine.

A receiver with the AGC-fall-and-jamInd-rise pattern held ``power_only_s``,
``flag_count`` own jamming flags in ``flag_window_s``, or an RF band risen
``rf_only_rise_db`` for ``rf_only_s`` is also jamming without a C/N0 drop.

Spoofing (``gnss_spoofing``), from any of: satellites that changed C/N0 and
converged on one level (``spoof_cluster_min``), C/N0 uniform across the sky
(against the receiver's learned spread, or, with no baseline, flat over a wide
elevation span: a simulator from the first byte), satellites tracked below the
horizon, the position offset from the reference beyond max(``position_limit_m``,
``position_sigma`` x accuracy), a clock bias step (``clock_jump_ns``), two
receivers' offsets disagreeing, or the receiver's own spoofing flags
(``flag_count`` in ``flag_window_s``). Receivers configured ``mobile``
skip the position tests.

Incidents: one site-wide jamming incident and one spoofing incident (their
``details.receivers`` and ``details.bands`` say where), one antenna incident
per receiver. An incident updates when its severity rises, and otherwise at
most every ``update_interval_s`` with refreshed evidence; it closes when its
evidence has been clear for ``close_after_s``. While an incident involves a
receiver, that receiver's baselines do not learn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusion.config import SiteConfig
from fusion.detector import Finding
from fusion.gnss import kernels as K
from fusion.gnss.band_power import BandPowerMonitor
from fusion.gnss.features import PARSED_IDENTITIES, RAW_IDENTITIES, Persistence, ReceiverMonitor
from fusion.gnss.settings import GnssSettings, gnss_settings
from fusion.records import GnssMessage, RfSpectrum

NS = 1_000_000_000
SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
READ_IDENTITIES = PARSED_IDENTITIES | RAW_IDENTITIES
TICK_ASSESS_S = 1.0  # with an incident open, re-judge at least this often from ticks
# warm_up's synthetic inputs: an arbitrary data time, and a sweep over the L1 sub-bands
_WARM_UP_T0_NS = 1_000_000_000 * NS
_WARM_UP_F0_HZ, _WARM_UP_BIN_HZ, _WARM_UP_BINS = 1.555e9, 0.5e6, 128


def _r(x: float, nd: int = 1) -> float | None:
    """A float for alert details: rounded, NaN/inf as null."""
    x = float(x)
    return round(x, nd) if math.isfinite(x) else None


@dataclass(slots=True)
class _Incident:
    key: str
    kind: str
    open: bool = False
    t_event_ns: int = 0
    opened_t: float = 0.0
    last_active: float = -math.inf
    last_sent: float = -math.inf
    severity: str = "info"
    peak: dict[str, float] = field(default_factory=dict)
    last_summary: str = ""
    last_details: dict[str, Any] = field(default_factory=dict)
    last_sensors: tuple[str, ...] = ()
    last_confidence: float = 0.0


@dataclass(slots=True)
class _Judgement:
    """What the evidence says about one incident at one moment."""

    active: bool
    severity: str = "medium"
    confidence: float = 0.5
    sensors: tuple[str, ...] = ()
    onset: float = math.inf  # data time (s) the evidence began
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class GnssDetector:
    """``gnss_jamming``, ``gnss_spoofing`` and antenna ``sensor_fault`` (see module docstring)."""

    name = "gnss"
    consumes = (GnssMessage, RfSpectrum)
    gnss_identities = PARSED_IDENTITIES  # NAV-SAT, NAV-SVINFO, MON-RF are read from raw bytes

    def __init__(self, site: SiteConfig, settings: GnssSettings | None = None):
        self.site = site
        self.s = settings if settings is not None else gnss_settings(site)
        self.receivers = {
            sen.id: ReceiverMonitor(sen, self.s) for sen in site.sensors if sen.kind == "gnss"
        }
        self.rf = {
            sen.id: BandPowerMonitor(sen.id, self.s) for sen in site.sensors if sen.kind == "rf"
        }
        self._jam = _Incident("jamming", "gnss_jamming")
        self._spoof = _Incident("spoofing", "gnss_spoofing")
        self._antenna: dict[str, _Incident] = {
            rid: _Incident(f"antenna:{rid}", "sensor_fault") for rid in self.receivers
        }
        self._last_assess = -math.inf
        self._disagree: dict[tuple[str, str], Persistence] = {}

    # --- Detector interface ----------------------------------------------------------------

    def on_record(self, record) -> list[Finding]:
        if isinstance(record, GnssMessage):
            mon = self.receivers.get(record.sensor)
            if mon is None or record.identity not in READ_IDENTITIES:
                return []
            if not mon.on_message(record):
                return []
        elif isinstance(record, RfSpectrum):
            rf = self.rf.get(record.sensor)
            if rf is None or not rf.on_sweep(record):
                return []
        else:
            return []
        return self._assess(record.t_ns / NS)

    def on_tick(self, watermark_ns: int) -> list[Finding]:
        t = watermark_ns / NS
        if not self._any_open() or t - self._last_assess < TICK_ASSESS_S:
            return []
        return self._assess(t)

    def warm_up(self) -> None:
        """Compiles (or loads from Numba's cache) every kernel the live path runs, so the
        first live reports do not wait for it (the service calls this before /readyz).

        A scratch detector for the same site and settings is fed a few synthetic reports of
        each kind that reaches a kernel (GSV: the satellite table and its summary; MON-HW:
        the robust baselines; an RF sweep over L1: the band power floors), then dropped.
        The kernels' wrappers fix the argument types, and the scratch tables are built as
        the live ones are, so these are the live specialisations. This detector's state is
        not touched and nothing is emitted.
        """
        scratch = GnssDetector(self.site, self.s)
        t_ns = _WARM_UP_T0_NS
        power = np.full(_WARM_UP_BINS, -100.0)
        for i in range(4):
            t_ns += NS
            for rid in scratch.receivers:
                fields: dict[str, Any] = {
                    "talker": "GP",
                    "signalID": "1",
                    "numMsg": 1,
                    "msgNum": 1,
                }
                for k in range(1, 5):
                    fields[f"svid_{k:02d}"] = str(k)
                    fields[f"cno_{k:02d}"] = 40.0 + k
                    fields[f"elv_{k:02d}"] = 20.0 * k
                    fields[f"az_{k:02d}"] = 90.0 * k
                scratch.on_record(GnssMessage(rid, t_ns, t_ns, "NMEA", "GSV", fields, b""))
                hw = {
                    "agcCnt": 3000 + i,
                    "jamInd": 5,
                    "noisePerMS": 80,
                    "jammingState": 1,
                    "aStatus": 2,
                }
                scratch.on_record(GnssMessage(rid, t_ns, t_ns, "UBX", "MON-HW", hw, b""))
            for sid in scratch.rf:
                sweep = RfSpectrum(sid, t_ns, t_ns, _WARM_UP_F0_HZ, _WARM_UP_BIN_HZ, power)
                scratch.on_record(sweep)
        scratch.on_tick(t_ns)

    def report_panels(self) -> list:
        from fusion.gnss.panel import GnssPanel  # matplotlib: only when a report is written

        return [GnssPanel(self)] if self.receivers or self.rf else []

    # --- judgement ---------------------------------------------------------------------------

    def _any_open(self) -> bool:
        return self._jam.open or self._spoof.open or any(i.open for i in self._antenna.values())

    def _assess(self, t: float) -> list[Finding]:
        self._last_assess = max(self._last_assess, t)
        rf_raised = {rid: m.raised(t) for rid, m in self.rf.items()}
        rf_raised = {rid: b for rid, b in rf_raised.items() if b}
        rf_alone = {rid: m.raised(t, alone=True) for rid, m in self.rf.items()}
        rf_alone = {rid: b for rid, b in rf_alone.items() if b}
        jam, antenna = self._judge_jamming(t, rf_raised, rf_alone)
        spoof = self._judge_spoofing(t)
        out: list[Finding] = []
        for f in (self._step(self._jam, jam, t), self._step(self._spoof, spoof, t)):
            if f is not None:
                out.append(f)
        for rid in sorted(self._antenna):
            f = self._step(self._antenna[rid], antenna[rid], t)
            if f is not None:
                out.append(f)
        involved = set(jam.sensors) | set(spoof.sensors)
        for rid, mon in self.receivers.items():
            mon.hold_learning = (
                rid in involved
                or self._antenna[rid].open
                or antenna[rid].active
                or (self._jam.open and rid in self._jam.last_sensors)
                or (self._spoof.open and rid in self._spoof.last_sensors)
            )
        return out

    def _judge_jamming(self, t: float, rf_raised: dict, rf_alone: dict):
        s = self.s
        fresh = {rid: m for rid, m in self.receivers.items() if m.fresh(t)}
        dropped = {
            rid: m for rid, m in fresh.items() if m.cn0_drop.active and t - m.cn0_t <= s.stale_s
        }
        judged_cn0 = {
            rid
            for rid, m in fresh.items()
            if t - m.cn0_t <= s.stale_s and m.cn0[K.F_REF] >= s.min_satellites
        }
        rf_any = bool(rf_raised)
        cls: dict[str, str] = {}
        for rid, m in dropped.items():
            if rf_any or m.flags("jam", t) or m.power_drop.active:
                cls[rid] = "interference"
            elif m.power_rose(t) and not self._antenna[rid].open:
                # One report of more power is enough at the start; an antenna fault already
                # open on this receiver takes a sustained rise (power_drop) to overturn.
                cls[rid] = "interference"
            elif m.antenna_fault(t):
                cls[rid] = f"antenna {m.antenna_fault(t)}"
            elif m.gain_rose(t):
                cls[rid] = "attenuation (AGC gain rose)"
            elif m.power_known(t) or self._antenna[rid].open:
                cls[rid] = "attenuation (AGC steady)"
            else:
                cls[rid] = "undetermined"
        interfered = [rid for rid, c in cls.items() if c == "interference"]
        undetermined = [rid for rid, c in cls.items() if c == "undetermined"]
        unaffected = [rid for rid in judged_cn0 if rid not in dropped]
        jammed: dict[str, str] = {rid: "interference" for rid in interfered}
        faulty: dict[str, str] = {}
        for rid in undetermined:
            if interfered or len(undetermined) >= 2:
                jammed[rid] = "C/N0 drop shared with other receivers"
            elif unaffected:
                faulty[rid] = "C/N0 drop on this receiver only, no power data, others unaffected"
            else:
                jammed[rid] = "undetermined: no power data, no other receiver or RF rise to compare"
        for rid, c in cls.items():
            if c.startswith("attenuation") or c.startswith("antenna"):
                if interfered and not c.startswith("antenna"):
                    jammed[rid] = f"C/N0 drop with {c}, other receivers jammed"
                else:
                    faulty[rid] = c
        # Jamming without a C/N0 drop: power pattern, own flags, or an RF band on its own.
        standalone: dict[str, list[str]] = {}
        for rid, m in fresh.items():
            why = []
            if m.power_only.active:
                why.append("AGC fell and CW jamming indicator rose")
            flags = m.flags("jam", t)
            if flags:
                why.append(f"receiver flags jamming ({len(flags)} in {s.flag_window_s:g} s)")
            if why and rid not in jammed:
                standalone[rid] = why
        active = bool(jammed or standalone or rf_alone)
        # An antenna reported short or open is a fault with or without a C/N0 drop.
        for rid, m in fresh.items():
            status = m.antenna_fault(t)
            if status and rid not in jammed and rid not in faulty:
                faulty[rid] = f"antenna {status}"
        # A fault is no emergency: its class must hold a few seconds (the power report that
        # would make it interference may be a second behind the C/N0 report).
        for rid, m in self.receivers.items():
            m.antenna_persist.update(t, rid in faulty, rid in faulty)
        faulty = {
            rid: why for rid, why in faulty.items() if self.receivers[rid].antenna_persist.active
        }
        antenna = self._judge_antenna(t, fresh, faulty, jammed, rf_any)
        if not active:
            return _Judgement(False), antenna
        return self._jamming_judgement(t, jammed, standalone, rf_raised, rf_alone), antenna

    def _jamming_judgement(self, t, jammed, standalone, rf_raised, rf_alone) -> _Judgement:
        s = self.s
        evidence: list[dict] = []
        families: set[str] = set()
        onset = math.inf
        per_rx: dict[str, dict] = {}
        bands: set[str] = set()
        lost_fix = []
        degraded = []
        max_drop = 0.0
        causes: list[str] = []
        for rid in sorted(set(jammed) | set(standalone)):
            m = self.receivers[rid]
            c = m.cn0
            info: dict[str, Any] = {}
            if rid in jammed:
                families.add("cn0_drop")
                drop = -float(c[K.F_MED_RES]) if math.isfinite(c[K.F_MED_RES]) else m.peak_drop_db
                max_drop = max(max_drop, drop)
                onset = min(onset, m.cn0_drop.onset or t)
                info["cause"] = jammed[rid]
                info["cn0_drop_db"] = _r(drop)
                info["satellites_dropped_fraction"] = _r(c[K.F_FRAC_DROP], 2)
                info["satellites_tracked"] = int(c[K.F_TRACKED])
                info["satellites_tracked_baseline"] = _r(m.tracked_base.median, 0)
                info["satellites_above_30dbhz"] = int(c[K.F_ABOVE30])
                info["satellites_lost"] = int(c[K.F_LOST])
                evidence.append(
                    {
                        "sensor": rid,
                        "feature": "cn0_drop_db",
                        "value": _r(drop),
                        "baseline": 0.0,
                        "threshold": s.cn0_drop_db,
                        "satellites": int(c[K.F_REF]),
                    }
                )
                bands.add("L1")
            else:
                onset = min(onset, t)
                info["cause"] = "; ".join(standalone[rid])
                causes.extend(f"{rid} {why}" for why in standalone[rid])
            for b_id, b in ((k, m.blocks[k]) for k in sorted(m.blocks)):
                if t - b.t > 10.0:
                    continue
                if b.drop:
                    families.add("agc")
                    bands.add(_block_band(b_id))
                    evidence.append(
                        {
                            "sensor": rid,
                            "feature": "agc",
                            "block": b_id,
                            "value": _r(b.agc_cnt, 0),
                            "baseline": _r(b.agc.median, 0),
                            "change_pct": _r(100 * b.agc_change),
                            "sigmas": _r(b.agc_z),
                        }
                    )
                if b.jam_up:
                    families.add("jam_ind")
                    bands.add(_block_band(b_id))
                    evidence.append(
                        {
                            "sensor": rid,
                            "feature": "jam_ind",
                            "block": b_id,
                            "value": _r(b.jam_value, 0),
                            "baseline": _r(b.jam_ind.median, 0),
                            "rise": _r(b.jam_rise),
                        }
                    )
            flags = m.flags("jam", t)
            if flags:
                families.add("receiver_flag")
                evidence.append(
                    {
                        "sensor": rid,
                        "feature": "receiver_flag",
                        "value": flags[-1],
                        "count": len(flags),
                    }
                )
            if m.fix_lost.active:
                lost_fix.append(rid)
                families.add("fix")
                evidence.append({"sensor": rid, "feature": "fix", "value": "lost"})
            elif m.fix_degraded(t):
                degraded.append(rid)
                families.add("fix")
                evidence.append(
                    {
                        "sensor": rid,
                        "feature": "fix",
                        "value": "degraded",
                        "satellites_used": _r(m.fix.num_sv, 0),
                        "baseline": _r(m.num_sv_base.median, 0),
                        "h_acc_m": _r(m.fix.h_acc_m),
                        "h_acc_baseline_m": _r(m.h_acc_base.median),
                    }
                )
            info["fix"] = "lost" if rid in lost_fix else "degraded" if rid in degraded else "ok"
            per_rx[rid] = info
        rf_detail: dict[str, dict] = {}
        for src in (rf_raised, rf_alone):
            for rf_id, raised in src.items():
                families.add("rf_band_power")
                for band, st in raised.items():
                    bands.add(band)
                    onset = min(onset, st.corroborates.onset or t)
                    rf_detail.setdefault(rf_id, {})[band] = {
                        "rise_db": _r(st.rise_db),
                        "sub_band": st.sub_band,
                        "power_dbm_per_bin": _r(st.power_dbm),
                    }
        for rf_id in sorted(rf_detail):
            for band in sorted(rf_detail[rf_id]):
                evidence.append(
                    {
                        "sensor": rf_id,
                        "feature": "band_power_rise_db",
                        "band": band,
                        "value": rf_detail[rf_id][band]["rise_db"],
                        "threshold": s.rf_rise_db,
                    }
                )
        if bands & {"L2", "L5"}:
            bands.discard("L2/L5")  # the RF sensor says which of the two the receiver's block 1 saw
        receivers = sorted(per_rx)
        if len(jammed) >= 2:
            families.add("multi_receiver")
        fresh_rx = [rid for rid, m in self.receivers.items() if m.fresh(t) and m.had_fix]
        if receivers and fresh_rx and all(r in lost_fix for r in fresh_rx):
            severity = "critical"
        elif lost_fix or degraded or max_drop >= 10.0 or len(bands) >= 2:
            severity = "high"
        elif jammed:
            severity = "medium"
        else:
            severity = "low"
        undetermined_only = all(v.startswith("undetermined") for v in jammed.values()) and not (
            families - {"cn0_drop", "fix"}
        )
        confidence = min(0.99, 0.45 + 0.12 * len(families))
        if undetermined_only:
            confidence = min(confidence, 0.5)
        sensors = tuple(receivers + sorted(rf_detail))
        where = ", ".join(receivers) if receivers else ", ".join(sorted(rf_detail))
        parts = []
        if jammed:
            parts.append(f"C/N0 down {max_drop:.1f} dB")
        agc = [e for e in evidence if e["feature"] == "agc"]
        if agc:
            parts.append(f"AGC {min(e['change_pct'] or 0.0 for e in agc):+.0f}%")
        for rf_id in sorted(rf_detail):
            for band in sorted(rf_detail[rf_id]):
                parts.append(f"{rf_id} {band} +{rf_detail[rf_id][band]['rise_db']:.1f} dB")
        if lost_fix:
            parts.append(f"fix lost on {', '.join(lost_fix)}")
        parts.extend(causes)
        summary = f"GNSS jamming ({'/'.join(sorted(bands)) or 'GNSS'}) at {where}: " + ", ".join(
            parts
        )
        details = {
            "receivers": receivers,
            "bands": sorted(bands),
            "evidence": evidence,
            "per_receiver": per_rx,
            "rf": rf_detail,
            "evidence_families": sorted(families),
            "cn0_drop_db": _r(max_drop),
        }
        return _Judgement(True, severity, confidence, sensors, onset, summary, details)

    def _judge_antenna(self, t, fresh, faulty, jammed, rf_any) -> dict[str, _Judgement]:
        out: dict[str, _Judgement] = {}
        for rid, m in self.receivers.items():
            why = faulty.get(rid)
            status = m.antenna_fault(t) if rid in fresh else ""
            if why is None or rid in jammed:
                out[rid] = _Judgement(False)
                continue
            c = m.cn0
            drop = -float(c[K.F_MED_RES]) if math.isfinite(c[K.F_MED_RES]) else math.nan
            evidence: list[dict] = []
            if m.cn0_drop.active:
                evidence.append(
                    {
                        "feature": "cn0_drop_db",
                        "value": _r(drop),
                        "threshold": self.s.cn0_drop_db,
                        "satellites": int(c[K.F_REF]),
                    }
                )
            for b_id in sorted(m.blocks):
                b = m.blocks[b_id]
                if t - b.t > 10.0:
                    continue
                evidence.append(
                    {
                        "feature": "agc",
                        "block": b_id,
                        "value": _r(b.agc_cnt, 0),
                        "baseline": _r(b.agc.median, 0),
                        "change_pct": _r(100 * b.agc_change),
                        "antenna_status": b.ant_status,
                    }
                )
            onset = m.cn0_drop.onset if m.cn0_drop.active and m.cn0_drop.onset else t
            parts = [why]
            if math.isfinite(drop) and m.cn0_drop.active:
                parts.append(f"C/N0 down {drop:.1f} dB")
            parts.append("no RF rise" if self.rf else "no RF sensor to compare")
            out[rid] = _Judgement(
                True,
                "high" if m.fix_lost.active else "medium",
                0.8 if status or "rose" in why else 0.6,
                (rid,),
                onset,
                f"Antenna or cable fault on {rid}: " + ", ".join(parts),
                {
                    "reason": "antenna",
                    "cause": why,
                    "sensor_kind": "gnss",
                    "cn0_drop_db": _r(drop),
                    "fix": "lost" if m.fix_lost.active else "ok",
                    "evidence": evidence,
                    "rf_sensors": sorted(self.rf),
                },
            )
        return out

    def _judge_spoofing(self, t: float) -> _Judgement:
        s = self.s
        evidence: list[dict] = []
        families: set[str] = set()
        receivers: set[str] = set()
        onset = math.inf
        per_rx: dict[str, dict] = {}
        for rid in sorted(self.receivers):
            m = self.receivers[rid]
            if not m.fresh(t):
                continue
            info: dict[str, Any] = {}
            c = m.cn0
            cn0_fresh = t - m.cn0_t <= s.stale_s
            if cn0_fresh and m.cluster.active:
                families.add("cn0_cluster")
                onset = min(onset, m.cluster.onset or t)
                evidence.append(
                    {
                        "sensor": rid,
                        "feature": "cn0_cluster",
                        "satellites": int(c[K.F_CLUSTER_N]),
                        "rose": int(c[K.F_CLUSTER_UP]),
                        "level_dbhz": _r(c[K.F_CLUSTER_LEVEL]),
                        "changed": int(c[K.F_CHANGED]),
                        "threshold": s.spoof_cluster_min,
                    }
                )
            if cn0_fresh and m.uniform.active:
                families.add("cn0_uniform")
                onset = min(onset, m.uniform.onset or t)
                evidence.append(
                    {
                        "sensor": rid,
                        "feature": "cn0_spread_db",
                        "value": _r(c[K.F_SPREAD], 2),
                        "baseline": _r(m.spread_base.median, 2),
                        "cn0_elevation_correlation": _r(c[K.F_CORR_ELEV], 2),
                    }
                )
            sky = m.sky
            if cn0_fresh and m.flat_sky.active:
                families.add("cn0_flat")
                onset = min(onset, m.flat_sky.onset or t)
                evidence.append(
                    {
                        "sensor": rid,
                        "feature": "cn0_flat_sky",
                        "value": _r(sky[K.S_SPREAD], 2),
                        "threshold": s.sky_flat_spread_db,
                        "slope_db_per_deg": _r(sky[K.S_SLOPE], 3),
                        "slope_threshold": s.sky_flat_slope_db_per_deg,
                        "satellites": int(sky[K.S_N]),
                        "elevation_span_deg": _r(sky[K.S_SPAN], 0),
                        "level_dbhz": _r(sky[K.S_LEVEL]),
                    }
                )
            if cn0_fresh and m.below_horizon.active:
                families.add("below_horizon")
                onset = min(onset, m.below_horizon.onset or t)
                evidence.append(
                    {
                        "sensor": rid,
                        "feature": "satellites_below_horizon",
                        "value": int(sky[K.S_BELOW]),
                        "lowest_elevation_deg": _r(sky[K.S_MIN_ELEV], 0),
                        "margin_deg": s.horizon_margin_deg,
                        "threshold": s.below_horizon_min,
                    }
                )
            if m.displaced.active and not m.mobile:
                o = m.offset
                families.add("position")
                onset = min(onset, m.displaced.onset or t)
                evidence.append(
                    {
                        "sensor": rid,
                        "feature": "position_offset_m",
                        "value": _r(o.horizontal_m),
                        "up_m": _r(o.up_m),
                        "limit_m": _r(o.limit_m),
                        "rate_mps": _r(o.rate_mps, 2),
                        "reference": m.reference_source,
                    }
                )
                info["position_offset_m"] = _r(o.horizontal_m)
            step = m.clock_step(t)
            if step is not None:
                families.add("clock")
                onset = min(onset, step.t)
                evidence.append(
                    {
                        "sensor": rid,
                        "feature": "clock_step_ns",
                        "value": _r(step.step_ns, 0),
                        "drift_change_nsps": _r(step.drift_change_nsps, 0),
                        "threshold": s.clock_jump_ns,
                    }
                )
            flags = m.flags("spoof", t)
            if flags:
                families.add("receiver_flag")
                onset = min(onset, t)
                evidence.append(
                    {
                        "sensor": rid,
                        "feature": "receiver_flag",
                        "value": flags[-1],
                        "count": len(flags),
                    }
                )
            if any(e["sensor"] == rid for e in evidence):
                receivers.add(rid)
                info.update(
                    {
                        "cno_median_dbhz": _r(c[K.F_CNO_MEDIAN]),
                        "cn0_spread_db": _r(c[K.F_SPREAD], 2),
                        "satellites_tracked": int(c[K.F_TRACKED]),
                        "satellites_risen": int(c[K.F_UP]),
                        "spoof_det_state": m.spoof_state,
                    }
                )
                per_rx[rid] = info
        for pair, why in self._disagreements(t):
            families.add("disagreement")
            receivers.update(pair)
            evidence.append({"sensor": "+".join(pair), "feature": "receivers_disagree_m", **why})
        if not evidence:
            return _Judgement(False)
        displaced = "position" in families or "clock" in families
        if displaced and len(families) >= 2:
            severity = "critical"
        elif displaced or len(families) >= 2 or len(receivers) >= 2:
            severity = "high"
        else:
            severity = "medium"
        confidence = min(0.99, 0.5 + 0.15 * (len(families) - 1) + 0.1 * (len(receivers) - 1))
        what = {
            "cn0_cluster": "satellites converged on one C/N0",
            "cn0_uniform": "C/N0 uniform across the sky",
            "cn0_flat": "C/N0 the same on every satellite whatever its elevation",
            "below_horizon": "satellites tracked below the horizon",
            "position": "position off the reference",
            "clock": "clock bias step",
            "receiver_flag": "receiver flags spoofing",
            "disagreement": "receivers disagree",
        }
        rx = sorted(receivers)
        summary = f"GNSS spoofing suspected at {', '.join(rx)}: " + ", ".join(
            what[f] for f in sorted(families)
        )
        details = {
            "receivers": rx,
            "bands": ["L1"],
            "evidence": evidence,
            "per_receiver": per_rx,
            "evidence_families": sorted(families),
        }
        return _Judgement(True, severity, confidence, tuple(rx), onset, summary, details)

    def _disagreements(self, t: float) -> list[tuple[tuple[str, str], dict]]:
        """Pairs of static, referenced receivers whose offsets differ beyond both limits."""
        rx = [
            (rid, m)
            for rid, m in sorted(self.receivers.items())
            if not m.mobile and m.reference is not None and t - m.offset.t <= 3.0
        ]
        out = []
        for i in range(len(rx)):
            for j in range(i + 1, len(rx)):
                (a, ma), (b, mb) = rx[i], rx[j]
                d = math.hypot(
                    ma.offset.east_m - mb.offset.east_m, ma.offset.north_m - mb.offset.north_m
                )
                limit = max(ma.offset.limit_m, mb.offset.limit_m)
                p = self._disagree.setdefault((a, b), Persistence(2.5 * max(self.s.persist_s, 1.0)))
                if p.update(t, d > limit, d > 0.7 * limit):
                    out.append(((a, b), {"value": _r(d), "limit_m": _r(limit)}))
        return out

    # --- incident life cycle -----------------------------------------------------------------

    def _step(self, inc: _Incident, j: _Judgement, t: float) -> Finding | None:
        s = self.s
        if j.active:
            inc.last_active = t
            for k in ("cn0_drop_db",):
                v = j.details.get(k)
                if isinstance(v, int | float):
                    inc.peak[k] = max(inc.peak.get(k, 0.0), float(v))
            if not inc.open:
                inc.open = True
                inc.opened_t = t
                inc.t_event_ns = round(min(j.onset, t) * NS)
                inc.severity = j.severity
                return self._emit(inc, "open", j, t)
            rank = SEVERITY_RANK
            escalate = rank[j.severity] > rank[inc.severity]
            due = t - inc.last_sent >= s.update_interval_s
            if escalate or due:
                inc.severity = j.severity
                return self._emit(inc, "update", j, t)
            return None
        if inc.open and t - inc.last_active >= s.close_after_s:
            inc.open = False
            duration = inc.last_active - inc.t_event_ns / NS
            peak = inc.peak.get("cn0_drop_db")
            details = dict(inc.last_details)
            details["duration_s"] = _r(duration)
            details["ended"] = f"evidence clear for {s.close_after_s:g} s"
            if peak:
                details["peak_cn0_drop_db"] = _r(peak)
            what = {"gnss_jamming": "GNSS jamming", "gnss_spoofing": "GNSS spoofing"}.get(
                inc.kind, inc.last_summary.split(":")[0]
            )
            summary = f"{what} ended after {duration:.0f} s"
            if peak:
                summary += f" (peak C/N0 drop {peak:.1f} dB)"
            inc.peak = {}
            return Finding(
                inc.key,
                "closed",
                inc.kind,
                inc.severity,
                inc.last_confidence,
                inc.last_sensors,
                inc.t_event_ns,
                summary,
                details,
            )
        return None

    def _emit(self, inc: _Incident, state: str, j: _Judgement, t: float) -> Finding:
        inc.last_sent = t
        details = dict(j.details)
        details["t_event_ns"] = inc.t_event_ns
        details["open_for_s"] = _r(t - inc.opened_t)
        if inc.peak.get("cn0_drop_db"):
            details["peak_cn0_drop_db"] = _r(inc.peak["cn0_drop_db"])
        sensors = tuple(
            sorted(set(j.sensors) | (set(inc.last_sensors) if state != "open" else set()))
        )
        inc.last_summary, inc.last_details = j.summary, details
        inc.last_sensors, inc.last_confidence = sensors, j.confidence
        return Finding(
            inc.key,
            state,
            inc.kind,
            j.severity,
            j.confidence,
            sensors,
            inc.t_event_ns,
            j.summary,
            details,
        )


def _block_band(block_id: int) -> str:
    """u-blox RF block 0 is the L1/E1/B1/G1 path; block 1 the L2 or L5 path (F9)."""
    return "L1" if block_id in (0, -1) else "L2/L5"
