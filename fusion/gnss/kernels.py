"""Numba kernels of the GNSS detector: they run on every satellite report and every sweep.

Each kernel is a private ``@njit(cache=True)`` function over preallocated
arrays (struct of arrays); the classes in ``baseline.py`` and
``band_power.py`` own the arrays and call them through small wrappers. Every
kernel has a slow, obvious twin in ``tests/gnss/naive.py``.

Methods:

- Per-satellite C/N0 baseline: an exponentially weighted mean and variance
  (West, "Updating mean and variance estimates: an improved method", CACM
  22(9), 1979, in its EWMA form, Finch 2009, "Incremental calculation of
  weighted mean and variance") with a cumulative-average start
  (alpha = max(1/(n+1), 1 - exp(-dt/tau))) so that a few seconds of data give
  a usable baseline. Updates are gated: a report more than
  max(gate_db, 3 sigma) from the baseline is not learned (an attack must not
  teach the baseline), and only a deviation that lasts ``reseed_s`` on a
  quiet receiver re-seeds it (a real change of the sky: a new obstruction).
  A per-elevation-bin mean (5 degree bins) gives the expected C/N0 of a
  satellite that has no history yet; C/N0 grows with elevation through the
  antenna gain pattern and the path length (Kaplan & Hegarty, "Understanding
  GPS/GNSS", 3rd ed., 2017, ch. 9).
- Common-mode summary: jamming and antenna attenuation lower the C/N0 of
  every satellite together, so the median residual across satellites is the
  statistic (a few obstructed or multipath satellites cannot move it); a
  satellite that stops being tracked above ``lost_elev_deg`` counts as a drop
  to the tracking floor.
- Spoofing cluster: a spoofer transmits all its satellites from one antenna at
  one power, so the satellites it captures converge on one C/N0 whatever their
  elevation (Humphreys et al., "Assessing the spoofing threat", ION GNSS 2008;
  Dovis (ed.), "GNSS Interference Threats and Countermeasures", Artech 2015,
  ch. 7, C/N0 monitoring). The kernel counts satellites that changed by more
  than max(change_db, 3 sigma) and finds the densest ``cluster_width_db``
  window among their C/N0 values (sliding window over sorted values).
- Static sky check (no baseline, no onset): on a real sky C/N0 rises with
  elevation (antenna gain pattern and path length, roughly +0.1-0.2 dB per
  degree) and scatters by several dB from satellite to satellite (multipath,
  obstructions, signal types), whereas a signal simulator or a single-antenna
  spoofer feeding a receiver from its first byte gives every satellite nearly
  the same C/N0 whatever its elevation (Jafarnia-Jahromi et al., "GPS
  vulnerability to spoofing threats and a review of antispoofing
  techniques", Int. J. Navig. Observ. 2012, §5.1 on absolute power and C/N0
  monitoring; Kaplan & Hegarty ch. 9). The kernel takes the fresh tracked
  satellites of known elevation, trims the ``trim_fraction`` farthest from
  the median C/N0 (a stray authentic satellite must not hide a simulator),
  and returns the elevation span, the population standard deviation of C/N0
  and the least-squares slope of C/N0 on elevation over the rest; and how
  many tracked satellites are reported below ``-horizon_margin_deg``, where
  no signal from the sky can be.
- Rolling robust baseline: median and median absolute deviation over a ring
  buffer (Hampel, "The influence curve and its role in robust estimation",
  JASA 69, 1974; sigma = 1.4826 MAD for Gaussian data).
- Band power over a learned noise floor: linear power summed over the bins
  of a band divided by the summed per-bin floor (the ratio a spectrum
  analyser's channel-power measurement reports), floors learned by a gated
  cumulative/EWMA mean in linear units.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Summary vector layout (``summarise_cn0``): index -> meaning.
F_TRACKED = 0  # fresh satellites with C/N0 >= 1 (tracked)
F_REF = 1  # fresh satellites with a baseline (tracked, or lost above the elevation cut)
F_MED_RES = 2  # median residual over F_REF satellites, dB (NaN when F_REF == 0)
F_FRAC_DROP = 3  # fraction of F_REF satellites at or below -sat_drop_db (lost ones included)
F_LOST = 4  # satellites with a baseline reported untracked above the elevation cut
F_UP = 5  # satellites more than change threshold above their baseline
F_ABOVE30 = 6  # tracked satellites at >= 30 dB-Hz
F_CNO_MEDIAN = 7  # median C/N0 of tracked satellites (dB-Hz)
F_SPREAD = 8  # standard deviation of tracked C/N0 (dB)
F_CLUSTER_N = 9  # changed satellites inside the densest window
F_CLUSTER_UP = 10  # of those, how many rose
F_CLUSTER_LEVEL = 11  # mean C/N0 of the densest window (dB-Hz)
F_CORR_ELEV = 12  # Pearson correlation of C/N0 with elevation (NaN below 5 satellites)
F_CHANGED = 13  # satellites beyond the change threshold, either way
N_FEATURES = 14

# Sky-check vector layout (``sky_check``): index -> meaning.
S_N = 0  # fresh tracked satellites with elevation in [0, 90]
S_SPAN = 1  # their elevation span (max - min), degrees
S_KEPT = 2  # satellites left after trimming the farthest from the median C/N0
S_SPREAD = 3  # population standard deviation of the kept C/N0 (dB)
S_SLOPE = 4  # least-squares slope of kept C/N0 on elevation (dB/deg; NaN below 3 or no span)
S_LEVEL = 5  # mean C/N0 of the kept satellites (dB-Hz)
S_BELOW = 6  # fresh tracked satellites reported below -horizon_margin_deg
S_MIN_ELEV = 7  # lowest reported elevation of the fresh tracked satellites (deg)
N_SKY = 8

TRACKED_MIN_DBHZ = 1.0  # u-blox and NMEA report 0 / empty for an untracked satellite


@njit(cache=True)
def _observe(
    slots,
    cno,
    elev,
    t_s,
    learn,
    tau_s,
    gate_db,
    reseed_s,
    prior_var,
    bin_width_deg,
    base,
    var,
    count,
    last_cno,
    last_elev,
    last_t,
    out_since,
    bin_mean,
    bin_count,
    out_res,
):
    n_bins = bin_mean.size
    for k in range(slots.size):
        s = slots[k]
        c = cno[k]
        e = elev[k]
        dt = t_s - last_t[s] if count[s] > 0 else 0.0
        last_cno[s] = c
        last_elev[s] = e
        last_t[s] = t_s
        if not (c >= TRACKED_MIN_DBHZ):
            out_res[k] = np.nan
            continue
        r = c - base[s] if count[s] > 0 else np.nan
        out_res[k] = r
        if not learn:
            continue
        learned = False
        if count[s] == 0:
            base[s] = c
            var[s] = prior_var
            count[s] = 1
            out_since[s] = np.nan
            learned = True
        else:
            gate = max(gate_db, 3.0 * math.sqrt(var[s]))
            if abs(r) <= gate:
                a = max(1.0 / (count[s] + 1.0), 1.0 - math.exp(-max(dt, 0.0) / tau_s))
                base[s] += a * r
                var[s] += a * (r * r - var[s])
                count[s] += 1
                out_since[s] = np.nan
                learned = True
            elif math.isnan(out_since[s]):
                out_since[s] = t_s
            elif t_s - out_since[s] >= reseed_s:
                base[s] = c
                var[s] = prior_var
                count[s] = 1
                out_since[s] = np.nan
        if learned and e >= 0.0 and e <= 90.0:
            b = min(int(e / bin_width_deg), n_bins - 1)
            a = max(1.0 / (bin_count[b] + 1.0), 1.0 / 200.0)
            bin_mean[b] += a * (c - bin_mean[b])
            bin_count[b] += 1


@njit(cache=True)
def _summarise(
    t_s,
    stale_s,
    min_count,
    lost_elev_deg,
    sat_drop_db,
    change_db,
    cluster_width_db,
    track_floor_dbhz,
    base,
    var,
    count,
    last_cno,
    last_elev,
    last_t,
    out,
):
    cap = base.size
    res = np.empty(cap)
    tracked_cno = np.empty(cap)
    tracked_el = np.empty(cap)
    ch_cno = np.empty(cap)
    ch_up = np.empty(cap)
    n_res = 0
    n_tr = 0
    n_ch = 0
    n_drop = 0
    n_lost = 0
    n_up = 0
    n_30 = 0
    for s in range(cap):
        if count[s] == 0 and not (last_cno[s] >= TRACKED_MIN_DBHZ):
            continue
        if not (last_t[s] >= t_s - stale_s):
            continue
        c = last_cno[s]
        tracked = c >= TRACKED_MIN_DBHZ
        if tracked:
            tracked_cno[n_tr] = c
            tracked_el[n_tr] = last_elev[s]
            n_tr += 1
            if c >= 30.0:
                n_30 += 1
        if count[s] < min_count:
            continue
        if tracked:
            r = c - base[s]
        elif last_elev[s] >= lost_elev_deg:
            r = min(track_floor_dbhz - base[s], -sat_drop_db)
            n_lost += 1
        else:
            continue
        res[n_res] = r
        n_res += 1
        if r <= -sat_drop_db:
            n_drop += 1
        if tracked:
            thr = max(change_db, 3.0 * math.sqrt(max(var[s], 0.0)))
            if abs(r) >= thr:
                ch_cno[n_ch] = c
                ch_up[n_ch] = 1.0 if r > 0.0 else 0.0
                n_ch += 1
                if r > 0.0:
                    n_up += 1
    out[:] = np.nan
    out[F_TRACKED] = n_tr
    out[F_REF] = n_res
    out[F_LOST] = n_lost
    out[F_UP] = n_up
    out[F_ABOVE30] = n_30
    out[F_CHANGED] = n_ch
    out[F_CLUSTER_N] = 0.0
    out[F_CLUSTER_UP] = 0.0
    if n_res > 0:
        out[F_MED_RES] = np.median(res[:n_res])
        out[F_FRAC_DROP] = n_drop / n_res
    if n_tr > 0:
        tc = tracked_cno[:n_tr]
        out[F_CNO_MEDIAN] = np.median(tc)
        m = tc.mean()
        out[F_SPREAD] = math.sqrt(((tc - m) ** 2).mean())
    # Correlation with elevation over tracked satellites whose elevation is known.
    n_e = 0
    sx = 0.0
    sy = 0.0
    for i in range(n_tr):
        e = tracked_el[i]
        if e >= -90.0 and e <= 90.0:
            n_e += 1
            sx += e
            sy += tracked_cno[i]
    if n_e >= 5:
        mx = sx / n_e
        my = sy / n_e
        sxx = 0.0
        syy = 0.0
        sxy = 0.0
        for i in range(n_tr):
            e = tracked_el[i]
            if e >= -90.0 and e <= 90.0:
                dx = e - mx
                dy = tracked_cno[i] - my
                sxx += dx * dx
                syy += dy * dy
                sxy += dx * dy
        if sxx > 0.0 and syy > 0.0:
            out[F_CORR_ELEV] = sxy / math.sqrt(sxx * syy)
    # Densest window of changed satellites' C/N0 (first window wins a tie).
    if n_ch > 0:
        order = np.argsort(ch_cno[:n_ch], kind="mergesort")
        v = ch_cno[:n_ch][order]
        u = ch_up[:n_ch][order]
        best_n = 0
        best_up = 0.0
        best_sum = 0.0
        j = 0
        for i in range(n_ch):
            while v[i] - v[j] > cluster_width_db + 1e-9:
                j += 1
            if i - j + 1 > best_n:
                best_n = i - j + 1
                best_up = u[j : i + 1].sum()
                best_sum = v[j : i + 1].sum()
        out[F_CLUSTER_N] = best_n
        out[F_CLUSTER_UP] = best_up
        out[F_CLUSTER_LEVEL] = best_sum / best_n


@njit(cache=True)
def _sky_check(t_s, stale_s, horizon_margin_deg, trim_fraction, last_cno, last_elev, last_t, out):
    cap = last_cno.size
    c = np.empty(cap)
    e = np.empty(cap)
    n = 0
    n_below = 0
    min_el = np.inf
    for s in range(cap):
        if not (last_t[s] >= t_s - stale_s) or not (last_cno[s] >= TRACKED_MIN_DBHZ):
            continue
        el = last_elev[s]
        if not (el >= -90.0 and el <= 90.0):
            continue  # unknown elevation
        min_el = min(min_el, el)
        if el < -horizon_margin_deg:
            n_below += 1
        if el >= 0.0:
            c[n] = last_cno[s]
            e[n] = el
            n += 1
    out[:] = np.nan
    out[S_N] = n
    out[S_BELOW] = n_below
    out[S_KEPT] = 0.0
    if math.isfinite(min_el):
        out[S_MIN_ELEV] = min_el
    if n == 0:
        return
    out[S_SPAN] = e[:n].max() - e[:n].min()
    med = np.median(c[:n])
    order = np.argsort(np.abs(c[:n] - med), kind="mergesort")
    kept = n - int(trim_fraction * n)
    kc = c[:n][order[:kept]]
    ke = e[:n][order[:kept]]
    mc = kc.mean()
    out[S_KEPT] = kept
    out[S_LEVEL] = mc
    out[S_SPREAD] = math.sqrt(((kc - mc) ** 2).mean())
    if kept >= 3:
        me = ke.mean()
        sxx = ((ke - me) ** 2).sum()
        if sxx > 0.0:
            out[S_SLOPE] = ((ke - me) * (kc - mc)).sum() / sxx


@njit(cache=True)
def _ring_push(buf, state, x):
    """Append ``x`` to a ring buffer; ``state`` = [head, count]."""
    cap = buf.size
    buf[state[0]] = x
    state[0] = (state[0] + 1) % cap
    if state[1] < cap:
        state[1] += 1


@njit(cache=True)
def _ring_median_mad(buf, state, out):
    """Median and median absolute deviation of the filled part of a ring buffer."""
    n = state[1]
    if n == 0:
        out[0] = np.nan
        out[1] = np.nan
        return
    vals = buf[:n].copy()
    med = np.median(vals)
    out[0] = med
    out[1] = np.median(np.abs(vals - med))


@njit(cache=True)
def _band_update(
    power_dbm,
    band_lo,
    band_hi,
    learn,
    floor_gate_db,
    floor_tau_sweeps,
    floor_lin,
    floor_count,
    out_rise_db,
    out_power_dbm,
):
    n_bins = power_dbm.size
    lin = np.empty(n_bins)
    for i in range(n_bins):
        lin[i] = 10.0 ** (power_dbm[i] / 10.0)
    for b in range(band_lo.size):
        lo = band_lo[b]
        hi = band_hi[b]
        p_sum = 0.0
        f_sum = 0.0
        ok = True
        for i in range(lo, hi):
            p_sum += lin[i]
            if floor_count[i] == 0:
                ok = False
            f_sum += floor_lin[i]
        if hi > lo:
            out_power_dbm[b] = 10.0 * math.log10(p_sum / (hi - lo))
        else:
            out_power_dbm[b] = np.nan
        if ok and hi > lo and f_sum > 0.0:
            out_rise_db[b] = 10.0 * math.log10(p_sum / f_sum)
        else:
            out_rise_db[b] = np.nan
    if not learn:
        return
    gate = 10.0 ** (floor_gate_db / 10.0)
    for i in range(n_bins):
        if floor_count[i] == 0:
            floor_lin[i] = lin[i]
            floor_count[i] = 1
        elif lin[i] <= floor_lin[i] * gate:
            a = max(1.0 / (floor_count[i] + 1.0), 1.0 / floor_tau_sweeps)
            floor_lin[i] += a * (lin[i] - floor_lin[i])
            floor_count[i] += 1


# --- public wrappers ---------------------------------------------------------------------------


def observe_sats(
    table, slots: np.ndarray, cno: np.ndarray, elev: np.ndarray, t_s: float, learn: bool
) -> np.ndarray:
    """Records one report of some satellites of ``table`` (a ``SatTable``); returns residuals (dB).

    ``cno`` < 1 means untracked; ``elev`` NaN means unknown. A residual is NaN
    for an untracked satellite or one without a baseline yet.
    """
    slots = np.ascontiguousarray(slots, dtype=np.int64)
    cno = np.ascontiguousarray(cno, dtype=np.float64)
    elev = np.ascontiguousarray(elev, dtype=np.float64)
    if not (slots.shape == cno.shape == elev.shape) or slots.ndim != 1:
        raise ValueError("slots, cno and elev must be 1-D arrays of one length")
    if slots.size and (slots.min() < 0 or slots.max() >= table.capacity):
        raise ValueError("satellite slot out of range")
    out = np.empty(slots.size)
    p = table.params
    _observe(
        slots,
        cno,
        elev,
        float(t_s),
        bool(learn),
        p.tau_s,
        p.gate_db,
        p.reseed_s,
        p.prior_var,
        p.bin_width_deg,
        table.base,
        table.var,
        table.count,
        table.last_cno,
        table.last_elev,
        table.last_t,
        table.out_since,
        table.bin_mean,
        table.bin_count,
        out,
    )
    return out


def summarise_cn0(table, t_s: float) -> np.ndarray:
    """The common-mode and cluster summary of ``table``'s fresh satellites (layout ``F_*``)."""
    out = np.empty(N_FEATURES)
    p = table.params
    _summarise(
        float(t_s),
        p.stale_s,
        p.min_count,
        p.lost_elev_deg,
        p.sat_drop_db,
        p.change_db,
        p.cluster_width_db,
        p.track_floor_dbhz,
        table.base,
        table.var,
        table.count,
        table.last_cno,
        table.last_elev,
        table.last_t,
        out,
    )
    return out


