"""Drone / bird / aircraft / clutter probabilities from what a radar track shows.

Method: a naive-Bayes combination of class-conditional likelihoods of a few
physically motivated track features (the trajectory-feature approach of
M. Mohajerin, J. Histon, R. Dizaji and S. L. Waslander, "Feature extraction
and radar track classification for detecting UAVs in civilian airspace",
IEEE Radar Conference 2014). Each feature is a running average over about
``feature_tau_s`` (``kernels._update_features``), so the posterior is computed
from the current averages — one look at the evidence, not one per scan, which
would count the same correlated evidence many times over.

Features and why they separate the classes:

* **RCS level** (dBsm): the threshold-corrected mean, unbiased under Swerling-1
  fluctuation (``kernels``). Small multirotors are about -25..-5 dBsm at X band,
  most birds -35..-15 (a pigeon or gull about -25..-20), light aircraft above 0.
  The uncertainty of the mean, 4.34/sqrt(n) dB for n exponential samples, widens
  every class density.
* **Speed**: the current filtered speed, scored with its own spread so that a
  young track's uncertain velocity says little. A drone's hovering share of
  the density is large only once the track has moved (a drone flies to where
  it hovers; standing still since first seen is clutter's way). Birds fly 6-20 m/s and never
  stand still; multirotors cruise 5-25 m/s, dash faster and hover; aircraft
  exceed 30 m/s; clutter stays put.
* **Stationary**: no more than half of ``moved_m`` from the first plot after
  30 s: clutter (or a drone hovering all the time it has been seen).
* **Velocity steadiness** (Doppler consistency): the median normalised Doppler
  innovation (NIS) of the steady constant-velocity model over the last 16
  updates. For a target holding its velocity each NIS is chi-square(1), median
  0.455; a bird's flap-glide speed changes and meandering heading raise it about
  fourfold, all the time. Multirotor autopilots hold velocity between short
  manoeuvres, which the median ignores. Without Doppler the IMM's manoeuvre
  probability stands in.
* **Hovering** after having moved: multirotors (and helicopters) do it; birds
  (bar kestrels) and aeroplanes do not. One-sided evidence: only its presence
  counts, since every track starts without it.
* **Height** above the site origin: weak; birds keep mostly below 100 m,
  recreational drones below 120 m, aircraft far above.
* **RCS flicker**: mean of x² over 2·mean(x)² of the corrected RCS, 1 for a
  Swerling-1 target; wing beats add modulation. At a 1 s revisit scan-to-scan
  fluctuation mostly masks it, so it carries little weight.
* **RF corroboration** (``rf_fusion``): a drone control link in the track's
  direction, or a Remote ID position on it. Coincidental alignment of a bird
  with a drone's bearing is possible (about 5 % for a +-10° gate), a Remote ID
  position on the track far less so.

Each feature's vote is bounded (``FEATURE_FLOOR``: no feature alone weighs more
than about 1100 to 1 against a class), so one odd measurement cannot veto the
rest of the evidence. Priors are configurable (``[drone.prior]``). Output
columns follow ``CLASSES``.
"""

from __future__ import annotations

import math

import numpy as np

from fusion.drone import kernels as K
from fusion.drone.settings import CLASSES

DRONE, BIRD, AIRCRAFT, CLUTTER = range(4)
LN10_10 = 10.0 / math.log(10.0)  # dB per neper of power

