"""Triggered burst captures (contract §2.5 flag bit 1): the impulse's shape at a high rate.

A front-end that sees a fast edge sends a short block at a high sample rate
(1 MS/s, 2 ms, say) beside its continuous stream. The continuous stream shows
an EMP-like impulse as one or two clipped samples; the capture shows its
onset to the microsecond, its rise, its decay and its true peak. A capture is
analysed on its own, never fed into the continuous stream's kernels (its rate
and scale differ, and it overlaps samples the stream already has).

Per channel: the fundamental (sine, cosine and offset at the tracked mains
frequency) is fitted by least squares to the samples that are not part of the
disturbance (refitted on the samples within 5 robust standard deviations of
the last fit until that set settles, after Huber, *Robust Statistics*, 1981,
§7), and the residual is the transient. From it: peak and polarity, onset (first sample
above 10 % of the peak), 10-90 % rise time and half-peak width (the figures
IEC 61000-4-5 and IEC 61000-4-25 use to describe surge and HEMP waveforms),
steepest slope, energy, and whether it is an impulse: unidirectional and back
below the release level within the impulse length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class BurstChannel:
    channel: str
    impulsive: bool
    peak_pu: float  # |transient| peak / nominal peak
    polarity: int
    t_onset_ns: int
    rise_us: float  # 10 % -> 90 % of the peak
    fwhm_us: float  # time above half the peak
    duration_us: float  # time above the release level
    dvdt_v_per_us: float
    energy_v2s: float
    clipped: int

    def as_dict(self) -> dict:
        return {
            "channel": self.channel,
            "impulsive": self.impulsive,
            "peak_pu": round(self.peak_pu, 3),
            "polarity": self.polarity,
            "t_onset_ns": self.t_onset_ns,
            "rise_us": round(self.rise_us, 2),
            "fwhm_us": round(self.fwhm_us, 2),
            "duration_us": round(self.duration_us, 1),
            "dvdt_v_per_us": round(self.dvdt_v_per_us, 1),
            "energy_v2s": round(self.energy_v2s, 6),
            "clipped_samples": self.clipped,
        }


@dataclass(frozen=True, slots=True)
class BurstCapture:
    sensor: str
    feed: str
    t0_ns: int
    fs_hz: int
    channels: tuple[BurstChannel, ...]
    values: np.ndarray  # (n, k) volts, kept for the report's zoom

    @property
    def impulsive_channels(self) -> tuple[str, ...]:
        return tuple(c.channel for c in self.channels if c.impulsive)

    @property
    def t_onset_ns(self) -> int:
        onsets = [c.t_onset_ns for c in self.channels if c.impulsive]
        return min(onsets) if onsets else self.t0_ns

    def summary(self) -> dict:
        return {
            "sensor": self.sensor,
            "feed": self.feed,
            "t0_ns": self.t0_ns,
            "fs_hz": self.fs_hz,
            "samples": int(self.values.shape[0]),
            "channels": [c.as_dict() for c in self.channels],
        }


def analyse_burst(
    values: np.ndarray,
    clipped: np.ndarray,
    *,
    sensor: str,
    feed: str,
    channel_names: tuple[str, ...],
    t0_ns: int,
    fs_hz: int,
    nominal_v: float,
    mains_hz: float,
    threshold_pu: float,
    release_pu: float,
    impulse_max_s: float,
) -> BurstCapture:
    """Analyses one capture: ``values`` (n, k) in volts, ``clipped`` (n, k) bool."""
    n, k = values.shape
    vpk = math.sqrt(2.0) * nominal_v
    t = np.arange(n, dtype=np.float64) / fs_hz
    w = 2.0 * math.pi * mains_hz
    basis = np.column_stack([np.sin(w * t), np.cos(w * t), np.ones(n)])
    chans = []
    for c in range(k):
        x = values[:, c]
        resid = _robust_residual(basis, x)
        chans.append(
            _describe(
                resid,
                x,
                clipped[:, c],
                channel_names[c],
                t0_ns,
                fs_hz,
                vpk,
                threshold_pu,
                release_pu,
                impulse_max_s,
            )
        )
    return BurstCapture(sensor, feed, t0_ns, fs_hz, tuple(chans), values.astype(np.float32))


def _robust_residual(basis: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x minus its fundamental, fitted to the samples off the disturbance.

    Each pass refits on the samples within 5 robust standard deviations of the
    last fit; it stops when that set no longer changes (a few passes: the
    disturbance is a short stretch of a long capture).
    """
    keep = np.ones(len(x), dtype=bool)
    resid = x
    for _ in range(12):
        if keep.sum() < basis.shape[1] * 4:
            break
        coef, *_ = np.linalg.lstsq(basis[keep], x[keep], rcond=None)
        resid = x - basis @ coef
        r = resid[keep]
        sigma = 1.4826 * float(np.median(np.abs(r - np.median(r))))
        new = np.abs(resid) <= max(5.0 * sigma, 1e-9)
        if np.array_equal(new, keep):
            break
        keep = new
    return resid


