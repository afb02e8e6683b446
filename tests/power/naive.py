"""Slow, obvious twins of the power kernels (STUMPY's ``tests/naive.py`` habit).

Plain Python over a whole signal at once: no frames, no state arrays, no
scratch buffers. Each step is written the way the method describes it, so a
disagreement with the Numba chain points at the chain.
"""

from __future__ import annotations

import math

import numpy as np

from fusion.power.kernels import ChainSettings


def chain_reference(
    counts: np.ndarray,
    scale: np.ndarray,
    fs_hz: float,
    nominal_hz: float,
    nominal_v: float,
    s: ChainSettings | None = None,
) -> tuple[list[tuple], list[tuple]]:
    """Events and envelope of the whole signal ``counts`` (n, k) int16.

    Events: (channel, kind, start, end, flips, clips, polarity, peak_idx, truncated,
    peak_d, peak_x, dv, teager, energy, rms, osc_hz, freq) with kinds numbered as
    the kernel's (1 impulse, 2 oscillatory, 3 waveshape, 4 dip, 5 swell), in the
    order the chain emits them (channel by channel, each in time order).
    Envelope: (channel, end index, rms_pu, freq_hz).
    """
    s = s or ChainSettings()
    n_cycle = round(fs_hz / nominal_hz)
    half = n_cycle // 2
    vpk = math.sqrt(2.0) * nominal_v
    thr_on = s.threshold_pu * vpk
    thr_off = min(s.release_pu, s.threshold_pu) * vpk
    gap = max(1, round(s.merge_gap_s * fs_hz))
    imax = math.floor(s.impulse_max_s * fs_hz + 1e-9) if fs_hz >= s.impulse_min_fs_hz else 0
    imax = min(imax, max(0, n_cycle - gap - 1))
    ring_max = math.floor(s.impulse_ring_max_s * fs_hz + 1e-9) if imax > 0 else 0
    ring_max = min(max(ring_max, imax), max(0, n_cycle - gap - 1))
    ring_hp = fs_hz / (2.0 * s.impulse_ring_min_hz)
    dv_min = s.impulse_min_dvdt_pu * 2.0 * math.pi * nominal_hz * vpk / fs_hz
    zc_h = s.zero_cross_hysteresis_pu * vpk

    events: list[tuple] = []
    envelope: list[tuple] = []
    n = counts.shape[0]
    for c in range(counts.shape[1]):
        raw = counts[:, c].astype(np.int64)
        x = [float(r) * float(scale[c]) for r in raw]
        clipped = [r in (32767, -32768) for r in raw]
        ref = list(x)  # the reference each later cycle is compared with (impulses patched out)

        def reference(i: int, ref: list[float] = ref) -> float:
            return ref[i - n_cycle] if i >= n_cycle else 0.0  # the chain starts from zeros

        freq = 0.0
        armed = False
        last_cross = -1.0
        dip = None  # [start, lowest, clips]
        swell = None
        ex = None  # open excursion: dict
        d_hist = [0.0, 0.0]  # d[i-2], d[i-1]
        for i in range(n):
            xi = x[i]
            x_prev = x[i - 1] if i > 0 else 0.0
            d = xi - reference(i)
            # zero crossing
            if xi < -zc_h:
                armed = True
            if armed and xi >= 0.0:
                armed = False
                t_cross = (i - 1) + (-x_prev) / (xi - x_prev)
                if last_cross >= 0.0 and 0.5 * n_cycle < t_cross - last_cross < 1.5 * n_cycle:
                    freq = fs_hz / (t_cross - last_cross)
                last_cross = t_cross
            # U_rms(1/2) at the end of every half cycle, over the cycle before it
            if (i + 1) % half == 0 and i + 1 >= 2 * half:
                window = x[i + 1 - 2 * half : i + 1]
                rms = math.sqrt(sum(v * v for v in window) / (2 * half)) / nominal_v
                envelope.append((c, i + 1, rms, freq))
                if dip is None:
                    if rms < s.sag_pu:
                        dip = [i + 1 - 2 * half, rms, 0]
                else:
                    dip[1] = min(dip[1], rms)
                    if rms >= s.sag_pu + s.hysteresis_pu:
                        events.append(_rms_event(c, 4, dip, i + 1, freq))
                        dip = None
                if swell is None:
                    if rms > s.swell_pu:
                        swell = [i + 1 - 2 * half, rms, 0]
                else:
                    swell[1] = max(swell[1], rms)
                    if rms <= s.swell_pu - s.hysteresis_pu:
                        events.append(_rms_event(c, 5, swell, i + 1, freq))
                        swell = None
            if clipped[i]:
                if dip is not None:
                    dip[2] += 1
                if swell is not None:
                    swell[2] += 1
            # excursions of d
            teager = d_hist[1] * d_hist[1] - d_hist[0] * d
            if ex is not None:
                if i - ex["start"] < 2:  # the onset: an impulse may straddle two samples
                    ex["dv0"] = max(ex["dv0"], abs(xi - x_prev))
                    ex["rail"] |= clipped[i] and abs(xi - x_prev) >= dv_min
                if abs(d) > thr_off:
                    sign = 1 if d > 0 else -1
                    if sign != ex["sign"]:
                        ex["flips"] += 1
                        if ex["flips"] == 1:
                            ex["flip0"] = i
                        ex["flip1"] = i
                        ex["sign"] = sign
                    ex["last"] = i
                    if i - ex["start"] >= imax:
                        ex["late"] = max(ex["late"], abs(d))
                    if abs(d) > abs(ex["peak_d"]):
                        ex["peak_d"], ex["peak_idx"] = d, i
                    ex["peak_x"] = max(ex["peak_x"], abs(xi))
                    ex["dv"] = max(ex["dv"], abs(xi - x_prev))
                    ex["clips"] += clipped[i]
                    ex["energy"] += d * d
                    ex["teager"] = max(ex["teager"], teager)
                elif i - ex["last"] > gap:
                    kind = _excursion_kind(
                        ex, fs_hz, imax, dv_min, s.oscillatory_min_hz, ring_max, ring_hp
                    )
                    events.append(_excursion_event(c, kind, ex, fs_hz, freq))
                    if kind == 1 and i - ex["start"] < n_cycle:
                        for j in range(ex["start"], ex["last"] + 1):
                            ref[j] = reference(j)
                    ex = None
                else:
                    ex["energy"] += d * d
            elif i >= n_cycle and (
                abs(d) > thr_on or (clipped[i] and imax > 0 and abs(xi - x_prev) >= dv_min)
            ):
                sign = 1 if d > 0 else -1
                ex = {
                    "start": i,
                    "last": i,
                    "flips": 0,
                    "sign": sign,
                    "sign0": sign,
                    "clips": int(clipped[i]),
                    "flip0": i,
                    "flip1": i,
                    "peak_idx": i,
                    "peak_d": d,
                    "peak_x": abs(xi),
                    "dv": abs(xi - x_prev),
                    "teager": teager,
                    "energy": d * d,
                    "dv0": abs(xi - x_prev),
                    "rail": bool(clipped[i]) and abs(xi - x_prev) >= dv_min,
                    "late": 0.0,
                }
            d_hist = [d_hist[1], d]
    return events, envelope


