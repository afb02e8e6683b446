"""GNSS jamming and spoofing detection (issue #4): see ``detector.GnssDetector``."""

from fusion.gnss.detector import GnssDetector
from fusion.gnss.settings import GnssSettings, gnss_settings

__all__ = ["GnssDetector", "GnssSettings", "gnss_settings"]
