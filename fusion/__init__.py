"""Rampart's pure core: records, kernels, detectors, the event-time engine and alerts."""

__version__ = "0.1.0"
