"""Slow, obvious twins of the GNSS kernels (fusion/gnss/kernels.py), for comparison tests.

Plain Python over lists and dicts, written from the method descriptions in the
kernels' docstring rather than from their code: per-satellite gated EWMA with a
cumulative start, the common-mode and cluster summary, the static sky check,
median/MAD of a window, and channel power over a learned per-bin floor.
"""

from __future__ import annotations

import math
import statistics


def observe(
    state: dict, reports: list[tuple[int, float, float]], t: float, learn: bool, p
) -> list[float]:
    """``state``: slot -> dict(base, var, n, cno, elev, t, out_since); bins: dict(mean, n) lists.

    Returns the residual of each report (NaN: untracked or no baseline yet).
    """
    out = []
    for slot, cno, elev in reports:
        sat = state["sats"][slot]
        dt = t - sat["t"] if sat["n"] > 0 else 0.0
        sat["cno"], sat["elev"], sat["t"] = cno, elev, t
        if not cno >= 1.0:
            out.append(math.nan)
            continue
        res = cno - sat["base"] if sat["n"] > 0 else math.nan
        out.append(res)
        if not learn:
            continue
        learned = False
        if sat["n"] == 0:
            sat.update(base=cno, var=p.prior_var, n=1, out_since=math.nan)
            learned = True
        elif abs(res) <= max(p.gate_db, 3 * math.sqrt(sat["var"])):
            w = max(1 / (sat["n"] + 1), 1 - math.exp(-max(dt, 0.0) / p.tau_s))
            sat["base"] = sat["base"] + w * res
            sat["var"] = sat["var"] + w * (res * res - sat["var"])
            sat["n"] += 1
            sat["out_since"] = math.nan
            learned = True
        elif math.isnan(sat["out_since"]):
            sat["out_since"] = t
        elif t - sat["out_since"] >= p.reseed_s:
            sat.update(base=cno, var=p.prior_var, n=1, out_since=math.nan)
        if learned and 0 <= elev <= 90:
            b = min(int(elev / p.bin_width_deg), len(state["bin_mean"]) - 1)
            w = max(1 / (state["bin_n"][b] + 1), 1 / 200)
            state["bin_mean"][b] += w * (cno - state["bin_mean"][b])
            state["bin_n"][b] += 1
    return out


def summarise(state: dict, t: float, p) -> dict:
    tracked, residuals, changed = [], [], []
    lost = up = above30 = 0
    for sat in state["sats"]:
        if sat["n"] == 0 and not sat["cno"] >= 1:
            continue
        if not sat["t"] >= t - p.stale_s:
            continue
        is_tracked = sat["cno"] >= 1
        if is_tracked:
            tracked.append((sat["cno"], sat["elev"]))
            above30 += sat["cno"] >= 30
        if sat["n"] < p.min_count:
            continue
        if is_tracked:
            r = sat["cno"] - sat["base"]
        elif sat["elev"] >= p.lost_elev_deg:
            r = min(p.track_floor_dbhz - sat["base"], -p.sat_drop_db)
            lost += 1
        else:
            continue
        residuals.append(r)
        if is_tracked and abs(r) >= max(p.change_db, 3 * math.sqrt(max(sat["var"], 0))):
            changed.append((sat["cno"], r > 0))
            up += r > 0
    out = {
        "tracked": len(tracked),
        "ref": len(residuals),
        "lost": lost,
        "up": up,
        "above30": above30,
        "changed": len(changed),
        "med_res": statistics.median(residuals) if residuals else math.nan,
        "frac_drop": (sum(r <= -p.sat_drop_db for r in residuals) / len(residuals))
        if residuals
        else math.nan,
        "cno_median": statistics.median(c for c, _ in tracked) if tracked else math.nan,
        "spread": statistics.pstdev([c for c, _ in tracked]) if tracked else math.nan,
        "corr": math.nan,
        "cluster_n": 0,
        "cluster_up": 0,
        "cluster_level": math.nan,
    }
    with_elev = [(c, e) for c, e in tracked if -90 <= e <= 90]
    if len(with_elev) >= 5:
        cs = [c for c, _ in with_elev]
        es = [e for _, e in with_elev]
        mc, me = statistics.fmean(cs), statistics.fmean(es)
        sxy = sum((c - mc) * (e - me) for c, e in with_elev)
        sxx = sum((e - me) ** 2 for e in es)
        syy = sum((c - mc) ** 2 for c in cs)
        if sxx > 0 and syy > 0:
            out["corr"] = sxy / math.sqrt(sxx * syy)
    # Densest window [v - width, v] anchored at each changed value in ascending order; first wins.
    best = None
    for anchor, _ in sorted(changed):
        members = [(c, u) for c, u in changed if anchor - p.cluster_width_db - 1e-9 <= c <= anchor]
        if best is None or len(members) > best[0]:
            best = (
                len(members),
                sum(u for _, u in members),
                statistics.fmean(c for c, _ in members),
            )
    if best is not None:
        out["cluster_n"], out["cluster_up"], out["cluster_level"] = best
    return out


