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


def add_emp_member(
    v: np.ndarray,
    t_arrive_s: np.ndarray,
    peak_pu: np.ndarray,
    *,
    width_s: float,
    fall_s: float,
    ring_hz: float,
    ring_fraction: float,
    ring_decay_s: float,
    ring_sign: float = 1.0,
    fs: float = FS,
) -> np.ndarray:
    """One member of the EMP-like family (issue #13) added to ``v`` (n, 3) volts, before any
    clipping: per phase a flat top of ``peak_pu`` (signed, coupling included) from
    ``t_arrive_s`` for ``width_s``, then an exponential fall and damped ringing.

    Written independently of the simulator's ``_FamilyImpulse``: the same physics, so the
    detector is checked against two renderings of it.
    """
    t = np.arange(len(v)) / fs
    for k in range(v.shape[1]):
        dt = t - t_arrive_s[k]
        a = peak_pu[k] * VPK
        top = (dt >= 0) & (dt < width_s)
        v[top, k] += a
        after = dt >= width_s
        u = dt[after] - width_s
        ring = (
            ring_sign
            * ring_fraction
            * np.exp(-u / ring_decay_s)
            * np.sin(2 * math.pi * ring_hz * u)
        )
        v[after, k] += a * (np.exp(-u / fall_s) + ring)
    return v


def scale_for(full_scale_pu: float) -> float:
    """Volts per count of a front-end whose input range is ``full_scale_pu`` nominal peaks."""
    return full_scale_pu * VPK / 32767
