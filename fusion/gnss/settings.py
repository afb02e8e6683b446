"""The ``[gnss]`` section of a site configuration: GNSS detector settings, validated.

Every key has a default (documented in docs/gnss.md); an unknown key or a bad
value is an error naming ``gnss.<key>``, so a typo cannot silently fall back.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from fusion.config import ConfigError, SiteConfig


@dataclass(frozen=True, slots=True)
class GnssSettings:
    # Jamming (and antenna attenuation): common-mode C/N0 drop.
    cn0_drop_db: float = 3.0  # median C/N0 drop across satellites that starts an event
    cn0_clear_db: float = 1.5  # ...and below which it has cleared (hysteresis)
    cn0_drop_fraction: float = 0.6  # share of satellites that dropped >= 2 dB (or were lost)
    min_satellites: int = 4  # satellites with a baseline needed to judge C/N0
    baseline_tau_s: float = 120.0  # per-satellite C/N0 baseline time constant
    # Receiver power indicators (MON-RF / MON-HW), learned per receiver and RF block.
    agc_sigma: float = 5.0  # AGC change, in robust sigmas, that counts
    agc_min_change: float = 0.03  # ...and at least this fraction of the AGC baseline
    jam_ind_sigma: float = 5.0  # CW jamming indicator rise, in robust sigmas
    jam_ind_min_rise: float = 10.0  # ...and at least this many units
    power_only_s: float = 3.0  # AGC drop and jamInd rise together this long: jamming
    baseline_window: int = 120  # samples in the rolling scalar baselines
    # RF band power (spectrum sweeps).
    rf_rise_db: float = 3.0  # band power over the learned floor that corroborates jamming
    rf_only_rise_db: float = 10.0  # ...that is jamming on its own, receivers unaffected
    rf_only_s: float = 3.0
    # Spoofing.
    spoof_cluster_min: int = 4  # changed satellites converging on one C/N0
    spoof_cluster_width_db: float = 2.0
    spoof_change_db: float = 2.5  # minimum change (and 3 sigma) for a satellite to count
    position_limit_m: float = 50.0  # horizontal offset from the reference position
    position_sigma: float = 5.0  # ...and this many times the receiver's horizontal accuracy
    self_survey_s: float = 60.0  # unsurveyed receiver: learn its position over this long
    clock_jump_ns: float = 500.0  # receiver clock bias step against its drift
    # Spoofing present from the start: the static sky check (no baseline, no onset needed).
    sky_min_satellites: int = 8  # tracked satellites of known elevation needed to judge the sky
    sky_min_elev_span_deg: float = 30.0  # ...spanning at least this many degrees of elevation
    sky_flat_spread_db: float = 1.5  # C/N0 standard deviation across them at or below this...
    sky_flat_slope_db_per_deg: float = 0.05  # ...and a C/N0-on-elevation slope at or below this
    sky_persist_s: float = 1.5  # the sky check must fail this long (three 1 Hz epochs)
    horizon_margin_deg: float = 5.0  # a satellite tracked lower than -this is not in the sky...
    below_horizon_min: int = 2  # ...and this many of them are evidence
    flag_count: int = 2  # receiver's own jamming/spoofing flags within flag_window_s
    flag_window_s: float = 10.0
    nmea_uere_m: float = 4.0  # NMEA-only accuracy: HDOP times this (GST when present)
    # Incident life cycle.
    persist_s: float = 0.9  # a condition must hold this long (two 1 Hz epochs) to count
    close_after_s: float = 10.0  # all evidence clear this long: the incident closes
    update_interval_s: float = 10.0  # evidence refresh while open (severity changes at once)
    stale_s: float = 5.0  # a receiver silent this long no longer counts as evidence


_BOUNDS: dict[str, tuple[float, float]] = {
    "cn0_drop_db": (0.5, 40.0),
    "cn0_clear_db": (0.1, 40.0),
    "cn0_drop_fraction": (0.05, 1.0),
    "min_satellites": (1, 64),
    "baseline_tau_s": (5.0, 86400.0),
    "agc_sigma": (1.0, 100.0),
    "agc_min_change": (0.0, 1.0),
    "jam_ind_sigma": (1.0, 100.0),
    "jam_ind_min_rise": (0.0, 255.0),
    "power_only_s": (0.0, 600.0),
    "baseline_window": (3, 100000),
    "rf_rise_db": (0.1, 60.0),
    "rf_only_rise_db": (0.1, 100.0),
    "rf_only_s": (0.0, 600.0),
    "spoof_cluster_min": (2, 64),
    "spoof_cluster_width_db": (0.1, 20.0),
    "spoof_change_db": (0.5, 40.0),
    "position_limit_m": (1.0, 1e7),
    "position_sigma": (0.0, 100.0),
    "self_survey_s": (0.0, 86400.0),
    "clock_jump_ns": (1.0, 1e9),
    "sky_min_satellites": (3, 64),
    "sky_min_elev_span_deg": (5.0, 90.0),
    "sky_flat_spread_db": (0.1, 10.0),
    "sky_flat_slope_db_per_deg": (0.0, 1.0),
    "sky_persist_s": (0.0, 600.0),
    "horizon_margin_deg": (0.0, 90.0),
    "below_horizon_min": (1, 64),
    "flag_count": (1, 1000),
    "flag_window_s": (0.5, 3600.0),
    "nmea_uere_m": (0.1, 1000.0),
    "persist_s": (0.0, 600.0),
    "close_after_s": (0.0, 3600.0),
    "update_interval_s": (0.5, 3600.0),
    "stale_s": (0.5, 3600.0),
}

SECTION = "gnss"


def parse_gnss_settings(raw: dict[str, Any], source: str = "<config>") -> GnssSettings:
    """Settings from a ``[gnss]`` table; raises ConfigError listing every bad key."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    known = {f.name: f for f in fields(GnssSettings)}
    for key in sorted(raw):
        if key not in known:
            problems.append(f"{SECTION}.{key}: unknown setting (known: {', '.join(sorted(known))})")
            continue
        default = known[key].default
        value = raw[key]
        lo, hi = _BOUNDS[key]
        if isinstance(default, int):
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                problems.append(f"{SECTION}.{key}: must be an integer in [{lo:g}, {hi:g}]")
                continue
        else:
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or value != value
                or not lo <= value <= hi
            ):
                problems.append(f"{SECTION}.{key}: must be a number in [{lo:g}, {hi:g}]")
                continue
            value = float(value)
        values[key] = value
    settings = GnssSettings(**values)
    if settings.cn0_clear_db > settings.cn0_drop_db:
        problems.append(f"{SECTION}.cn0_clear_db: must not exceed cn0_drop_db")
    if settings.rf_only_rise_db < settings.rf_rise_db:
        problems.append(f"{SECTION}.rf_only_rise_db: must not be below rf_rise_db")
    if problems:
        raise ConfigError(source, problems)
    return settings


def gnss_settings(site: SiteConfig) -> GnssSettings:
    """The site's ``[gnss]`` settings (defaults when the section is absent)."""
    raw = site.raw.get(SECTION, {})
    if not isinstance(raw, dict):
        raise ConfigError(site.source, [f"{SECTION}: must be a table ([{SECTION}])"])
    return parse_gnss_settings(raw, site.source)
