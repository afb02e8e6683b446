"""Settings of the power-transient detector: the ``[power_transients]`` TOML section.

Every key has a default (docs/power.md argues each); ``from_section``
validates the section and raises ``ConfigError`` with one line per bad key,
naming it, as ``rampart check-config`` reports problems.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from fusion.config import ConfigError
from fusion.power.kernels import ChainSettings

SECTION = "power_transients"
SEVERITIES = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class PowerSettings:
    # waveform excursions (cycle-to-cycle difference), per unit of the nominal peak
    threshold_pu: float = 0.3
    release_pu: float = 0.1
    merge_gap_ms: float = 1.0
    impulse_max_ms: float = 1.0
    impulse_min_dvdt_pu: float = 10.0
    impulse_min_fs_hz: float = 4000.0
    impulse_ring_max_ms: float = 6.0
    impulse_ring_min_hz: float = 1000.0
    oscillatory_min_hz: float = 200.0
    # U_rms(1/2) events, per unit of the nominal RMS (IEEE 1159, IEC 61000-4-30)
    sag_pu: float = 0.9
    swell_pu: float = 1.1
    interruption_pu: float = 0.1
    hysteresis_pu: float = 0.02
    fault_unbalance_pu: float = 0.2
    # classification across channels, feeds and other sensors
    coincidence_ms: float = 1.5
    min_feeds: int = 2
    group_gap_s: float = 0.5
    settle_s: float = 0.5
    switchgear_window_s: float = 2.0
    ongoing_after_s: float = 1.0
    rf_burst_db: float = 10.0
    rf_burst_fraction: float = 0.9
    # alerts
    update_interval_s: float = 5.0
    close_after_s: float = 5.0
    emp_severity: str = "high"
    emp_corroborated_severity: str = "critical"
    pq_severity: str = "low"
    switching_severity: str = "info"

    @classmethod
    def from_section(cls, section: dict[str, Any], source: str = "<config>") -> PowerSettings:
        problems: list[str] = []
        values: dict[str, Any] = {}
        known = {f.name: f for f in fields(cls)}
        for key in sorted(section):
            if key not in known:
                problems.append(f"{SECTION}.{key}: unknown key (known: {', '.join(known)})")
        for name, f in known.items():
            if name not in section:
                continue
            v = section[name]
            where = f"{SECTION}.{name}"
            if f.type == "str" or isinstance(f.default, str):
                if v not in SEVERITIES:
                    problems.append(f"{where}: must be one of {', '.join(SEVERITIES)}")
                    continue
                values[name] = v
                continue
            if isinstance(f.default, int) and not isinstance(f.default, bool):
                if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                    problems.append(f"{where}: must be an integer >= 1")
                    continue
                values[name] = v
                continue
            if not isinstance(v, int | float) or isinstance(v, bool) or v != v or v <= 0:
                problems.append(f"{where}: must be a number > 0")
                continue
            values[name] = float(v)
        s = cls(**values) if not problems else cls()
        if not problems:
            problems += s._cross_checks()
        if problems:
            raise ConfigError(source, problems)
        return s

    def _cross_checks(self) -> list[str]:
        out = []
        if self.release_pu > self.threshold_pu:
            out.append(f"{SECTION}.release_pu: must not exceed threshold_pu ({self.threshold_pu})")
        if not self.interruption_pu < self.sag_pu < 1.0:
            out.append(f"{SECTION}.sag_pu: must lie between interruption_pu and 1.0")
        if self.impulse_ring_max_ms < self.impulse_max_ms:
            out.append(f"{SECTION}.impulse_ring_max_ms: must not be below impulse_max_ms")
        if self.impulse_ring_min_hz < self.oscillatory_min_hz:
            out.append(f"{SECTION}.impulse_ring_min_hz: must not be below oscillatory_min_hz")
        if self.swell_pu <= 1.0:
            out.append(f"{SECTION}.swell_pu: must be above 1.0")
        if self.hysteresis_pu >= min(1.0 - self.sag_pu, self.swell_pu - 1.0):
            out.append(f"{SECTION}.hysteresis_pu: must be smaller than the sag and swell margins")
        return out

    def chain(self) -> ChainSettings:
        return ChainSettings(
            threshold_pu=self.threshold_pu,
            release_pu=self.release_pu,
            merge_gap_s=self.merge_gap_ms / 1e3,
            impulse_max_s=self.impulse_max_ms / 1e3,
            impulse_min_dvdt_pu=self.impulse_min_dvdt_pu,
            impulse_min_fs_hz=self.impulse_min_fs_hz,
            impulse_ring_max_s=self.impulse_ring_max_ms / 1e3,
            impulse_ring_min_hz=self.impulse_ring_min_hz,
            oscillatory_min_hz=self.oscillatory_min_hz,
            sag_pu=self.sag_pu,
            swell_pu=self.swell_pu,
            hysteresis_pu=self.hysteresis_pu,
        )