def sky_check(
    table, t_s: float, horizon_margin_deg: float = 5.0, trim_fraction: float = 0.1
) -> np.ndarray:
    """The static sky check of ``table``'s fresh satellites (layout ``S_*``)."""
    if not 0.0 <= trim_fraction < 1.0:
        raise ValueError("trim_fraction must be in [0, 1)")
    out = np.empty(N_SKY)
    _sky_check(
        float(t_s),
        table.params.stale_s,
        float(horizon_margin_deg),
        float(trim_fraction),
        table.last_cno,
        table.last_elev,
        table.last_t,
        out,
    )
    return out


def ring_push(buf: np.ndarray, state: np.ndarray, x: float) -> None:
    _ring_push(buf, state, float(x))


def ring_median_mad(buf: np.ndarray, state: np.ndarray) -> tuple[float, float]:
    out = np.empty(2)
    _ring_median_mad(buf, state, out)
    return float(out[0]), float(out[1])


def band_update(
    power_dbm: np.ndarray,
    band_lo: np.ndarray,
    band_hi: np.ndarray,
    learn: bool,
    floor_gate_db: float,
    floor_tau_sweeps: float,
    floor_lin: np.ndarray,
    floor_count: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per band: (rise over the learned floor in dB, mean power per bin in dBm); learns floors."""
    power_dbm = np.ascontiguousarray(power_dbm, dtype=np.float64)
    if power_dbm.shape != floor_lin.shape:
        raise ValueError("sweep and floor have different bin counts")
    band_lo = np.ascontiguousarray(band_lo, dtype=np.int64)
    band_hi = np.ascontiguousarray(band_hi, dtype=np.int64)
    if band_lo.size and (band_lo.min() < 0 or band_hi.max() > power_dbm.size):
        raise ValueError("band bins out of range")
    rise = np.empty(band_lo.size)
    power = np.empty(band_lo.size)
    _band_update(
        power_dbm,
        band_lo,
        band_hi,
        bool(learn),
        float(floor_gate_db),
        float(floor_tau_sweeps),
        floor_lin,
        floor_count,
        rise,
        power,
    )
    return rise, power
