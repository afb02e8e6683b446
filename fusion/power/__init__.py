"""EMP-like power transients and power quality on the site's feeds (issue #5).

``PowerTransientDetector`` (detector.py) reads power waveform frames,
switchgear events and RF spectrum sweeps and raises ``power_transient``
alerts. Its parts, one job each:

- ``kernels``: the streaming Numba chain per channel (frequency, U_rms(1/2),
  cycle-to-cycle difference, impulse/oscillatory excursions, dips, swells);
- ``events``: kernel rows as timed per-channel events;
- ``burst``: triggered high-rate captures, analysed on their own;
- ``rf_burst``: broadband bursts in spectrum sweeps;
- ``classify``: the rules from events to a subtype;
- ``settings``: the ``[power_transients]`` section;
- ``panel``: the report's figures.

See docs/power.md.
"""

from fusion.power.detector import PowerTransientDetector
from fusion.power.settings import PowerSettings

__all__ = ["PowerSettings", "PowerTransientDetector"]