# Class-conditional densities: (mean, sigma) of normal densities, per class in CLASSES order.
# RCS (dBsm): mixtures of (weight, mean, sigma). Birds: small and medium birds about
# -35..-20, large birds (gulls, storks, raptors, geese) -20..-10 (Vaughn, Proc. IEEE
# 73(2), 1985); a soaring bird is a large bird.
RCS_MIX = (
    ((1.0, -15.0, 5.0),),
    ((0.75, -27.0, 5.0), (0.25, -15.0, 5.0)),  # weights by height: see below
    ((1.0, 10.0, 8.0),),
    ((1.0, -5.0, 12.0),),
)
# Height above the site origin: mixtures of normal densities, (weight, mean, sigma) per
# class. Drones: recreational and intruding multirotors keep mostly below 150 m, a
# few climb higher. Birds: most fly low, but soaring and migrating birds (storks,
# raptors, gulls, vultures) use thermals hundreds of metres up, to 1,500 m and more
# (Shamoun-Baranes et al., "Differential use of thermal convection by soaring
# birds over central Israel", Condor 105(2), 2003). Aircraft: fixed-wing far above,
# rotorcraft and light aircraft low.
HEIGHT_MIX = (
    ((0.98, 80.0, 50.0), (0.02, 0.0, 250.0)),
    ((0.7, 40.0, 60.0), (0.3, 500.0, 450.0)),
    ((0.7, 800.0, 700.0), (0.3, 250.0, 200.0)),
    ((1.0, 10.0, 30.0),),
)
# ln(median Doppler NIS over the last 16 updates). For a target holding its velocity
# each NIS is chi-square(1), median 0.455; a bird's continual speed and heading
# changes raise it about fourfold. The median, unlike the mean, shrugs off one
# manoeuvre (a drone braking into a hover and setting off again).
STEADY_LN_NIS = (math.log(0.455), 0.6)
UNSTEADY_LN_NIS = (math.log(2.0), 0.6)
FLICKER_LN = ((0.0, 0.35), (0.15, 0.35), (0.0, 0.35), (0.0, 0.35))
# Given a hover after having moved: multirotors, and helicopters (the aircraft that
# come slow and low near a site are often rotorcraft); birds bar kestrels do not.
HOVER_LIKELIHOOD = (1.0, 0.02, 0.1, 0.05)
# Given at least CIRCLED_MIN_S of sustained circling (``kinematics``): thermal
# soaring, by birds or by gliders and paragliders; a multirotor seldom flies a full
# circle at constant bank, clutter never.
CIRCLING_LIKELIHOOD = (0.01, 1.0, 0.5, 0.001)
CIRCLED_MIN_S = 5.0
STATIONARY_LIKELIHOOD = (0.05, 0.001, 0.0001, 1.0)  # never moved in STATIONARY_AGE_S
STATIONARY_AGE_S = 30.0
RF_BEARING_LIKELIHOOD = (1.0, 0.05, 0.05, 0.05)
RF_REMOTE_ID_LIKELIHOOD = (1.0, 0.001, 0.001, 0.001)


def _log_normal_pdf(x: np.ndarray, mean: float, sigma: np.ndarray | float) -> np.ndarray:
    s = np.asarray(sigma, dtype=np.float64)
    return -0.5 * ((x - mean) / s) ** 2 - np.log(s) - 0.5 * math.log(2.0 * math.pi)


