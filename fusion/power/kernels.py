"""Streaming waveform kernels: one pass per channel, state in arrays, exact across frames.

One call of ``_chain`` runs every sample of a frame, channel by channel, through
the whole chain and carries every running quantity in the state arrays, so a
stream fed in frames of 1, 7, 256 or 4096 samples gives the same events. Per
sample:

1. **Scaling and clipping.** Counts times the frame's scale; a count at
   -32768 or +32767 is clipped (contract §2.5) and counted.
2. **Zero crossings and frequency.** Positive-going zero crossings with a
   hysteresis of ``zc_hysteresis`` (the signal must go below it before a
   crossing counts, so noise and harmonics do not add crossings), located to a
   fraction of a sample by linear interpolation; the period between two
   crossings gives the frequency (IEC 61000-4-30 §5.1, zero-crossing method,
   here per cycle instead of per 10 s).
3. **Half-cycle RMS.** ``U_rms(1/2)`` of IEC 61000-4-30 §5.4.1: the RMS over
   one cycle, refreshed every half cycle. The window is ``2·H`` samples with
   ``H = N // 2`` and ``N = round(fs / f_nominal)`` (a fixed window, not
   zero-crossing synchronised: its error is below 0.5 % for an odd ``N``).
   Each refresh feeds two event machines with IEC 61000-4-30 §5.4.2 hysteresis:
   a dip (``U < sag_pu``, ends at ``U >= sag_pu + hysteresis_pu``) and a swell
   (``U > swell_pu``, ends at ``U <= swell_pu - hysteresis_pu``); thresholds are
   those of IEEE 1159-2019 Table 2 (sag 0.1-0.9 pu, swell > 1.1 pu). An event
   starts at the first sample of the window that crossed and ends at the last
   sample of the window that recovered (IEC 61000-4-30 §5.4.2.1).
4. **Cycle-to-cycle difference.** ``d[n] = x[n] - x[n - N]`` against the two
   cycles of history the state keeps: the steady waveform, harmonics included,
   cancels, and what remains is what changed. An *excursion* starts when ``|d|`` exceeds
   ``thr_on`` and lasts while ``|d|`` stays above ``thr_off`` with gaps shorter
   than ``gap`` samples. Over it the chain keeps the peak deviation, the peak
   of ``|x|``, the largest one-sample step (dv/dt), the Teager-Kaiser energy
   ``Ψ[n] = d[n]² - d[n-1]·d[n+1]`` (Kaiser, "On a simple algorithm to
   calculate the 'energy' of a signal", ICASSP 1990: large for sudden,
   high-frequency content), the energy ``Σ d²/fs``, clipped samples and the
   sign changes of ``d`` (an oscillation's half periods).
5. **Transient type.** At its end an excursion is an *impulse* when it is
   unidirectional, at most ``imax`` samples long and rose by at least
   ``dv_min`` in one sample (IEEE 1159-2019 §4.4.1: impulsive transients are
   unidirectional and end within about a millisecond); *oscillatory* when its
   sign changes at ``osc_min_hz`` or faster (IEEE 1159 §4.4.2: capacitor
   switching rings at a few hundred Hz); else a *waveshape change* (the onset
   of a sag, a phase jump), which is evidence, not a transient.
   Two more cases are impulses, because a real front-end does not show an
   impulse as a clean unidirectional excursion (issue #13):

   - **at the rail**: within its first ``ONSET`` samples the excursion holds a
     clipped sample reached by a step of at least ``dv_min`` (ten times the
     fundamental's steepest slope 2π·f·Vpk/fs). A clipped front-end shows at
     most ``full scale - v(t)`` of an impulse, which is small on the phase whose
     voltage already had the impulse's polarity; the rail reached faster than
     the mains can move is the evidence, whatever the visible residual. Such a
     sample starts an excursion even below ``thr_on``.
   - **ringing**: the onset rose by ``dv_min`` in one sample, the first sign
     change came within ``imax`` samples and every later half period is at
     most ``ring_hp`` samples on average (ringing at ``ring_min_hz`` or
     faster: the conductors' own resonances, kHz, not a capacitor bank's
     hundreds of Hz).
   - **decaying**: the onset rose by ``dv_min`` in one sample and, from
     ``imax`` samples on, ``|d|`` stayed below half its peak (a slow fall or a
     small lobe of ringing merged into the excursion; a sag's or fault's
     deviation follows the mains and does not decay).

   All must be over within ``ring_max`` samples, shorter than the half cycle
   that is the shortest sag or swell (IEEE 1159-2019 Table 2), so the onset of
   a sag, a swell that clips, or a fault never is one.

An impulse is patched out of the reference cycle once it has ended (its samples
in the history are replaced by the cycle before), so it does not come back
as a mirrored impulse one cycle later.

Events are written to preallocated output arrays (one column per field, named
by the ``E_*``/``EF_*`` constants) and the half-cycle RMS with the tracked
frequency to envelope arrays. The public ``WaveformChain`` owns the state and
the output buffers; ``reset`` ends open events as truncated, for a gap in the
stream.

Speed: almost every sample is quiet (no excursion, no clip), so the loop runs
in two gears. A tight inner loop takes quiet samples up to the end of the half
cycle, doing only the running sums and the zero-crossing tracker, with no calls
(its values stay in registers); anything else drops to the full step for one
sample. Both gears do the same arithmetic in the same order, so the results do
not depend on where a frame or a half cycle begins (tests/power compare them
with the slow twin and across frame sizes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

# --- event kinds ---------------------------------------------------------------------
K_IMPULSE = 1
K_OSCILLATORY = 2
K_WAVESHAPE = 3
K_DIP = 4  # U_rms(1/2) below sag_pu: a sag, or an interruption when below interruption_pu
K_SWELL = 5
KIND_NAMES = {
    K_IMPULSE: "impulse",
    K_OSCILLATORY: "oscillatory",
    K_WAVESHAPE: "waveshape",
    K_DIP: "dip",
    K_SWELL: "swell",
}

# --- integer state columns (one row per channel) -----------------------------------------
I_IDX = 0  # absolute index of the next sample in this stream
I_WARM = 1  # first sample index whose reference cycle is valid
I_HCNT = 2  # samples in the current half cycle
I_NHALF = 3  # half cycles completed
I_ZARM = 4  # went below -zc_hysteresis since the last crossing
I_EX_ON = 5
I_EX_START = 6
I_EX_LAST = 7  # last sample with |d| > thr_off
I_EX_FLIPS = 8
I_EX_SIGN = 9  # sign of d at the last sample above thr_off
I_EX_CLIPS = 10
I_EX_FLIP0 = 11  # index of the first sign change
I_EX_FLIP1 = 12  # index of the last sign change
I_LO_ON = 13
I_LO_START = 14
I_HI_ON = 15
I_HI_START = 16
I_CLIPS = 17  # clipped samples, all time
I_EX_PEAK_IDX = 18
I_EX_SIGN0 = 19  # polarity at the start of the excursion
I_LO_CLIPS = 20  # clipped samples while a dip is open
I_HI_CLIPS = 21
I_EX_RAIL = 22  # 1: a clipped sample reached faster than dv_min at the excursion's onset
N_ISTATE = 23

# --- float state columns -------------------------------------------------------------------
F_XPREV = 0
F_D1 = 1  # d[n-1]
F_D2 = 2  # d[n-2]
F_SS = 3  # sum of squares, current half cycle
F_SSP = 4  # sum of squares, previous half cycle
F_ZLAST = 5  # fractional index of the last positive zero crossing; -1: none yet
F_FREQ = 6  # tracked frequency, Hz; 0: not yet
F_EX_PEAKD = 7  # signed d of largest magnitude
F_EX_PEAKX = 8  # largest |x|
F_EX_DV = 9  # largest |x[n] - x[n-1]|
F_EX_TK = 10  # largest Teager-Kaiser energy of d
F_EX_EN = 11  # sum of d²
F_LO_MIN = 12  # lowest U_rms(1/2), pu, while a dip is open
F_HI_MAX = 13
F_RMS = 14  # latest U_rms(1/2), pu
F_EX_DV0 = 15  # largest |x[n] - x[n-1]| over the excursion's onset (its first ONSET samples)
F_EX_LATE = 16  # largest |d| once the excursion is ``imax`` samples old
N_FSTATE = 17

# --- parameters ----------------------------------------------------------------------------
P_N = 0  # samples per nominal cycle
P_FS = 1
P_THR_ON = 2  # V
P_THR_OFF = 3  # V
P_GAP = 4  # samples
P_IMAX = 5  # samples; 0: impulses cannot be resolved at this rate
P_DVMIN = 6  # V per sample
P_OSC_MIN_HZ = 7
P_VRMS = 8  # nominal RMS, V
P_SAG = 9  # pu
P_SWELL = 10
P_HYST = 11
P_ZC_HYST = 12  # V
P_RING_MAX = 13  # samples: the longest excursion an impulse with its ringing may be
P_RING_HP = 14  # samples: the longest mean half period of an impulse's ringing
N_PARAMS = 15

ONSET = 2  # samples: an impulse's onset (it may straddle two samples)

# --- event columns ---------------------------------------------------------------------------
E_CH = 0  # channel row (index into the chain's channels)
E_KIND = 1
E_START = 2  # first sample
E_END = 3  # one past the last sample
E_FLIPS = 4
E_CLIPS = 5
E_POLARITY = 6  # +1 / -1 (excursions), 0 (RMS events)
E_PEAK_IDX = 7
E_TRUNC = 8  # 1: ended by a gap in the stream, not by the signal
N_EI = 9
EF_PEAK_D = 0  # V, signed
EF_PEAK_X = 1  # V
EF_DV = 2  # V per sample
EF_TK = 3  # V²
EF_ENERGY = 4  # V²·s
EF_RMS = 5  # pu: lowest (dip) or highest (swell) U_rms(1/2)
EF_OSC_HZ = 6
EF_FREQ = 7  # tracked mains frequency at the end, Hz
N_EF = 8

# envelope: per half cycle, ``env_idx[j]`` is one past the last sample of the window
# (the same for every channel), ``env_rms[j, k]`` U_rms(1/2) in pu, ``env_freq[j, k]`` Hz


@njit(cache=True, nogil=True)
def _emit_excursion(k, ist, fst, w, base, prm, ev_i, ev_f, n_ev, newest, trunc):
    """Ends channel ``k``'s open excursion: classify it, write it, patch out an impulse.

    ``w`` holds the channel's samples from absolute index ``base`` up to ``newest``.
    """
    start = ist[k, I_EX_START]
    last = ist[k, I_EX_LAST]
    dur = last - start + 1
    flips = ist[k, I_EX_FLIPS]
    fs = prm[P_FS]
    imax = int(prm[P_IMAX])
    osc_hz = 0.0
    if flips >= 2 and ist[k, I_EX_FLIP1] > ist[k, I_EX_FLIP0]:
        osc_hz = (flips - 1) * fs / (2.0 * (ist[k, I_EX_FLIP1] - ist[k, I_EX_FLIP0]))
    ring_max = int(prm[P_RING_MAX])
    flip0 = ist[k, I_EX_FLIP0]
    if imax > 0 and dur <= imax and flips == 0 and fst[k, F_EX_DV] >= prm[P_DVMIN]:
        kind = K_IMPULSE
    elif imax > 0 and dur <= ring_max and ist[k, I_EX_RAIL] == 1:
        kind = K_IMPULSE  # reached the rail faster than the mains can move
    elif (
        imax > 0
        and dur <= ring_max
        and flips >= 1
        and fst[k, F_EX_DV0] >= prm[P_DVMIN]
        and flip0 - start <= imax
        and last - flip0 + 1 <= flips * prm[P_RING_HP]
    ):
        kind = K_IMPULSE  # a steep impulse and the kHz ringing it excited
    elif (
        imax > 0
        and dur <= ring_max
        and fst[k, F_EX_DV0] >= prm[P_DVMIN]
        and fst[k, F_EX_LATE] <= 0.5 * abs(fst[k, F_EX_PEAKD])
    ):
        kind = K_IMPULSE  # a steep impulse that had decayed to half within imax
    elif flips >= 2 and osc_hz >= prm[P_OSC_MIN_HZ]:
        kind = K_OSCILLATORY
    else:
        kind = K_WAVESHAPE
    ev_i[n_ev, E_CH] = k
    ev_i[n_ev, E_KIND] = kind
    ev_i[n_ev, E_START] = start
    ev_i[n_ev, E_END] = last + 1
    ev_i[n_ev, E_FLIPS] = flips
    ev_i[n_ev, E_CLIPS] = ist[k, I_EX_CLIPS]
    ev_i[n_ev, E_POLARITY] = ist[k, I_EX_SIGN0]
    ev_i[n_ev, E_PEAK_IDX] = ist[k, I_EX_PEAK_IDX]
    ev_i[n_ev, E_TRUNC] = trunc
    ev_f[n_ev, EF_PEAK_D] = fst[k, F_EX_PEAKD]
    ev_f[n_ev, EF_PEAK_X] = fst[k, F_EX_PEAKX]
    ev_f[n_ev, EF_DV] = fst[k, F_EX_DV]
    ev_f[n_ev, EF_TK] = fst[k, F_EX_TK]
    ev_f[n_ev, EF_ENERGY] = fst[k, F_EX_EN] / fs
    ev_f[n_ev, EF_RMS] = 0.0
    ev_f[n_ev, EF_OSC_HZ] = osc_hz
    ev_f[n_ev, EF_FREQ] = fst[k, F_FREQ]
    ist[k, I_EX_ON] = 0
    nc = int(prm[P_N])
    if kind == K_IMPULSE and trunc == 0 and newest - start < nc:
        # Replace the impulse's samples in the reference by the cycle before them.
        for j in range(start, last + 1):
            p = j - base
            w[p] = w[p - nc]
    return n_ev + 1


@njit(cache=True, nogil=True)
def _excursion_start(k, idx, x, x_prev, d, d1, d2, clip, ist, fst, dv_min):
    s = 1 if d > 0.0 else -1
    dv = abs(x - x_prev)
    ist[k, I_EX_RAIL] = 1 if clip and dv >= dv_min else 0
    fst[k, F_EX_DV0] = dv
    fst[k, F_EX_LATE] = 0.0
    ist[k, I_EX_ON] = 1
    ist[k, I_EX_START] = idx
    ist[k, I_EX_LAST] = idx
    ist[k, I_EX_FLIPS] = 0
    ist[k, I_EX_SIGN] = s
    ist[k, I_EX_SIGN0] = s
    ist[k, I_EX_CLIPS] = 1 if clip else 0
    ist[k, I_EX_FLIP0] = idx
    ist[k, I_EX_FLIP1] = idx
    ist[k, I_EX_PEAK_IDX] = idx
    fst[k, F_EX_PEAKD] = d
    fst[k, F_EX_PEAKX] = abs(x)
    fst[k, F_EX_DV] = dv
    fst[k, F_EX_TK] = d1 * d1 - d2 * d
    fst[k, F_EX_EN] = d * d


@njit(cache=True, nogil=True)
def _excursion_step(
    k, idx, x, x_prev, d, d1, d2, clip, gap, thr_off, freq, ist, fst, w, base, prm, ev_i, ev_f, n_ev
):
    """One sample of an open excursion; returns (events written, still open)."""
    if idx - ist[k, I_EX_START] < ONSET:
        dv = abs(x - x_prev)
        if dv > fst[k, F_EX_DV0]:
            fst[k, F_EX_DV0] = dv
        if clip and dv >= prm[P_DVMIN]:
            ist[k, I_EX_RAIL] = 1
    ad = abs(d)
    if ad > thr_off:
        s = 1 if d > 0.0 else -1
        if s != ist[k, I_EX_SIGN]:
            ist[k, I_EX_FLIPS] += 1
            if ist[k, I_EX_FLIPS] == 1:
                ist[k, I_EX_FLIP0] = idx
            ist[k, I_EX_FLIP1] = idx
            ist[k, I_EX_SIGN] = s
        ist[k, I_EX_LAST] = idx
        if idx - ist[k, I_EX_START] >= int(prm[P_IMAX]) and ad > fst[k, F_EX_LATE]:
            fst[k, F_EX_LATE] = ad
        if ad > abs(fst[k, F_EX_PEAKD]):
            fst[k, F_EX_PEAKD] = d
            ist[k, I_EX_PEAK_IDX] = idx
        if abs(x) > fst[k, F_EX_PEAKX]:
            fst[k, F_EX_PEAKX] = abs(x)
        dv = abs(x - x_prev)
        if dv > fst[k, F_EX_DV]:
            fst[k, F_EX_DV] = dv
        if clip:
            ist[k, I_EX_CLIPS] += 1
        fst[k, F_EX_EN] += d * d
        tk = d1 * d1 - d2 * d
        if tk > fst[k, F_EX_TK]:
            fst[k, F_EX_TK] = tk
        return n_ev, True
    if idx - ist[k, I_EX_LAST] > gap:
        fst[k, F_FREQ] = freq
        return _emit_excursion(k, ist, fst, w, base, prm, ev_i, ev_f, n_ev, idx, 0), False
    fst[k, F_EX_EN] += d * d
    return n_ev, True


@njit(cache=True, nogil=True)
def _emit_rms(k, kind, start, end, extreme, clips, fst, ev_i, ev_f, n_ev, trunc):
    ev_i[n_ev, E_CH] = k
    ev_i[n_ev, E_KIND] = kind
    ev_i[n_ev, E_START] = start
    ev_i[n_ev, E_END] = end
    ev_i[n_ev, E_FLIPS] = 0
    ev_i[n_ev, E_CLIPS] = clips
    ev_i[n_ev, E_POLARITY] = 0
    ev_i[n_ev, E_PEAK_IDX] = start
    ev_i[n_ev, E_TRUNC] = trunc
    for c in range(N_EF):
        ev_f[n_ev, c] = 0.0
    ev_f[n_ev, EF_RMS] = extreme
    ev_f[n_ev, EF_FREQ] = fst[k, F_FREQ]
    return n_ev + 1


@njit(cache=True, nogil=True)
def _rms_machines(k, idx, rms, h, ist, fst, prm, ev_i, ev_f, n_ev):
    """The dip and swell machines on a fresh U_rms(1/2) (pu) of the window ending at ``idx``."""
    sag = prm[P_SAG]
    swell = prm[P_SWELL]
    hyst = prm[P_HYST]
    if ist[k, I_LO_ON] == 0:
        if rms < sag:
            ist[k, I_LO_ON] = 1
            ist[k, I_LO_START] = idx + 1 - 2 * h
            ist[k, I_LO_CLIPS] = 0
            fst[k, F_LO_MIN] = rms
    else:
        if rms < fst[k, F_LO_MIN]:
            fst[k, F_LO_MIN] = rms
        if rms >= sag + hyst:
            n_ev = _emit_rms(
                k,
                K_DIP,
                ist[k, I_LO_START],
                idx + 1,
                fst[k, F_LO_MIN],
                ist[k, I_LO_CLIPS],
                fst,
                ev_i,
                ev_f,
                n_ev,
                0,
            )
            ist[k, I_LO_ON] = 0
    if ist[k, I_HI_ON] == 0:
        if rms > swell:
            ist[k, I_HI_ON] = 1
            ist[k, I_HI_START] = idx + 1 - 2 * h
            ist[k, I_HI_CLIPS] = 0
            fst[k, F_HI_MAX] = rms
    else:
        if rms > fst[k, F_HI_MAX]:
            fst[k, F_HI_MAX] = rms
        if rms <= swell - hyst:
            n_ev = _emit_rms(
                k,
                K_SWELL,
                ist[k, I_HI_START],
                idx + 1,
                fst[k, F_HI_MAX],
                ist[k, I_HI_CLIPS],
                fst,
                ev_i,
                ev_f,
                n_ev,
                0,
            )
            ist[k, I_HI_ON] = 0
    return n_ev


@njit(cache=True, nogil=True)
def _run_block(
    col, sc, k, w, ist, fst, hist, prm, ev_i, ev_f, n_ev, env_idx, env_rms, env_freq, n_env
):
    """Channel ``k``'s chain over the samples ``col`` (counts), with scratch ``w``."""
    n = col.shape[0]
    nc = int(prm[P_N])
    n2 = 2 * nc
    h = nc // 2
    fs = prm[P_FS]
    thr_on = prm[P_THR_ON]
    thr_off = prm[P_THR_OFF]
    gap = int(prm[P_GAP])
    zch = prm[P_ZC_HYST]
    imax = int(prm[P_IMAX])
    dv_min = prm[P_DVMIN]
    lo_per = 0.5 * nc
    hi_per = 1.5 * nc
    w[:n2] = hist[k]
    cur = w[n2 : n2 + n]  # this block's samples
    back = w[nc : nc + n]  # the samples one cycle before them
    idx = ist[k, I_IDX]
    base = idx - n2  # absolute index of w[0]
    warm_until = ist[k, I_WARM]
    hcnt = ist[k, I_HCNT]
    nhalf = ist[k, I_NHALF]
    inv_win = 1.0 / (2.0 * h)
    inv_vrms = 1.0 / prm[P_VRMS]
    sag = prm[P_SAG]
    swell = prm[P_SWELL]
    zarm = ist[k, I_ZARM] == 1
    clips = ist[k, I_CLIPS]
    ex_on = ist[k, I_EX_ON] == 1
    x_prev = fst[k, F_XPREV]
    d1 = fst[k, F_D1]
    d2 = fst[k, F_D2]
    ss = fst[k, F_SS]
    ssp = fst[k, F_SSP]
    zlast = fst[k, F_ZLAST]
    freq = fst[k, F_FREQ]
    i = 0
    while i < n:
        if not ex_on:
            # Quiet samples up to the end of the half cycle: only running sums and
            # the zero-crossing tracker change. No calls in this loop, so its values
            # stay in registers; a large difference or a clip leaves it for the full
            # step below.
            stop = min(n, i + (h - hcnt))
            j = i
            while j < stop:
                u = np.uint64(j)  # unsigned: no negative-index wraparound code
                raw = col[u]
                x = raw * sc
                d = x - back[u]
                if (abs(d) > thr_on) | (raw == 32767) | (raw == -32768):
                    break
                cur[u] = x
                if zarm & (x >= 0.0):
                    zarm = False
                    tz = (idx + (j - i) - 1) + (-x_prev) / (x - x_prev)
                    if zlast >= 0.0:
                        per = tz - zlast
                        if lo_per < per < hi_per:
                            freq = fs / per
                    zlast = tz
                zarm |= x < -zch
                ss += x * x
                d2 = d1
                d1 = d
                x_prev = x
                j += 1
            hcnt += j - i
            idx += j - i
            i = j
            if hcnt == h:
                # the sample just done (idx - 1) completed a half cycle
                nhalf += 1
                if nhalf >= 2:
                    rms = math.sqrt((ss + ssp) * inv_win) * inv_vrms
                    env_idx[n_env] = idx
                    env_rms[n_env, k] = rms
                    env_freq[n_env, k] = freq
                    n_env += 1
                    fst[k, F_RMS] = rms
                    if rms < sag or rms > swell or ist[k, I_LO_ON] == 1 or ist[k, I_HI_ON] == 1:
                        fst[k, F_FREQ] = freq
                        n_ev = _rms_machines(k, idx - 1, rms, h, ist, fst, prm, ev_i, ev_f, n_ev)
                ssp = ss
                ss = 0.0
                hcnt = 0
                continue
            if i == n:
                break
        # the full step: one sample, everything
        raw = col[i]
        x = raw * sc
        clip = (raw == 32767) | (raw == -32768)
        clips += clip
        cur[i] = x
        d = x - back[i]
        # zero crossing, positive-going, armed by going below -zc_hysteresis
        zarm |= x < -zch
        if zarm and x >= 0.0:
            zarm = False
            tz = (idx - 1) + (-x_prev) / (x - x_prev)
            if zlast >= 0.0:
                per = tz - zlast
                if lo_per < per < hi_per:
                    freq = fs / per
            zlast = tz
        # U_rms(1/2)
        ss += x * x
        hcnt += 1
        if hcnt == h:
            nhalf += 1
            if nhalf >= 2:
                rms = math.sqrt((ss + ssp) * inv_win) * inv_vrms
                env_idx[n_env] = idx + 1
                env_rms[n_env, k] = rms
                env_freq[n_env, k] = freq
                n_env += 1
                fst[k, F_RMS] = rms
                fst[k, F_FREQ] = freq
                n_ev = _rms_machines(k, idx, rms, h, ist, fst, prm, ev_i, ev_f, n_ev)
            ssp = ss
            ss = 0.0
            hcnt = 0
        if clip:
            if ist[k, I_LO_ON] == 1:
                ist[k, I_LO_CLIPS] += 1
            if ist[k, I_HI_ON] == 1:
                ist[k, I_HI_CLIPS] += 1
        # excursions of the cycle-to-cycle difference
        if ex_on:
            n_ev, ex_on = _excursion_step(
                k,
                idx,
                x,
                x_prev,
                d,
                d1,
                d2,
                clip,
                gap,
                thr_off,
                freq,
                ist,
                fst,
                w,
                base,
                prm,
                ev_i,
                ev_f,
                n_ev,
            )
        elif idx >= warm_until and (
            abs(d) > thr_on or (clip and imax > 0 and abs(x - x_prev) >= dv_min)
        ):
            ex_on = True
            _excursion_start(k, idx, x, x_prev, d, d1, d2, clip, ist, fst, dv_min)
        d2 = d1
        d1 = d
        x_prev = x
        idx += 1
        i += 1
    hist[k] = w[n : n + n2]
    ist[k, I_IDX] = idx
    ist[k, I_HCNT] = hcnt
    ist[k, I_NHALF] = nhalf
    ist[k, I_ZARM] = 1 if zarm else 0
    ist[k, I_CLIPS] = clips
    fst[k, F_XPREV] = x_prev
    fst[k, F_D1] = d1
    fst[k, F_D2] = d2
    fst[k, F_SS] = ss
    fst[k, F_SSP] = ssp
    fst[k, F_ZLAST] = zlast
    fst[k, F_FREQ] = freq
    return n_ev, n_env


