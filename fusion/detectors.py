"""The detectors a site runs, built from its configuration.

This is the one place that lists them; each detector issue adds its own here.
"""

from __future__ import annotations

from fusion.config import SiteConfig
from fusion.detector import Detector
from fusion.supervision import SensorSupervision


def build_detectors(site: SiteConfig) -> list[Detector]:
    return [SensorSupervision(site.sensors)]
