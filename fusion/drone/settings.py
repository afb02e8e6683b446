"""The ``[drone]`` configuration section: every key, its default and its validation.

``DroneSettings.from_site(site)`` reads ``site.section("drone")`` and raises
``fusion.config.ConfigError`` listing every bad key by its full path
(``drone.tracker.confirm_m: must be an integer in [1, 30]``). The keys are
documented for site engineers in ``docs/drone.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from fusion.config import ConfigError, SiteConfig
from fusion.drone.measurement import RadarAccuracy

# Link protocols an RF sensor names that mean "a drone's control or video link".
DEFAULT_RF_PROTOCOLS = (
    "ocusync",
    "lightbridge",
    "droneid",
    "remote_id",
    "elrs",
    "crossfire",
    "frsky",
    "flysky",
    "spektrum",
    "futaba",
    "wifi",
    "analog_fpv",
    "digital_fpv",
)

CLASSES = ("drone", "bird", "aircraft", "clutter")


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    gate_probability: float = 0.9995  # chi-square gate
    confirm_m: int = 2  # M hits ...
    confirm_n: int = 3  # ... within the last N scans confirm a track
    p_init: float = 0.2  # existence of a new one-plot track
    p_confirm: float = 0.5  # existence needed (besides M-of-N) to confirm
    p_delete: float = 0.05  # confirmed tracks below this existence are deleted
    max_coast_s: float = 12.0  # delete a confirmed track after this long without a plot
    tentative_max_coast_s: float = 6.0  # ... a tentative one after this long
    tentative_max_misses: int = 3  # ... or after this many scans in a row without one
    max_position_sigma_m: float = 250.0  # delete when the position spread exceeds this
    survival_tau_s: float = 600.0  # existence decay time constant (target leaving unseen)
    init_speed_sigma_mps: float = 15.0  # velocity spread across the line of sight at start
    max_speed_mps: float = 350.0  # two-point start: fastest target (aircraft)
    two_point_max_gap_s: float = 2.5
    pd_min: float = 0.2  # bounds of the per-track detection probability
    pd_max: float = 0.95
    feature_tau_s: float = 15.0  # time constant of the classification averages
    hover_speed_mps: float = 2.0
    moved_m: float = 150.0
    # IMM models: nearly constant velocity, steady and manoeuvring (m²/s³).
    q_steady: float = 0.05
    q_steady_vertical: float = 0.02
    q_manoeuvre: float = 4.0
    q_manoeuvre_vertical: float = 0.25
    turn_rate_dps: float = 0.0  # > 0 adds two coordinated-turn models at +- this rate
    sojourn_steady_s: float = 20.0
    sojourn_manoeuvre_s: float = 5.0
    capacity: int = 4096  # track slots (tentative + confirmed)


@dataclass(frozen=True, slots=True)
class AlertSettings:
    p_drone_alert: float = 0.8  # a track is a "likely drone" from this probability up ...
    p_drone_clear: float = 0.5  # ... until it falls below this
    p_drone_persist_s: float = 3.0  # ... once it has stayed at or above p_drone_alert this long
    p_drone_clear_s: float = 10.0  # ... and stops being one after this long below p_drone_clear
    min_track_age_s: float = 8.0  # a confirmed track this old before it may alert
    min_hits: int = 6
    min_closing_mps: float = 1.0  # closing on a zone means at least this fast
    leave_margin_m: float = 100.0  # an approach ends this far outside the alert radius
    eta_high_s: float = 60.0  # severity high at or below this ETA
    eta_critical_s: float = 20.0  # critical at or below this ETA, or inside the zone
    update_interval_s: float = 5.0  # at most one update per this unless severity/kind changes
    heartbeat_s: float = 60.0  # an update at least this often while an incident is open
    tracks_history_max_rows: int = 2_000_000
    # A drone's incident outlives its lost track this long, for a re-formed track of the
    # same drone to take it over (0: close at once).
    reacquire_s: float = 30.0
    reacquire_accel_mps2: float = 3.0  # manoeuvre allowed for between loss and re-forming


@dataclass(frozen=True, slots=True)
class RfSettings:
    protocols: tuple[str, ...] = DEFAULT_RF_PROTOCOLS
    bearing_sigma_deg: float = 5.0  # RF direction-finding error (1 sigma)
    window_s: float = 10.0  # corroboration and contact memory
    min_reports: int = 3  # reports within window_s before an RF-only contact alerts
    remote_id_sigma_m: float = 15.0  # reported-position error (GNSS + latency)
    corroborate_min: int = 2  # bearing matches within window_s that corroborate a track


@dataclass(frozen=True, slots=True)
class DroneSettings:
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    rf: RfSettings = field(default_factory=RfSettings)
    prior: dict[str, float] = field(
        default_factory=lambda: {"drone": 0.15, "bird": 0.45, "aircraft": 0.1, "clutter": 0.3}
    )
    radar_default: RadarAccuracy = field(default_factory=RadarAccuracy)
    radars: dict[str, RadarAccuracy] = field(default_factory=dict)

    def radar(self, sensor_id: str) -> RadarAccuracy:
        return self.radars.get(sensor_id, self.radar_default)

    @staticmethod
    def from_site(site: SiteConfig) -> DroneSettings:
        return parse_drone_section(site.section("drone"), site.source)


# --- parsing --------------------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def bad(self, key: str, msg: str) -> None:
        self.lines.append(f"{key}: {msg}")


def _num(
    raw: dict, key: str, path: str, default: float, lo: float, hi: float, p: _Problems
) -> float:
    v = raw.get(key, default)
    if not (
        isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
        and lo <= v <= hi
    ):
        p.bad(f"{path}.{key}", f"must be a number in [{lo:g}, {hi:g}]")
        return default
    return float(v)


def _int(raw: dict, key: str, path: str, default: int, lo: int, hi: int, p: _Problems) -> int:
    v = raw.get(key, default)
    if not (isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi):
        p.bad(f"{path}.{key}", f"must be an integer in [{lo}, {hi}]")
        return default
    return int(v)


def _pair(raw: dict, key: str, path: str, default: tuple[float, float], hi: float, p: _Problems):
    v = raw.get(key, list(default))
    if isinstance(v, int | float) and not isinstance(v, bool):
        v = [v, v]
    ok = (
        isinstance(v, list)
        and len(v) == 2
        and all(isinstance(c, int | float) and not isinstance(c, bool) and 0 < c <= hi for c in v)
        and v[0] <= v[1]
    )
    if not ok:
        p.bad(
            f"{path}.{key}",
            f"must be [at high SNR, at threshold], two numbers in (0, {hi:g}], the first <= the second",
        )
        return default
    return (float(v[0]), float(v[1]))


_LIMITS: dict[str, tuple[float, float]] = {
    "gate_probability": (0.9, 0.999999),
    "p_init": (0.001, 0.99),
    "p_confirm": (0.0, 0.999),
    "p_delete": (0.0, 0.9),
    "max_coast_s": (0.5, 600.0),
    "tentative_max_coast_s": (0.1, 600.0),
    "max_position_sigma_m": (10.0, 10000.0),
    "survival_tau_s": (1.0, 1e6),
    "init_speed_sigma_mps": (1.0, 200.0),
    "max_speed_mps": (10.0, 2000.0),
    "two_point_max_gap_s": (0.05, 30.0),
    "pd_min": (0.01, 0.99),
    "pd_max": (0.05, 0.999),
    "feature_tau_s": (1.0, 600.0),
    "hover_speed_mps": (0.1, 10.0),
    "moved_m": (0.0, 10000.0),
    "q_steady": (1e-6, 100.0),
    "q_steady_vertical": (1e-6, 100.0),
    "q_manoeuvre": (1e-6, 1000.0),
    "q_manoeuvre_vertical": (1e-6, 1000.0),
    "turn_rate_dps": (0.0, 90.0),
    "sojourn_steady_s": (0.1, 1e4),
    "sojourn_manoeuvre_s": (0.1, 1e4),
    "p_drone_alert": (0.01, 0.999),
    "p_drone_clear": (0.0, 0.99),
    "p_drone_persist_s": (0.0, 600.0),
    "p_drone_clear_s": (0.0, 600.0),
    "min_track_age_s": (0.0, 600.0),
    "min_closing_mps": (0.0, 100.0),
    "leave_margin_m": (0.0, 10000.0),
    "eta_high_s": (0.0, 3600.0),
    "eta_critical_s": (0.0, 3600.0),
    "update_interval_s": (0.0, 3600.0),
    "heartbeat_s": (1.0, 86400.0),
    "reacquire_s": (0.0, 600.0),
    "reacquire_accel_mps2": (0.0, 50.0),
    "bearing_sigma_deg": (0.1, 90.0),
    "window_s": (1.0, 600.0),
    "remote_id_sigma_m": (0.5, 1000.0),
}
_INT_LIMITS: dict[str, tuple[int, int]] = {
    "confirm_m": (1, 30),
    "confirm_n": (1, 30),
    "tentative_max_misses": (1, 60),
    "capacity": (16, 1_000_000),
    "min_hits": (1, 1000),
    "tracks_history_max_rows": (0, 100_000_000),
    "min_reports": (1, 1000),
    "corroborate_min": (1, 1000),
}


def _section(cls, raw: Any, path: str, p: _Problems):
    if not isinstance(raw, dict):
        p.bad(path, "must be a table")
        raw = {}
    default = cls()
    values = {}
    known = {f.name for f in fields(cls)}
    for key in raw:
        if key not in known:
            p.bad(f"{path}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    for f in fields(cls):
        d = getattr(default, f.name)
        if f.name in _INT_LIMITS:
            lo, hi = _INT_LIMITS[f.name]
            values[f.name] = _int(raw, f.name, path, d, lo, hi, p)
        elif f.name in _LIMITS:
            lo, hi = _LIMITS[f.name]
            values[f.name] = _num(raw, f.name, path, d, lo, hi, p)
        elif f.name == "protocols":
            v = raw.get("protocols", list(d))
            if not (isinstance(v, list) and all(isinstance(s, str) and s for s in v)):
                p.bad(f"{path}.protocols", "must be a list of protocol names")
                v = list(d)
            values[f.name] = tuple(s.lower() for s in v)
    return cls(**values)


_RADAR_KEYS = {f.name for f in fields(RadarAccuracy)}


def _radar(raw: Any, path: str, base: RadarAccuracy, p: _Problems) -> RadarAccuracy:
    if not isinstance(raw, dict):
        p.bad(path, "must be a table")
        return base
    for key in raw:
        if key not in _RADAR_KEYS:
            p.bad(f"{path}.{key}", f"unknown key (known: {', '.join(sorted(_RADAR_KEYS))})")
    v: dict[str, Any] = {}
    v["range_sigma_m"] = _pair(raw, "range_sigma_m", path, base.range_sigma_m, 1000.0, p)
    v["az_sigma_deg"] = _pair(raw, "az_sigma_deg", path, base.az_sigma_deg, 30.0, p)
    v["el_sigma_deg"] = _pair(raw, "el_sigma_deg", path, base.el_sigma_deg, 30.0, p)
    v["vr_sigma_mps"] = _num(raw, "vr_sigma_mps", path, base.vr_sigma_mps, 0.01, 50.0, p)
    v["snr_high_db"] = _num(raw, "snr_high_db", path, base.snr_high_db, -50.0, 200.0, p)
    v["threshold_db"] = _num(raw, "threshold_db", path, base.threshold_db, -50.0, 200.0, p)
    v["false_plots_per_scan"] = _num(
        raw, "false_plots_per_scan", path, base.false_plots_per_scan, 0.0, 1e5, p
    )
    v["min_range_m"] = _num(raw, "min_range_m", path, base.min_range_m, 0.0, 1e5, p)
    v["max_range_m"] = _num(raw, "max_range_m", path, base.max_range_m, 1.0, 1e6, p)
    v["el_min_deg"] = _num(raw, "el_min_deg", path, base.el_min_deg, -90.0, 90.0, p)
    v["el_max_deg"] = _num(raw, "el_max_deg", path, base.el_max_deg, -90.0, 90.0, p)
    v["vr_ambiguity_mps"] = _num(raw, "vr_ambiguity_mps", path, base.vr_ambiguity_mps, 0.0, 1e4, p)
    v["pd_default"] = _num(raw, "pd_default", path, base.pd_default, 0.01, 0.999, p)
    v["assumed_height_m"] = _num(raw, "assumed_height_m", path, base.assumed_height_m, -1e3, 1e4, p)
    v["assumed_height_sigma_m"] = _num(
        raw, "assumed_height_sigma_m", path, base.assumed_height_sigma_m, 1.0, 1e4, p
    )
    v["snr_max_db"] = _num(raw, "snr_max_db", path, base.snr_max_db, 0.0, 300.0, p)
    out = replace(base, **v)
    if out.max_range_m <= out.min_range_m:
        p.bad(f"{path}.max_range_m", "must be greater than min_range_m")
    if out.el_max_deg <= out.el_min_deg:
        p.bad(f"{path}.el_max_deg", "must be greater than el_min_deg")
    if out.snr_high_db < out.threshold_db:
        p.bad(f"{path}.snr_high_db", "must be at least threshold_db")
    return out


def parse_drone_section(raw: dict[str, Any], source: str = "<config>") -> DroneSettings:
    """Parses and validates a ``[drone]`` table; raises ConfigError naming every bad key."""
    p = _Problems()
    raw = raw if isinstance(raw, dict) else {}
    known = {"tracker", "alerts", "rf", "prior", "radar", "radars"}
    for key in raw:
        if key not in known:
            p.bad(f"drone.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    tracker = _section(TrackerSettings, raw.get("tracker", {}), "drone.tracker", p)
    alerts = _section(AlertSettings, raw.get("alerts", {}), "drone.alerts", p)
    rf = _section(RfSettings, raw.get("rf", {}), "drone.rf", p)
    if tracker.confirm_m > tracker.confirm_n:
        p.bad("drone.tracker.confirm_m", "must not exceed confirm_n")
    if tracker.pd_min > tracker.pd_max:
        p.bad("drone.tracker.pd_min", "must not exceed pd_max")
    if alerts.p_drone_clear > alerts.p_drone_alert:
        p.bad("drone.alerts.p_drone_clear", "must not exceed p_drone_alert")
    if alerts.eta_critical_s > alerts.eta_high_s:
        p.bad("drone.alerts.eta_critical_s", "must not exceed eta_high_s")
    prior = dict(DroneSettings().prior)
    prior_raw = raw.get("prior", {})
    if not isinstance(prior_raw, dict):
        p.bad("drone.prior", "must be a table of class = probability")
        prior_raw = {}
    for key, val in prior_raw.items():
        if key not in CLASSES:
            p.bad(f"drone.prior.{key}", f"unknown class (known: {', '.join(CLASSES)})")
        elif not (isinstance(val, int | float) and not isinstance(val, bool) and 0 < val < 1):
            p.bad(f"drone.prior.{key}", "must be a number in (0, 1)")
        else:
            prior[key] = float(val)
    total = sum(prior.values())
    prior = {k: v / total for k, v in prior.items()}
    radar_default = _radar(raw.get("radar", {}), "drone.radar", RadarAccuracy(), p)
    radars: dict[str, RadarAccuracy] = {}
    radars_raw = raw.get("radars", {})
    if not isinstance(radars_raw, dict):
        p.bad("drone.radars", "must be a table of per-radar tables ([drone.radars.<sensor id>])")
        radars_raw = {}
    for sid, sub in radars_raw.items():
        radars[sid] = _radar(sub, f"drone.radars.{sid}", radar_default, p)
    if p.lines:
        raise ConfigError(source, p.lines)
    return DroneSettings(tracker, alerts, rf, prior, radar_default, radars)