@njit(cache=True, nogil=True)
def _chain(counts, chans, scale, ist, fst, hist, work, prm, ev_i, ev_f, env_idx, env_rms, env_freq):
    """Runs ``counts[:, chans[k]] * scale[k]`` through channel ``k``'s chain; returns
    (events written, envelope points written, channels with a dip or swell under way).

    ``hist[k]`` holds the channel's last two cycles; ``work[k]`` is scratch of
    ``2·N + chunk`` samples: the history, then up to ``chunk`` new samples, so the
    reference sample one cycle back is a plain offset (no ring arithmetic in the
    loop) and the scratch stays in cache however long the block. Every channel
    sees the same samples, so each writes the same envelope rows, its own column.
    """
    nc = int(prm[P_N])
    n2 = 2 * nc
    n = counts.shape[0]
    n_ev = 0
    n_env = 0
    n_open = 0
    chunk = work.shape[1] - n2
    for k in range(chans.shape[0]):
        c = chans[k]
        sc = scale[k]
        w = work[k]
        n_env = 0
        for c0 in range(0, n, chunk):
            m = min(chunk, n - c0)
            n_ev, n_env = _run_block(
                counts[c0 : c0 + m, c],
                sc,
                k,
                w,
                ist,
                fst,
                hist,
                prm,
                ev_i,
                ev_f,
                n_ev,
                env_idx,
                env_rms,
                env_freq,
                n_env,
            )
        if ist[k, I_LO_ON] == 1 or ist[k, I_HI_ON] == 1:
            n_open += 1
    return n_ev, n_env, n_open


