"""Synthetic test waveforms: mains with harmonics and noise, and the disturbances IEEE 1159
describes, as int16 counts the way a front-end sends them."""

from __future__ import annotations

import math

import numpy as np

FS = 12_800
F0 = 50.0
VN = 230.0
VPK = math.sqrt(2.0) * VN
FULL_SCALE_PU = 2.0
SCALE = FULL_SCALE_PU * VPK / 32767


def mains(n: int, rng: np.random.Generator, fs: float = FS, f0: float = F0) -> np.ndarray:
    """(n, 3) volts: three phases, 3rd/5th harmonics, a little noise and DC."""
    t = np.arange(n) / fs
    ph = np.array([0.0, -2 * math.pi / 3, 2 * math.pi / 3])
    w = 2 * math.pi * f0 * t[:, None] + ph
    v = VPK * (np.sin(w) + 0.02 * np.sin(3 * w + 0.4) + 0.03 * np.sin(5 * w + 1.1))
    return v + rng.normal(0.0, 0.4, v.shape) + 0.2


def to_counts(v: np.ndarray, scale: float = SCALE) -> np.ndarray:
    return np.clip(np.rint(v / scale), -32768, 32767).astype(np.int16)


def add_impulse(v: np.ndarray, at: int, peak_pu: float, fs: float = FS, decay_s: float = 120e-6):
    """A double-exponential impulse (one polarity on every phase) from sample ``at``."""
    t = (np.arange(len(v)) - at) / fs
    on = t >= 0
    shape = np.zeros(len(v))
    shape[on] = np.exp(-t[on] / decay_s) - np.exp(-t[on] / 0.3e-6)
    v += (peak_pu * VPK * shape)[:, None]
    return v


def add_sag(v: np.ndarray, a: int, b: int, retained=(0.6, 0.6, 0.6)) -> np.ndarray:
    v[a:b] *= np.asarray(retained)
    return v


def add_ring(v: np.ndarray, at: int, hz: float, depth_pu: float, tau_s: float, fs: float = FS):
    t = (np.arange(len(v)) - at) / fs
    on = t >= 0
    ring = np.zeros(len(v))
    ring[on] = np.exp(-t[on] / tau_s) * np.cos(2 * math.pi * hz * t[on])
    v -= (depth_pu * VPK * ring)[:, None] * np.array([1.0, -0.5, -0.5])
    return v