def _describe(
    r: np.ndarray,
    x: np.ndarray,
    clipped: np.ndarray,
    name: str,
    t0_ns: int,
    fs_hz: int,
    vpk: float,
    threshold_pu: float,
    release_pu: float,
    impulse_max_s: float,
) -> BurstChannel:
    dt_us = 1e6 / fs_hz
    p = int(np.argmax(np.abs(r)))
    peak = float(abs(r[p]))
    sign = 1 if r[p] >= 0 else -1
    steep = float(np.max(np.abs(np.diff(x)))) / dt_us if len(x) > 1 else 0.0
    if peak < threshold_pu * vpk:
        return BurstChannel(name, False, peak / vpk, sign, t0_ns, 0.0, 0.0, 0.0, steep, 0.0, 0)
    mag = r * sign  # the transient's polarity made positive
    before = mag[: p + 1]
    # onset: the last sample before the peak still under 10 % of it, plus one
    low = np.flatnonzero(before < 0.1 * peak)
    onset = int(low[-1]) + 1 if low.size else 0
    i10 = onset
    above90 = np.flatnonzero(before >= 0.9 * peak)
    i90 = int(above90[0]) if above90.size else p
    half = mag >= 0.5 * peak
    fwhm = _run_length(half, p) * dt_us
    release = max(release_pu * vpk, 0.0)
    active = np.abs(r) > release
    run_start, run_end = _run_bounds(active, p)
    duration_us = (run_end - run_start) * dt_us
    opposite = float(np.max(-mag[run_start:run_end], initial=0.0))
    impulsive = duration_us <= impulse_max_s * 1e6 and opposite < 0.5 * peak
    energy = float(np.sum(r[run_start:run_end] ** 2)) / fs_hz
    return BurstChannel(
        channel=name,
        impulsive=bool(impulsive),
        peak_pu=peak / vpk,
        polarity=sign,
        t_onset_ns=t0_ns + round(onset * NS / fs_hz),
        rise_us=max(i90 - i10, 0) * dt_us,
        fwhm_us=fwhm,
        duration_us=duration_us,
        dvdt_v_per_us=steep,
        energy_v2s=energy,
        clipped=int(clipped[run_start:run_end].sum()),
    )


def _run_bounds(mask: np.ndarray, at: int) -> tuple[int, int]:
    """[start, end) of the run of True in ``mask`` that holds ``at``."""
    if not mask[at]:
        return at, at + 1
    off = np.flatnonzero(~mask[:at])
    start = int(off[-1]) + 1 if off.size else 0
    off = np.flatnonzero(~mask[at:])
    end = at + int(off[0]) if off.size else len(mask)
    return start, end


def _run_length(mask: np.ndarray, at: int) -> int:
    a, b = _run_bounds(mask, at)
    return b - a if mask[at] else 0