@njit(cache=True, nogil=True)
def _end_open(ist, fst, hist, prm, ev_i, ev_f):
    """Ends every open excursion and RMS event as truncated (a gap in the stream); returns
    the events written."""
    n_ev = 0
    n2 = hist.shape[1]
    for k in range(ist.shape[0]):
        idx = ist[k, I_IDX]
        if ist[k, I_EX_ON] == 1:
            n_ev = _emit_excursion(
                k, ist, fst, hist[k], idx - n2, prm, ev_i, ev_f, n_ev, idx - 1, 1
            )
        if ist[k, I_LO_ON] == 1:
            n_ev = _emit_rms(
                k,
                K_DIP,
                ist[k, I_LO_START],
                idx,
                fst[k, F_LO_MIN],
                ist[k, I_LO_CLIPS],
                fst,
                ev_i,
                ev_f,
                n_ev,
                1,
            )
            ist[k, I_LO_ON] = 0
        if ist[k, I_HI_ON] == 1:
            n_ev = _emit_rms(
                k,
                K_SWELL,
                ist[k, I_HI_START],
                idx,
                fst[k, F_HI_MAX],
                ist[k, I_HI_CLIPS],
                fst,
                ev_i,
                ev_f,
                n_ev,
                1,
            )
            ist[k, I_HI_ON] = 0
    return n_ev


