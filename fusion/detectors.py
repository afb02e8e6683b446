"""The detectors a site runs, built from its configuration.

This is the one place that lists them; each detector issue adds its own here.
"""

from __future__ import annotations

from fusion.clock_skew import ClockSkewSupervision
from fusion.config import ConfigError, SiteConfig
from fusion.detector import Detector
from fusion.drone import DroneDetector
from fusion.gnss import GnssDetector
from fusion.integrity import InputIntegrity
from fusion.power import PowerTransientDetector
from fusion.supervision import SensorSupervision


def build_detectors(site: SiteConfig) -> list[Detector]:
    sup = site.section("supervision")
    skew = sup.get("max_clock_skew_s", 2.0)
    if not isinstance(skew, int | float) or isinstance(skew, bool) or not 0.1 <= skew <= 3600:
        raise ConfigError(
            site.source,
            ["supervision.max_clock_skew_s: must be a number of seconds in [0.1, 3600]"],
        )
    return [
        SensorSupervision(site.sensors),
        ClockSkewSupervision(site.sensors, float(skew)),
        InputIntegrity(site),
        GnssDetector(site),
        PowerTransientDetector(site),
        DroneDetector(site),
    ]
