"""Drone approach detection: tracking, classification, zones, RF and Remote ID fusion.

``DroneDetector`` (``detector``) is the detector the pipeline runs; the other
modules are its parts: ``measurement`` (radar plots into the site frame),
``kernels`` and ``tracker`` (the Numba multi-target tracker), ``classify``,
``zones``, ``rf_fusion`` and ``panel`` (the report's map). Settings:
``settings`` (the ``[drone]`` section), documented in ``docs/drone.md``.
"""

from fusion.drone.detector import DroneDetector
from fusion.drone.settings import DroneSettings

__all__ = ["DroneDetector", "DroneSettings"]