# --- public wrapper ---------------------------------------------------------------------------

CHUNK = 2048  # samples per channel a kernel pass keeps in its scratch
MIN_CYCLE_SAMPLES = 8  # below this a cycle has too few samples for RMS or a difference


@dataclass(frozen=True, slots=True)
class ChainSettings:
    """Thresholds of the chain, in per-unit of the nominal voltage (peak for waveform
    quantities, RMS for U_rms(1/2)) and seconds; ``PowerSettings`` documents each."""

    threshold_pu: float = 0.3
    release_pu: float = 0.1
    merge_gap_s: float = 1.0e-3
    impulse_max_s: float = 1.0e-3
    impulse_min_dvdt_pu: float = 10.0
    impulse_min_fs_hz: float = 4000.0
    impulse_ring_max_s: float = 6.0e-3
    impulse_ring_min_hz: float = 1000.0
    oscillatory_min_hz: float = 200.0
    sag_pu: float = 0.9
    swell_pu: float = 1.1
    hysteresis_pu: float = 0.02
    zero_cross_hysteresis_pu: float = 0.1


def chain_params(fs_hz: float, nominal_hz: float, nominal_v: float, s: ChainSettings) -> np.ndarray:
    """The kernel's parameter vector for one stream."""
    if not (fs_hz > 0 and nominal_hz > 0 and nominal_v > 0):
        raise ValueError(
            f"fs_hz, nominal_hz and nominal_v must be > 0 ({fs_hz}, {nominal_hz}, {nominal_v})"
        )
    n = round(fs_hz / nominal_hz)
    if n < MIN_CYCLE_SAMPLES:
        raise ValueError(
            f"{fs_hz:g} samples/s is {fs_hz / nominal_hz:.1f} samples per {nominal_hz:g} Hz cycle; "
            f"waveform analysis needs at least {MIN_CYCLE_SAMPLES}"
        )
    vpk = math.sqrt(2.0) * nominal_v
    p = np.zeros(N_PARAMS)
    p[P_N] = n
    p[P_FS] = fs_hz
    p[P_THR_ON] = s.threshold_pu * vpk
    p[P_THR_OFF] = min(s.release_pu, s.threshold_pu) * vpk
    gap = max(1, round(s.merge_gap_s * fs_hz))
    imax = math.floor(s.impulse_max_s * fs_hz + 1e-9) if fs_hz >= s.impulse_min_fs_hz else 0
    # An impulse is patched out of the reference cycle only while it is still in it.
    imax = min(imax, max(0, n - gap - 1))
    p[P_GAP] = gap
    p[P_IMAX] = imax
    # Impulse and ringing: patched out of the reference like any impulse, so no longer.
    ring_max = math.floor(s.impulse_ring_max_s * fs_hz + 1e-9) if imax > 0 else 0
    p[P_RING_MAX] = min(max(ring_max, imax), max(0, n - gap - 1))
    p[P_RING_HP] = fs_hz / (2.0 * s.impulse_ring_min_hz)
    # the fundamental's steepest slope is 2π·f·Vpk per second
    p[P_DVMIN] = s.impulse_min_dvdt_pu * 2.0 * math.pi * nominal_hz * vpk / fs_hz
    p[P_OSC_MIN_HZ] = s.oscillatory_min_hz
    p[P_VRMS] = nominal_v
    p[P_SAG] = s.sag_pu
    p[P_SWELL] = s.swell_pu
    p[P_HYST] = s.hysteresis_pu
    p[P_ZC_HYST] = s.zero_cross_hysteresis_pu * vpk
    return p