def _excursion_kind(
    ex: dict,
    fs: float,
    imax: int,
    dv_min: float,
    osc_min_hz: float,
    ring_max: int,
    ring_hp: float,
) -> int:
    duration = ex["last"] - ex["start"] + 1
    osc = _osc_hz(ex, fs)
    if imax > 0 and duration <= imax and ex["flips"] == 0 and ex["dv"] >= dv_min:
        return 1  # a clean impulse: unidirectional, short, steep
    if imax > 0 and duration <= ring_max and ex["rail"]:
        return 1  # the rail, reached faster than the mains can move, at the onset
    rings = (
        ex["flips"] >= 1
        and ex["flip0"] - ex["start"] <= imax
        and ex["last"] - ex["flip0"] + 1 <= ex["flips"] * ring_hp
    )
    if imax > 0 and duration <= ring_max and ex["dv0"] >= dv_min and rings:
        return 1  # a steep onset, then ringing at kHz that dies away quickly
    decayed = ex["late"] <= 0.5 * abs(ex["peak_d"])
    if imax > 0 and duration <= ring_max and ex["dv0"] >= dv_min and decayed:
        return 1  # a steep onset, below half its peak once imax samples old
    if ex["flips"] >= 2 and osc >= osc_min_hz:
        return 2
    return 3


def _osc_hz(ex: dict, fs: float) -> float:
    if ex["flips"] >= 2 and ex["flip1"] > ex["flip0"]:
        return (ex["flips"] - 1) * fs / (2.0 * (ex["flip1"] - ex["flip0"]))
    return 0.0


def _excursion_event(c: int, kind: int, ex: dict, fs: float, freq: float) -> tuple:
    return (
        c,
        kind,
        ex["start"],
        ex["last"] + 1,
        ex["flips"],
        ex["clips"],
        ex["sign0"],
        ex["peak_idx"],
        0,
        ex["peak_d"],
        ex["peak_x"],
        ex["dv"],
        ex["teager"],
        ex["energy"] / fs,
        0.0,
        _osc_hz(ex, fs),
        freq,
    )


def _rms_event(c: int, kind: int, state: list, end: int, freq: float) -> tuple:
    start, extreme, clips = state
    return (c, kind, start, end, 0, clips, 0, start, 0, 0.0, 0.0, 0.0, 0.0, 0.0, extreme, 0.0, freq)


def impulse_groups_reference(
    starts: list[tuple[str, str, str, int]], coincidence_ns: int
) -> list[list[tuple[str, str, str, int]]]:
    """Impulses (sensor, feed, channel, t_ns) grouped as the detector does: each joins the
    first group whose earliest start is within ``coincidence_ns`` of it."""
    groups: list[list[tuple[str, str, str, int]]] = []
    for item in starts:
        for g in groups:
            if abs(item[3] - min(x[3] for x in g)) <= coincidence_ns:
                g.append(item)
                break
        else:
            groups.append([item])
    return groups
