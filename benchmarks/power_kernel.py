"""Throughput of the per-channel power kernel chain: Numba streaming kernels against a NumPy
vectorised implementation of the same chain, side by side, in samples per second per core.

    .venv/bin/python benchmarks/power_kernel.py [--seconds 60] [--repeat 5]

The chain, per sample and channel (fusion/power/kernels.py): scaling and clip
count, positive zero crossings with hysteresis and frequency, U_rms(1/2)
refreshed every half cycle with dip/swell hysteresis, the cycle-to-cycle
difference, excursions of it (merged across short gaps) with peak, dv/dt,
Teager energy, energy, sign changes and clips, and their classification
(impulse / oscillatory / waveshape) with the impulse patched out of the
reference cycle.

The NumPy version does the same work with whole-array operations per block
(masks, cumulative sums, ``reduceat`` over runs, the hysteresis of the dip and
swell machines as running maxima of set and reset indices; an impulse is
patched out of the reference and the difference computed again). One
simplification, in NumPy's favour: an excursion still open at the end of a
block is cut there. On the test signal both find the same events (printed).

Timing is CPU time of this thread (``time.thread_time``), so other processes
on a shared machine do not count against either side; the best of
``--repeat`` runs is kept. The input is a 3-phase 12.8 kS/s stream (the
simulated front-ends' rate) with an impulse every second, a sag and a ringing
capacitor switching every ten seconds, in frames of 256 samples (what a
front-end sends), 4096 and 65536.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np

from fusion.power import kernels as kn
from fusion.power.kernels import ChainSettings, WaveformChain, chain_params

FS = 12_800
F0 = 50.0
VN = 230.0
VPK = math.sqrt(2.0) * VN
SCALE = 2.0 * VPK / 32767
FRAMES = (256, 4096, 65536)


def test_signal(seconds: float, seed: int = 1) -> np.ndarray:
    n = int(seconds * FS)
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    ph = np.array([0.0, -2 * math.pi / 3, 2 * math.pi / 3])
    w = 2 * math.pi * F0 * t[:, None] + ph
    v = VPK * (np.sin(w) + 0.02 * np.sin(3 * w + 0.4) + 0.03 * np.sin(5 * w + 1.1))
    v += rng.normal(0.0, 0.4, v.shape)
    for s in range(int(seconds)):
        at = int((s + rng.uniform(0.1, 0.9)) * FS)
        dt = (np.arange(n - at)) / FS
        v[at:] += (rng.uniform(1.0, 6.0) * VPK * np.exp(-dt / 120e-6))[:, None]
        if s % 10 == 3:
            a = int((s + 0.2) * FS)
            v[a : a + FS // 4] *= 0.6
        if s % 10 == 7:
            a = int((s + 0.5) * FS)
            dt = np.arange(FS // 10) / FS
            ring = np.exp(-dt / 0.006) * np.cos(2 * math.pi * 600 * dt)
            v[a : a + FS // 10] -= (0.6 * VPK * ring)[:, None] * np.array([1.0, -0.5, -0.5])
    return np.clip(np.rint(v / SCALE), -32768, 32767).astype(np.int16)


# --------------------------------------------------------------------------- NumPy chain


class NumpyChain:
    """The chain with whole-array NumPy operations per block (state carried between blocks)."""

    def __init__(self, k: int, fs: float, f0: float, vn: float, s: ChainSettings | None = None):
        p = chain_params(fs, f0, vn, s or ChainSettings())
        self.n = int(p[kn.P_N])
        self.h = self.n // 2
        self.fs = fs
        self.thr_on, self.thr_off = p[kn.P_THR_ON], p[kn.P_THR_OFF]
        self.gap, self.imax = int(p[kn.P_GAP]), int(p[kn.P_IMAX])
        self.dvmin, self.osc = p[kn.P_DVMIN], p[kn.P_OSC_MIN_HZ]
        self.vrms, self.sag, self.swell, self.hyst = (
            p[kn.P_VRMS],
            p[kn.P_SAG],
            p[kn.P_SWELL],
            p[kn.P_HYST],
        )
        self.zch = p[kn.P_ZC_HYST]
        self.hist = np.zeros((2 * self.n, k))
        self.idx = 0
        self.ss_part = np.zeros(k)  # sum of squares of the unfinished half cycle
        self.ss_prev = np.zeros(k)
        self.hcnt = 0
        self.nhalf = 0
        self.lo_on = np.zeros(k, bool)
        self.hi_on = np.zeros(k, bool)
        self.x_last = np.zeros(k)
        self.freq = np.zeros(k)
        self.events = 0
        self.kinds: dict[str, int] = {}

    def process(self, counts: np.ndarray, scale: np.ndarray) -> None:
        n, k = counts.shape
        x = counts * scale  # (n, k)
        clipped = (counts == 32767) | (counts == -32768)
        xx = np.concatenate([self.hist, x])
        d = x - xx[self.n : self.n + n]
        # zero crossings: sign change upwards, armed by a dip below -zch since the last one
        prev = np.concatenate([self.x_last[None, :], x[:-1]])
        up = (prev < 0) & (x >= 0)
        for c in range(k):
            cand = np.flatnonzero(up[:, c])
            if cand.size >= 2:
                lows = np.minimum.reduceat(x[:, c], cand)[:-1]
                good = cand[1:][lows < -self.zch]
                if good.size >= 2:
                    frac = -prev[good, c] / (x[good, c] - prev[good, c])
                    per = np.diff(good + frac)
                    ok = (per > 0.5 * self.n) & (per < 1.5 * self.n)
                    if ok.any():
                        self.freq[c] = self.fs / per[ok][-1]
        # U_rms(1/2): half-cycle sums from a cumulative sum, carried partial sum
        sq = x * x
        first = self.h - self.hcnt
        bounds = np.arange(first, n + 1, self.h)
        if bounds.size:
            csum = np.concatenate([np.zeros((1, k)), np.cumsum(sq, axis=0)])
            halves = np.diff(csum[np.concatenate([[0], bounds])], axis=0)
            halves[0] += self.ss_part
            both = halves + np.concatenate([self.ss_prev[None, :], halves[:-1]])
            rms = np.sqrt(both / (2 * self.h)) / self.vrms
            if self.nhalf == 0:
                rms = rms[1:]
            self.nhalf += bounds.size
            self.ss_prev = halves[-1]
            self.ss_part = csum[n] - csum[bounds[-1]]
            self.hcnt = n - bounds[-1]
            if rms.size:
                self._hysteresis(rms < self.sag, rms >= self.sag + self.hyst, self.lo_on, "dip")
                self._hysteresis(
                    rms > self.swell, rms <= self.swell - self.hyst, self.hi_on, "swell"
                )
        else:
            self.ss_part += sq.sum(axis=0)
            self.hcnt += n
        # excursions of d; an impulse is patched out of the reference cycle and d is
        # computed again, so it does not come back one cycle later (as the chain does)
        warm = max(0, self.n - self.idx)
        dv = np.abs(np.diff(np.concatenate([self.x_last[None, :], x]), axis=0))
        found = self._excursions(d, dv, clipped, warm)
        if any(r[2].any() for r in found if r is not None):
            self._patch(xx, found)
            d = x - xx[self.n : self.n + n]
            found = self._excursions(d, dv, clipped, warm)
        for r in found:
            if r is None:
                continue
            _, _, impulse, oscill, other = r
            self._count("impulse", int(impulse.sum()))
            self._count("oscillatory", int(oscill.sum()))
            self._count("waveshape", int(other.sum()))
        self._patch(xx, found)
        self.hist = xx[-2 * self.n :].copy()
        self.x_last = x[-1]
        self.idx += n

    def _excursions(self, d: np.ndarray, dv: np.ndarray, clipped: np.ndarray, warm: int) -> list:
        """Per channel: runs of |d| > thr_off closer than gap that hold a sample > thr_on,
        their features and kinds; None for a channel without any."""
        ad = np.abs(d)
        if warm:
            ad[:warm] = 0.0
        tk = np.zeros_like(d)
        tk[1:-1] = d[1:-1] ** 2 - d[:-2] * d[2:]
        out: list = []
        for c in range(d.shape[1]):
            off = np.flatnonzero(ad[:, c] > self.thr_off)
            if off.size == 0:
                out.append(None)
                continue
            split = np.flatnonzero(np.diff(off) > self.gap + 1) + 1
            seg = np.concatenate([[0], split])
            starts, ends = off[seg], off[np.concatenate([split - 1, [-1]])]
            has_on = np.add.reduceat(ad[off, c] > self.thr_on, seg) > 0
            sign = np.sign(d[off, c])
            change = np.zeros(off.size, dtype=np.int64)
            change[1:] = sign[1:] != sign[:-1]
            change[seg] = 0  # a change across two runs is no flip
            flips = np.add.reduceat(change, seg)
            # the features the chain reports (computed, not used by the count)
            np.maximum.reduceat(ad[off, c], seg)
            np.maximum.reduceat(tk[off, c], seg)
            np.add.reduceat(d[off, c] ** 2, seg)
            np.add.reduceat(clipped[off, c].astype(np.int64), seg)
            dvmax = np.maximum.reduceat(dv[off, c], seg)
            dur = ends - starts + 1
            osc = np.where(flips >= 2, flips * self.fs / (2.0 * np.maximum(dur, 1)), 0.0)
            impulse = (dur <= self.imax) & (flips == 0) & (dvmax >= self.dvmin) & has_on
            oscill = ~impulse & (flips >= 2) & (osc >= self.osc) & has_on
            other = has_on & ~impulse & ~oscill
            out.append((starts, ends, impulse, oscill, other))
        return out

    def _patch(self, xx: np.ndarray, found: list) -> None:
        for c, r in enumerate(found):
            if r is None:
                continue
            starts, ends, impulse = r[0], r[1], r[2]
            for a, b in zip(starts[impulse], ends[impulse], strict=True):
                rows = np.arange(a, b + 1)
                xx[2 * self.n + rows, c] = xx[self.n + rows, c]

    def _hysteresis(self, set_: np.ndarray, reset: np.ndarray, on0: np.ndarray, name: str) -> None:
        m = set_.shape[0]
        idx = np.arange(1, m + 1)[:, None]
        last_set = np.maximum.accumulate(np.where(set_, idx, 0), axis=0)
        last_reset = np.maximum.accumulate(np.where(reset, idx, 0), axis=0)
        carry = on0[None, :] & (last_reset == 0)
        on = (last_set > last_reset) | carry
        ended = on[:-1] & ~on[1:]
        ended_first = on0 & ~on[0]
        self._count(name, int(ended.sum() + ended_first.sum()))
        on0[:] = on[-1]

    def _count(self, kind: str, n: int) -> None:
        if n:
            self.kinds[kind] = self.kinds.get(kind, 0) + n
            self.events += n


# --------------------------------------------------------------------------- runs


def run_numba(counts: np.ndarray, frame: int) -> tuple[float, dict[str, int]]:
    k = counts.shape[1]
    chain = WaveformChain(k, FS, F0, VN)
    chans = np.arange(k, dtype=np.int64)
    scale = np.full(k, SCALE)
    kinds: dict[str, int] = {}
    t0 = time.thread_time()
    for a in range(0, counts.shape[0], frame):
        ev_i, *_ = chain.process(counts[a : a + frame], chans, scale)
        for kind in ev_i[:, kn.E_KIND].tolist():
            name = kn.KIND_NAMES[kind]
            kinds[name] = kinds.get(name, 0) + 1
    return time.thread_time() - t0, kinds


def run_numpy(counts: np.ndarray, frame: int) -> tuple[float, dict[str, int]]:
    k = counts.shape[1]
    chain = NumpyChain(k, FS, F0, VN)
    scale = np.full(k, SCALE)
    t0 = time.thread_time()
    for a in range(0, counts.shape[0], frame):
        chain.process(counts[a : a + frame], scale)
    return time.thread_time() - t0, chain.kinds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="stream length (default 60 s)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per case; the best is kept")
    args = ap.parse_args()
    counts = test_signal(args.seconds)
    samples = counts.size
    run_numba(counts[:8192], 256)  # compile (or load the cache) outside the timing
    print(
        f"power kernel chain: {args.seconds:g} s of 3-phase {FS} S/s = {samples / 1e6:.2f} M samples, "
        f"best of {args.repeat}, CPU time of one thread"
    )
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs")
    print(f"{'frame':>7}  {'Numba M samples/s':>18}  {'NumPy M samples/s':>18}  {'ratio':>6}")
    kinds = {}
    for frame in FRAMES:
        best_nb = best_np = math.inf
        for _ in range(args.repeat):
            t, kinds["numba"] = run_numba(counts, frame)
            best_nb = min(best_nb, t)
            t, kinds["numpy"] = run_numpy(counts, frame)
            best_np = min(best_np, t)
        nb, npy = samples / best_nb / 1e6, samples / best_np / 1e6
        print(f"{frame:>7}  {nb:>18.1f}  {npy:>18.1f}  {nb / npy:>5.1f}x")
    print("events found  numba:", dict(sorted(kinds["numba"].items())))
    print("              numpy:", dict(sorted(kinds["numpy"].items())))
    print("goal: >= 200 M samples/s per core and >= 10x NumPy")


if __name__ == "__main__":
    main()