class WaveformChain:
    """The streaming kernel chain of one stream (one front-end at one sample rate).

    ``process`` runs a block of samples and returns the events that ended in it
    and the U_rms(1/2) envelope points; the returned arrays are views into
    buffers reused by the next call (copy what you keep). Sample indices count
    from the first sample the chain has seen (or since ``reset``).
    """

    def __init__(
        self,
        n_channels: int,
        fs_hz: float,
        nominal_hz: float,
        nominal_v: float,
        settings: ChainSettings = ChainSettings(),
    ):
        if n_channels < 1:
            raise ValueError("a chain needs at least one channel")
        self.n_channels = n_channels
        self.fs_hz = float(fs_hz)
        self.params = chain_params(fs_hz, nominal_hz, nominal_v, settings)
        self.cycle = int(self.params[P_N])
        self.istate = np.zeros((n_channels, N_ISTATE), dtype=np.int64)
        self.fstate = np.zeros((n_channels, N_FSTATE), dtype=np.float64)
        self.hist = np.zeros((n_channels, 2 * self.cycle), dtype=np.float64)
        # scratch: two cycles of history, then up to CHUNK samples (stays in L1/L2 cache)
        self._work = np.zeros((n_channels, 2 * self.cycle + CHUNK), dtype=np.float64)
        self._cap = 0
        self._ev_i = self._ev_f = self._env_rms = self._env_freq = np.zeros((0, 1))
        self._env_idx = np.zeros(0, dtype=np.int64)
        self.open_count = 0  # channels with a dip or swell under way, after the last call
        self._fresh(0)
        self._grow(256)

    def _fresh(self, start_index: int) -> None:
        self.istate[:] = 0
        self.fstate[:] = 0.0
        self.hist[:] = 0.0
        self.istate[:, I_IDX] = start_index
        self.istate[:, I_WARM] = start_index + self.cycle
        self.fstate[:, F_ZLAST] = -1.0

    def _grow(self, n: int) -> None:
        half = max(1, self.cycle // 2)
        gap = int(self.params[P_GAP])
        per_ch = n // (gap + 1) + 2 + 2 * (n // half + 2)
        cap = self.n_channels * per_ch
        if cap <= self._cap:
            return
        self._cap = cap
        self._ev_i = np.zeros((cap, N_EI), dtype=np.int64)
        self._ev_f = np.zeros((cap, N_EF), dtype=np.float64)
        env = n // half + 2
        self._env_idx = np.zeros(env, dtype=np.int64)
        self._env_rms = np.zeros((env, self.n_channels), dtype=np.float64)
        self._env_freq = np.zeros((env, self.n_channels), dtype=np.float64)
        self._max_n = n

    @property
    def next_index(self) -> int:
        return int(self.istate[0, I_IDX])

    def process(
        self, counts: np.ndarray, channels: np.ndarray, scale: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Runs ``counts[:, channels[k]] * scale[k]``; returns the events that ended
        (``ev_i``, ``ev_f``: rows, columns ``E_*``/``EF_*``) and the U_rms(1/2) envelope
        (``env_idx`` (m,), ``env_rms`` (m, k) pu, ``env_freq`` (m, k) Hz)."""
        if counts.ndim != 2 or counts.dtype != np.int16:
            raise ValueError("counts must be int16 of shape (n_samples, n_channels)")
        if len(channels) != self.n_channels or len(scale) != self.n_channels:
            raise ValueError(f"expected {self.n_channels} channels and scales")
        if counts.shape[0] > self._max_n:
            self._grow(counts.shape[0])
        n_ev, n_env, self.open_count = _chain(
            counts,
            channels,
            scale,
            self.istate,
            self.fstate,
            self.hist,
            self._work,
            self.params,
            self._ev_i,
            self._ev_f,
            self._env_idx,
            self._env_rms,
            self._env_freq,
        )
        return (
            self._ev_i[:n_ev],
            self._ev_f[:n_ev],
            self._env_idx[:n_env],
            self._env_rms[:n_env],
            self._env_freq[:n_env],
        )

    def reset(self, start_index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A gap: ends open events as truncated and starts afresh (at ``start_index``,
        default: where the stream was); returns the ended events (copies)."""
        n_ev = _end_open(self.istate, self.fstate, self.hist, self.params, self._ev_i, self._ev_f)
        out = self._ev_i[:n_ev].copy(), self._ev_f[:n_ev].copy()
        self._fresh(self.next_index if start_index is None else start_index)
        self.open_count = 0
        return out

    def any_rms_open(self) -> bool:
        """A dip or swell is under way on some channel."""
        return self.open_count > 0

    def open_rms(self) -> np.ndarray:
        """Per channel: (dip open, dip start, swell open, swell start) as an int64 array."""
        return self.istate[:, [I_LO_ON, I_LO_START, I_HI_ON, I_HI_START]]

    def open_extremes(self) -> np.ndarray:
        """Per channel: (lowest, highest) U_rms(1/2) of the open dip / swell, pu."""
        return self.fstate[:, [F_LO_MIN, F_HI_MAX]]

    def frequency_hz(self) -> np.ndarray:
        return self.fstate[:, F_FREQ].copy()

    def rms_pu(self) -> np.ndarray:
        return self.fstate[:, F_RMS].copy()