def sky_check(
    sats: list[tuple[float, float, float]],
    t: float,
    stale_s: float,
    horizon_margin_deg: float,
    trim_fraction: float,
) -> dict:
    """``sats``: (cno, elev, t_last) per slot. The fresh tracked satellites of known elevation:
    how many are below the horizon margin, and over those at 0-90 degrees, trimmed of the
    ``trim_fraction`` farthest from their median C/N0 (ties: the lower slot stays), the
    elevation span, spread, slope and level."""
    fresh = [(c, e) for c, e, ts in sats if ts >= t - stale_s and c >= 1 and -90 <= e <= 90]
    sky = [(c, e) for c, e in fresh if e >= 0]
    out = {
        "n": len(sky),
        "below": sum(e < -horizon_margin_deg for _, e in fresh),
        "min_elev": min((e for _, e in fresh), default=math.nan),
        "span": math.nan,
        "kept": 0,
        "spread": math.nan,
        "slope": math.nan,
        "level": math.nan,
    }
    if not sky:
        return out
    out["span"] = max(e for _, e in sky) - min(e for _, e in sky)
    med = statistics.median(c for c, _ in sky)
    n_keep = len(sky) - int(trim_fraction * len(sky))
    order = sorted(range(len(sky)), key=lambda i: (abs(sky[i][0] - med), i))
    kept = [sky[i] for i in order[:n_keep]]
    cs = [c for c, _ in kept]
    es = [e for _, e in kept]
    out["kept"] = len(kept)
    out["level"] = statistics.fmean(cs)
    out["spread"] = statistics.pstdev(cs)
    if len(kept) >= 3:
        me, mc = statistics.fmean(es), statistics.fmean(cs)
        sxx = sum((e - me) ** 2 for e in es)
        if sxx > 0:
            out["slope"] = sum((e - me) * (c - mc) for c, e in kept) / sxx
    return out


def median_mad(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    med = statistics.median(values)
    return med, statistics.median(abs(v - med) for v in values)


def band_update(
    power_dbm: list[float],
    bands: list[tuple[int, int]],
    learn: bool,
    gate_db: float,
    tau_sweeps: float,
    floor: list[float],
    count: list[int],
) -> tuple[list[float], list[float]]:
    lin = [10 ** (p / 10) for p in power_dbm]
    rise, power = [], []
    for lo, hi in bands:
        if hi <= lo:
            rise.append(math.nan)
            power.append(math.nan)
            continue
        p_sum = sum(lin[lo:hi])
        power.append(10 * math.log10(p_sum / (hi - lo)))
        if all(c > 0 for c in count[lo:hi]) and sum(floor[lo:hi]) > 0:
            rise.append(10 * math.log10(p_sum / sum(floor[lo:hi])))
        else:
            rise.append(math.nan)
    if learn:
        for i, x in enumerate(lin):
            if count[i] == 0:
                floor[i], count[i] = x, 1
            elif x <= floor[i] * 10 ** (gate_db / 10):
                w = max(1 / (count[i] + 1), 1 / tau_sweeps)
                floor[i] += w * (x - floor[i])
                count[i] += 1
    return rise, power