def _log_speed(speed: np.ndarray, sigma: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """(n, 4) log-likelihood of the filtered speed (m/s) given its own spread ``sigma``.

    Each class density is widened by the estimate's spread, so a young track
    whose velocity is still uncertain gets little evidence either way. A drone
    hovers often, but only once it has flown somewhere: for a track that has
    not ``moved`` the drone's hovering share is small (first seen standing still
    is what clutter does).
    """
    out = np.empty((speed.shape[0], 4))
    s = np.maximum(speed, 0.0)
    sg = np.maximum(sigma, 0.0)
    # Drone: hovering (30 % once it has moved, 3 % before), the rest spread up to
    # about 30 m/s with a soft end.
    w_hover = np.where(moved, 0.3, 0.03)
    hover = w_hover * 2.0 * np.exp(_log_normal_pdf(s, 0.0, np.sqrt(1.0 + sg**2)))
    cruise = (1.0 - w_hover) / 30.0 / (1.0 + np.exp((s - 30.0) / np.sqrt(9.0 + sg**2)))
    out[:, DRONE] = np.log(hover + cruise + 1e-12)
    out[:, BIRD] = _log_normal_pdf(s, 12.0, np.sqrt(16.0 + sg**2))
    # Aircraft: fixed-wing above 30 m/s, a log-normal about 90 m/s (70 %); rotorcraft
    # (30 %) hover a third of the time and otherwise fly up to about 70 m/s.
    ls = np.log(np.maximum(s, 1.0))
    fixed = np.exp(
        _log_normal_pdf(ls, math.log(90.0), np.sqrt(0.25 + (sg / np.maximum(s, 1.0)) ** 2)) - ls
    )
    rotor = 0.3 * 2.0 * np.exp(_log_normal_pdf(s, 0.0, np.sqrt(1.0 + sg**2))) + 0.7 / 70.0 / (
        1.0 + np.exp((s - 70.0) / np.sqrt(9.0 + sg**2))
    )
    out[:, AIRCRAFT] = np.log(0.7 * fixed + 0.3 * rotor + 1e-12)
    out[:, CLUTTER] = np.log(2.0 * np.exp(_log_normal_pdf(s, 0.0, np.sqrt(1.0 + sg**2))) + 1e-12)
    return out


def _soaring_share(height_m: np.ndarray) -> np.ndarray:
    """Share of birds at a height that glide (steady) rather than flap: low birds flap,
    soaring birds glide and circle hundreds of metres up, above the heights drones keep to
    (5 % below 120 m, 50 % above 270 m)."""
    return 0.05 + 0.45 * np.clip((height_m - 120.0) / 150.0, 0.0, 1.0)


def _log_steadiness(
    ln_nis: np.ndarray, n: np.ndarray, height_m: np.ndarray | None = None
) -> np.ndarray:
    """(n, 4) log-likelihood of ln(median Doppler NIS) over ``n`` samples.

    The sample median of n chi-square(1) values has a relative spread of about
    2.3/sqrt(n) (1/(2 sqrt(n) f(m)), f the density at the median), so a young
    track's figure is widened accordingly.
    """
    out = np.empty((ln_nis.shape[0], 4))
    sampling = 5.4 / np.clip(n, 1.0, float(K.NIS_RING))
    s_st = np.sqrt(STEADY_LN_NIS[1] ** 2 + sampling)
    s_un = np.sqrt(UNSTEADY_LN_NIS[1] ** 2 + sampling)
    steady = _log_normal_pdf(ln_nis, STEADY_LN_NIS[0], s_st)
    unsteady = _log_normal_pdf(ln_nis, UNSTEADY_LN_NIS[0], s_un)
    # Multirotors fly steady legs with short manoeuvres (turns, braking): a mixture.
    out[:, DRONE] = np.logaddexp(math.log(0.8) + steady, math.log(0.2) + unsteady)
    if height_m is None:
        out[:, BIRD] = unsteady
    else:
        w = _soaring_share(height_m)
        out[:, BIRD] = np.logaddexp(np.log(w) + steady, np.log(1.0 - w) + unsteady)
    # Fixed-wing aircraft fly steady; rotorcraft (30 %) hold a hover or a leg the way a
    # multirotor does, with the same gust-driven wander.
    out[:, AIRCRAFT] = np.logaddexp(math.log(0.7) + steady, math.log(0.3) + out[:, DRONE])
    out[:, CLUTTER] = steady
    return out


def _log_height(z: np.ndarray, z_var: np.ndarray) -> np.ndarray:
    """(n, 4) log-likelihood of the height ``z`` (m) with variance ``z_var`` (``HEIGHT_MIX``)."""
    out = np.empty((z.shape[0], 4))
    for c, mix in enumerate(HEIGHT_MIX):
        acc = np.zeros(z.shape[0])
        for w, mean, sigma in mix:
            acc += w * np.exp(_log_normal_pdf(z, mean, np.sqrt(sigma**2 + z_var)))
        out[:, c] = np.log(acc + 1e-300)
    return out


# No single feature may weigh more than this (nats) against a class: a likelihood
# ratio floor of about 1/1100, so one odd measurement (a saturated receiver's RCS,
# a multipath height) cannot veto hover, Doppler and RF evidence together.
FEATURE_FLOOR = -7.0


def _vote(ll: np.ndarray, part: np.ndarray) -> None:
    """Adds one feature's (n, 4) log-likelihoods to ``ll``, bounded below per class."""
    ll += np.maximum(part - part.max(axis=1, keepdims=True), FEATURE_FLOOR)


def class_log_likelihoods(
    feats: np.ndarray,
    speed: np.ndarray,
    speed_sigma: np.ndarray,
    z_var: np.ndarray,
    age_s: np.ndarray,
    moved_m: float = 150.0,
    rf_bearing: np.ndarray | None = None,
    rf_remote_id: np.ndarray | None = None,
    circled_s: np.ndarray | None = None,
) -> np.ndarray:
    """(n, 4) summed log-likelihoods of the features of n tracks (``kernels.F_*`` columns).

    ``speed``/``speed_sigma``: current filtered speed and its spread (m/s);
    ``z_var``: height variance (m²); ``age_s``: time since the first plot;
    ``rf_bearing``/``rf_remote_id``: booleans per track from ``rf_fusion``;
    ``circled_s``: seconds of sustained circling per track (``kinematics``).
    """
    n = feats.shape[0]
    ll = np.zeros((n, 4))
    if n == 0:
        return ll
    # RCS level, widened by the uncertainty of a mean of n exponential samples.
    n_rcs = feats[:, K.F_N_RCS]
    has_rcs = (n_rcs >= 1) & (feats[:, K.F_RCS] > 0)
    rcs_db = np.where(has_rcs, rcs_level_db(feats), 0.0)
    est_var = LN10_10**2 / np.maximum(n_rcs, 1.0)
    part = np.zeros((n, 4))
    # Large birds are about 10 % of the birds near the ground, and most of those soaring
    # high (``_soaring_share``: the same height law).
    large = 0.05 + _soaring_share(feats[:, K.F_ALT])
    for c, mix in enumerate(RCS_MIX):
        acc = np.zeros(n)
        for j, (w, mean, sigma) in enumerate(mix):
            if c == BIRD:
                w = large if j == 1 else 1.0 - large
            acc += w * np.exp(_log_normal_pdf(rcs_db, mean, np.sqrt(sigma**2 + est_var)))
        part[:, c] = np.where(has_rcs, np.log(acc + 1e-300), 0.0)
    _vote(ll, part)
    _vote(ll, _log_speed(speed, speed_sigma, feats[:, K.F_MAX_DISP] >= moved_m))
    # Steadiness from the Doppler NIS, else from the IMM manoeuvre probability.
    med, n_nis = median_nis(feats)
    has_vr = n_nis >= 3
    ln_nis = np.log(np.maximum(np.nan_to_num(med, nan=1.0), 1e-3))
    # Without Doppler: manoeuvre probability m in [0, 1] mapped onto the same scale
    # (m = 0.05 ~ steady, m = 0.4 ~ unsteady).
    man = np.clip(feats[:, K.F_MANOEUVRE], 1e-3, 0.999)
    lo, hi = STEADY_LN_NIS[0], UNSTEADY_LN_NIS[0]
    ln_nis_proxy = lo + (hi - lo) * (np.log(man / 0.05) / math.log(0.4 / 0.05))
    n_steady = np.where(has_vr, n_nis, np.minimum(feats[:, K.F_N], float(K.NIS_RING)))
    _vote(ll, _log_steadiness(np.where(has_vr, ln_nis, ln_nis_proxy), n_steady, feats[:, K.F_ALT]))
    hovered = feats[:, K.F_HOVER_S] >= 5.0
    _vote(ll, np.where(hovered[:, None], np.log(np.array(HOVER_LIKELIHOOD))[None, :], 0.0))
    # Never moved in half a minute: clutter, or a drone that hovered all the time it was seen.
    stationary = (age_s >= STATIONARY_AGE_S) & (feats[:, K.F_MAX_DISP] < 0.5 * moved_m)
    _vote(ll, np.where(stationary[:, None], np.log(np.array(STATIONARY_LIKELIHOOD))[None, :], 0.0))
    _vote(ll, _log_height(feats[:, K.F_ALT], np.maximum(z_var, 0.0)))
    if circled_s is not None:
        circled = circled_s >= CIRCLED_MIN_S
        _vote(ll, np.where(circled[:, None], np.log(np.array(CIRCLING_LIKELIHOOD))[None, :], 0.0))
    use_flicker = has_rcs & (n_rcs >= 8)
    ln_f = np.log(np.clip(np.where(use_flicker, flicker_index(feats), 1.0), 0.1, 10.0))
    part = np.zeros((n, 4))
    for c in range(4):
        mean, sigma = FLICKER_LN[c]
        part[:, c] = np.where(use_flicker, _log_normal_pdf(ln_f, mean, sigma), 0.0)
    _vote(ll, part)
    if rf_bearing is not None:
        _vote(
            ll, np.where(rf_bearing[:, None], np.log(np.array(RF_BEARING_LIKELIHOOD))[None, :], 0.0)
        )
    if rf_remote_id is not None:
        _vote(
            ll,
            np.where(
                rf_remote_id[:, None], np.log(np.array(RF_REMOTE_ID_LIKELIHOOD))[None, :], 0.0
            ),
        )
    return ll


def rcs_level_db(feats: np.ndarray) -> np.ndarray:
    """Mean RCS (dBsm) corrected for the plots lost to receiver saturation.

    Plots at the saturation level carry no RCS, so a strong near target's average holds
    only its weaker (faded) returns and reads low. The right-censored exponential's
    maximum-likelihood mean is (sum of the uncensored values + n_censored · c) / n_uncensored
    with c the censoring level (Cohen, *Truncated and Censored Samples*, 1991, ch. 6); c is
    not known here, but it is at least the uncensored mean, which gives the lower bound
    mean_uncensored / (1 - f_saturated) used here (f from the plot counts).
    """
    n = np.maximum(feats[:, K.F_N], 1.0)
    kept = np.clip(feats[:, K.F_N_RCS] / n, 0.05, 1.0)
    return 10.0 * np.log10(np.maximum(feats[:, K.F_RCS], 1e-30) / kept)


def median_nis(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(median, count) of the recent Doppler NIS values in each track's ring buffer (NaN if none)."""
    ring = feats[:, K.F_NIS_RING : K.F_NIS_RING + K.NIS_RING]
    valid = ring >= 0.0
    n = valid.sum(axis=1)
    ordered = np.sort(np.where(valid, ring, np.inf), axis=1)  # the valid values first
    lo = np.clip((n - 1) // 2, 0, K.NIS_RING - 1)[:, None]
    hi = np.clip(n // 2, 0, K.NIS_RING - 1)[:, None]
    med = 0.5 * (
        np.take_along_axis(ordered, lo, 1)[:, 0] + np.take_along_axis(ordered, hi, 1)[:, 0]
    )
    return np.where(n > 0, med, np.nan), n.astype(np.float64)


def flicker_index(feats: np.ndarray) -> np.ndarray:
    """mean(x²) / (2 mean(x)²) of the corrected linear RCS: 1 for a steady Swerling-1 target."""
    m = np.maximum(feats[:, K.F_RCS], 1e-30)
    return feats[:, K.F_RCS2] / (2.0 * m * m)


def posterior(log_lik: np.ndarray, prior: dict[str, float]) -> np.ndarray:
    """(n, 4) class probabilities from log-likelihoods and a prior (dict by class name)."""
    lp = np.log(np.array([prior[c] for c in CLASSES], dtype=np.float64))
    x = log_lik + lp[None, :]
    x -= x.max(axis=1, keepdims=True)
    p = np.exp(x)
    return p / p.sum(axis=1, keepdims=True)


def classify(
    feats: np.ndarray,
    speed: np.ndarray,
    speed_sigma: np.ndarray,
    z_var: np.ndarray,
    age_s: np.ndarray,
    prior: dict[str, float],
    moved_m: float = 150.0,
    rf_bearing: np.ndarray | None = None,
    rf_remote_id: np.ndarray | None = None,
    circled_s: np.ndarray | None = None,
) -> np.ndarray:
    """(n, 4) class probabilities (columns ``CLASSES``) of n tracks."""
    ll = class_log_likelihoods(
        feats, speed, speed_sigma, z_var, age_s, moved_m, rf_bearing, rf_remote_id, circled_s
    )
    return posterior(ll, prior)
