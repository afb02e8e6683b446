"""Numba kernels of the multi-target tracker: IMM filtering, gating, assignment, track logic.

Everything here works on preallocated arrays (struct of arrays, one row per
track slot) and never sees a Python object; ``tracker.MultiTargetTracker`` owns
the arrays and validates what goes in. ``tests/drone/naive.py`` holds a slow,
obvious twin of every kernel.

Methods, each with its source:

* **Motion**: an interacting multiple model (IMM) filter, H. A. P. Blom and
  Y. Bar-Shalom, "The interacting multiple model algorithm for systems with
  Markovian switching coefficients", IEEE Trans. AC 33(8), 1988; the cycle
  (mixing, model-matched filtering, mode probabilities, combination) as in
  Y. Bar-Shalom, X. R. Li and T. Kirubarajan, *Estimation with Applications to
  Tracking and Navigation*, Wiley 2001, §11.6.6. Models are nearly constant
  velocity (continuous white-noise acceleration, ibid. §6.2.2) with their own
  noise levels, or coordinated turns at a known rate (ibid. §11.7.1); a model
  row is (q_horizontal, q_vertical, turn rate, mean sojourn time, initial
  probability).
* **Measurement**: debiased converted position (``measurement``) plus the
  radial velocity as an extended-Kalman row, h(x) = (p - s)·v / |p - s|,
  linearised at each model's prediction (Duan, Han and Li, FUSION 2004).
* **Gating**: chi-square test on the joint position + Doppler innovation
  (3 or 4 degrees of freedom), after a cheap bounding-box pre-gate over plots
  sorted by east coordinate.
* **Assignment**: global nearest neighbour with log-likelihood-ratio costs,
  -ln(p_exist·Pd·g/λ) for a plot and -ln(1 - p_exist·Pd·P_G) for a miss
  (S. S. Blackman and R. Popoli, *Design and Analysis of Modern Tracking
  Systems*, Artech 1999, §6.5 and §7.2), solved exactly per cluster of
  interacting tracks and plots with the shortest augmenting path algorithm of
  D. F. Crouse, "On implementing 2D rectangular assignment algorithms", IEEE
  Trans. AES 52(4), 2016 (the algorithm of SciPy's ``linear_sum_assignment``).
* **Track existence**: the IPDA existence recursion of D. Musicki, R. Evans and
  S. Stankovic, "Integrated probabilistic data association", IEEE Trans. AC
  39(6), 1994, with the one measurement GNN gives each track. The detection
  probability of each track comes from its own SNR history: under Swerling-1
  fluctuation a detected SNR minus the threshold is exponential with the mean
  SNR (memorylessness), so mean(SNR - T) estimates it without the bias of
  thresholding, and Pd = exp(-T / SNR̄) (M. I. Skolnik, *Introduction to Radar
  Systems*, 3rd ed., §2.8).
* **Initiation**: one-point initiation from a plot and its Doppler (velocity
  along the line of sight known, across it a prior spread); a second, two-point
  path pairs unexplained plots with single-plot tentative tracks through a
  maximum-speed and Doppler-consistency test, so fast targets (aircraft) start
  too (Blackman and Popoli §3.4). Confirmation is M-of-N on the hit history
  together with an existence threshold; deletion on low existence, a position
  spread beyond a limit or a coasting time limit.

Kernels are compiled with ``error_model="numpy"``: a float division by zero
gives inf or NaN instead of raising, which spares a branch per division in
the inner loops; every division here is guarded or its result tested.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fusion.drone.measurement import N_ACC, _convert_into, _plot_views

# --- parameter vector indices (``prm``) ------------------------------------------------
P_GATE3 = 0  # chi-square gate, 3 dof (position only)
P_GATE4 = 1  # chi-square gate, 4 dof (position + Doppler)
P_SURVIVAL_TAU = 2  # s: existence decays as exp(-dt/tau) between scans
P_P_INIT = 3  # existence of a one-plot tentative track
P_P_INIT2 = 4  # existence of a two-point tentative track
P_P_CONFIRM = 5  # existence needed to confirm
P_CONFIRM_M = 6
P_CONFIRM_N = 7
P_P_DELETE = 8  # confirmed tracks below this existence are deleted
P_P_DELETE_TENT = 9  # tentative tracks below this existence are deleted
P_MAX_POS_SIGMA = (
    10  # m: delete when the position spread (sqrt of the largest axis variance) exceeds
)
P_MAX_COAST = 11  # s without a plot before deletion
P_INIT_VEL_SIGMA = 12  # m/s: velocity spread across the line of sight at one-point initiation
P_MAX_SPEED = 13  # m/s: two-point initiation speed limit
P_TWO_POINT_DT = 14  # s: the largest gap between the two plots of a two-point start
P_SPAWN_SUPPRESS = 15  # d²: a plot this close to a confirmed track does not start another
P_FEAT_TAU = 16  # s: time constant of the feature averages
P_HOVER_SPEED = 17  # m/s
P_MOVED_M = 18  # m: a track has "moved" once this far from where it started
P_PD_MIN = 19
P_PD_MAX = 20
P_P_MAX = 21  # existence ceiling
P_GATE_PROB = 22  # P_G, the probability that a true plot falls in the gate
P_MAX_COAST_TENT = 23  # s without a plot before a tentative track is deleted
P_TENT_MAX_SCANS = 24  # scans a tentative track may take to reach M-of-N
P_TENT_MAX_MISSES = 25  # consecutive scans without a plot before a tentative track is deleted
N_PRM = 26

# --- per-scan parameters (``sp``) ------------------------------------------------------
S_POS = 0  # 0..2: radar position (site ENU)
S_THR_LIN = 3  # detection threshold, linear SNR (NaN: unknown)
S_PD_DEFAULT = 4
S_MAX_RANGE = 5
S_EL_MIN = 6  # rad
S_EL_MAX = 7  # rad
S_VR_AMB = 8  # m/s: Doppler ambiguity (0: none): innovations wrap into [-amb, amb)
S_MIN_RANGE = 9
N_SP = 10

# --- a radar's geometry vector (``geo``): position, rotation, accuracy, scan parameters
G_POS = 0  # 0..2: position (site ENU)
G_ROT = 3  # 3..11: local-to-site rotation, row-major
G_ACC = 12  # measurement.A_* accuracy parameters
G_SP = G_ACC + N_ACC  # the S_* scan parameters
N_GEO = G_SP + N_SP

# --- model rows (``mdl``) --------------------------------------------------------------
M_QH, M_QV, M_OMEGA, M_TAU, M_MU0 = 0, 1, 2, 3, 4

# --- track status ----------------------------------------------------------------------
FREE, TENTATIVE, CONFIRMED = 0, 1, 2

# --- feature columns (``feats``) -------------------------------------------------------
F_N = 0  # number of feature updates
F_T_LAST = 1  # time of the last one
F_RCS = 2  # EWMA of the threshold-corrected linear RCS (m²)
F_RCS2 = 3  # EWMA of its square (flicker)
F_N_RCS = 4
F_SNR1 = 5  # EWMA of (SNR - T)·r⁴: mean SNR scaled to 1 m, for the detection probability
F_N_SNR = 6
F_SPEED = 7  # EWMA of speed (m/s)
F_SPEED2 = 8
F_MANOEUVRE = 9  # EWMA of 1 - probability of the first (steady) model
F_NIS_VR = 10  # EWMA of the Doppler NIS under the steady model's prediction (capped at 25)
F_NIS_VR_HI = 11  # EWMA of [that NIS > 9]
F_HOVER_S = 12  # seconds spent hovering after having moved
F_MAX_DISP = 13  # m: largest horizontal distance from the first plot
F_ALT = 14  # EWMA of height (site ENU z)
F_CLIMB = 15  # EWMA of |vertical speed|
F_VR_ABS = 16  # EWMA of |measured radial velocity|
F_N_VR = 17
F_NIS_RING = 18  # ring buffer of the last NIS_RING Doppler NIS values (-1: empty)
NIS_RING = 16
F_NIS_RING_POS = F_NIS_RING + NIS_RING  # samples written so far
N_FEAT = F_NIS_RING_POS + 1

# --- per-scan statistics (``stats``) ---------------------------------------------------
ST_PAIRS, ST_ASSIGNED, ST_NEW, ST_TWO_POINT, ST_CONFIRMED, ST_DELETED = 0, 1, 2, 3, 4, 5
ST_PAIR_OVERFLOW, ST_SLOT_OVERFLOW, ST_CLUSTERS, ST_MAX_CLUSTER = 6, 7, 8, 9
N_STATS = 10

LOG_2PI = math.log(2.0 * math.pi)
BIG = 1.0e18
BOX_SLACK = 1.0 + 1e-9  # relative widening of the squared pre-gate box (rounding only)


# ======================================================================================
# small linear algebra


@njit(cache=True, error_model="numpy")
def _transition(dt, q_h, q_v, omega, F, Q):
    """F and Q of a nearly-constant-velocity or known-rate coordinated-turn model over dt.

    State [x, y, z, vx, vy, vz]. Turn (horizontal, rate omega rad/s): Bar-Shalom,
    Li and Kirubarajan §11.7.1; Q is the CWNA form per axis (ibid. §6.2.2).
    """
    for a in range(6):
        for b in range(6):
            F[a, b] = 0.0
            Q[a, b] = 0.0
        F[a, a] = 1.0
    wt = omega * dt
    if abs(wt) > 1e-9:
        s = math.sin(wt)
        c = math.cos(wt)
        F[0, 3] = s / omega
        F[0, 4] = -(1.0 - c) / omega
        F[1, 3] = (1.0 - c) / omega
        F[1, 4] = s / omega
        F[3, 3] = c
        F[3, 4] = -s
        F[4, 3] = s
        F[4, 4] = c
    else:
        F[0, 3] = dt
        F[1, 4] = dt
    F[2, 5] = dt
    d3 = dt * dt * dt / 3.0
    d2 = dt * dt / 2.0
    for a in range(3):
        q = q_v if a == 2 else q_h
        Q[a, a] = q * d3
        Q[a, a + 3] = q * d2
        Q[a + 3, a] = q * d2
        Q[a + 3, a + 3] = q * dt


@njit(cache=True, error_model="numpy")
def _fpft(F, P, Q, out, tmp):
    """out = F P F' + Q (6x6)."""
    for a in range(6):
        for b in range(6):
            s = 0.0
            for c in range(6):
                s += F[a, c] * P[c, b]
            tmp[a, b] = s
    for a in range(6):
        for b in range(6):
            s = Q[a, b]
            for c in range(6):
                s += tmp[a, c] * F[b, c]
            out[a, b] = s
    for a in range(6):
        for b in range(a + 1, 6):
            s = 0.5 * (out[a, b] + out[b, a])
            out[a, b] = s
            out[b, a] = s


@njit(cache=True, error_model="numpy")
def _fpft_cv(dt, P, Q, out):
    """out = F P F' + Q for the constant-velocity F = [[I, dt I], [0, I]], in closed form.

    With P = [[A, B], [B', C]] (3 x 3 blocks): F P F' = [[A + dt (B + B') + dt² C,
    B + dt C], [B' + dt C, C]]; about a quarter of the general product's work.
    """
    for r in range(3):
        for c in range(3):
            a_ = P[r, c]
            b_ = P[r, c + 3]
            bt = P[r + 3, c]
            c_ = P[r + 3, c + 3]
            out[r, c] = a_ + dt * (b_ + bt) + dt * dt * c_ + Q[r, c]
            out[r, c + 3] = b_ + dt * c_ + Q[r, c + 3]
            out[r + 3, c] = bt + dt * c_ + Q[r + 3, c]
            out[r + 3, c + 3] = c_ + Q[r + 3, c + 3]
    for a in range(6):
        for b in range(a + 1, 6):
            s = 0.5 * (out[a, b] + out[b, a])
            out[a, b] = s
            out[b, a] = s


@njit(cache=True, error_model="numpy")
def _chol(S, L, n):
    """Cholesky factor (lower triangle) of the leading n x n block of S; returns log det S.

    -inf when S is not positive definite. The log determinant is one log of the
    product of the squared diagonal, cheaper than n logs.
    """
    prod = 1.0
    for i in range(n):
        for j in range(i + 1):
            s = S[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            if i == j:
                if s <= 0.0:
                    return -np.inf
                L[i, i] = math.sqrt(s)
                prod *= s
            else:
                L[i, j] = s / L[j, j]
    return math.log(prod)


@njit(cache=True, error_model="numpy")
def _chol_solve(L, b, out, n):
    """Solves (L L') out = b for the leading n entries (L from ``_chol``, lower triangle)."""
    for i in range(n):
        s = b[i]
        for k in range(i):
            s -= L[i, k] * out[k]
        out[i] = s / L[i, i]
    for i in range(n - 1, -1, -1):
        s = out[i]
        for k in range(i + 1, n):
            s -= L[k, i] * out[k]
        out[i] = s / L[i, i]


@njit(cache=True, error_model="numpy")
def _chol_inverse(L, Sinv, n):
    """S^-1 = L^-T L^-1 from the Cholesky factor (n <= 4), with n divisions in all.

    L^-1 is built in the lower triangle of ``Sinv`` itself (no scratch array): the
    off-diagonal products go to the upper triangle first (they read only the lower
    triangle and diagonal), then each diagonal entry (it alone reads its own
    L^-1 diagonal), then the upper triangle is mirrored down.
    """
    for i in range(n):
        d = 1.0 / L[i, i]
        Sinv[i, i] = d
        for j in range(i):
            s = 0.0
            for k in range(j, i):
                s -= L[i, k] * Sinv[k, j]
            Sinv[i, j] = s * d
    for i in range(n):
        for j in range(i):
            s = 0.0
            for k in range(i, n):
                s += Sinv[k, i] * Sinv[k, j]
            Sinv[j, i] = s
    for i in range(n):
        s = 0.0
        for k in range(i, n):
            s += Sinv[k, i] * Sinv[k, i]
        Sinv[i, i] = s
    for i in range(n):
        for j in range(i):
            Sinv[i, j] = Sinv[j, i]


@njit(cache=True, error_model="numpy")
def _wrap(d, amb):
    """Wraps a Doppler difference into [-amb, amb) when the radar folds at +-amb."""
    if amb <= 0.0:
        return d
    span = 2.0 * amb
    return d - span * math.floor((d + amb) / span)


# ======================================================================================
# measurement prediction


@njit(cache=True, error_model="numpy")
def _innovation(x, P, z, R, vr, vr_var, has_vr, sensor, vr_amb, H, nu, S, PHt):
    """Innovation ``nu``, its covariance ``S`` and ``P H'`` for one plot; returns the dimension.

    Rows 0-2: converted position (linear). Row 3 (when the plot has Doppler):
    h = u·v with u = (p - s)/|p - s|; dh/dp = (v - h u)/|p - s|, dh/dv = u.
    """
    dim = 4 if has_vr else 3
    for a in range(4):
        for c in range(6):
            H[a, c] = 0.0
    for a in range(3):
        H[a, a] = 1.0
        nu[a] = z[a] - x[a]
    if has_vr:
        d0 = x[0] - sensor[0]
        d1 = x[1] - sensor[1]
        d2 = x[2] - sensor[2]
        rho = max(math.sqrt(d0 * d0 + d1 * d1 + d2 * d2), 1.0)
        u0, u1, u2 = d0 / rho, d1 / rho, d2 / rho
        h = u0 * x[3] + u1 * x[4] + u2 * x[5]
        H[3, 0] = (x[3] - h * u0) / rho
        H[3, 1] = (x[4] - h * u1) / rho
        H[3, 2] = (x[5] - h * u2) / rho
        H[3, 3] = u0
        H[3, 4] = u1
        H[3, 5] = u2
        nu[3] = _wrap(vr - h, vr_amb)
    for r in range(6):
        for a in range(3):
            PHt[r, a] = P[r, a]
        if has_vr:
            s = 0.0
            for c in range(6):
                s += P[r, c] * H[3, c]
            PHt[r, 3] = s
    for a in range(3):
        for b in range(3):
            S[a, b] = PHt[a, b] + R[a, b]
    if has_vr:
        for b in range(3):
            s = 0.0
            for c in range(6):
                s += H[3, c] * PHt[c, b]
            S[3, b] = s
            S[b, 3] = s
        s = vr_var
        for c in range(6):
            s += H[3, c] * PHt[c, 3]
        S[3, 3] = s
    return dim


@njit(cache=True, error_model="numpy")
def _kalman_update(x, P, nu, S, PHt, dim, L, K, w, b):
    """In-place Kalman update of (x, P); returns (d², log det S); d² = inf if S is not PD.

    K = P H' S^-1, x += K nu, P -= K (P H')'. ``b`` is scratch for S^-1 (4 x 4).
    """
    logdet = _chol(S, L, dim)
    if not np.isfinite(logdet):
        return np.inf, 0.0
    Sinv = b
    _chol_inverse(L, Sinv, dim)
    d2 = 0.0
    for a in range(dim):
        s = 0.0
        for c in range(dim):
            s += Sinv[a, c] * nu[c]
        w[a] = s
        d2 += nu[a] * s
    for r in range(6):
        for a in range(dim):
            s = 0.0
            for c in range(dim):
                s += PHt[r, c] * Sinv[c, a]
            K[r, a] = s
    for r in range(6):
        s = 0.0
        for a in range(dim):
            s += K[r, a] * nu[a]
        x[r] += s
    for r in range(6):
        for c in range(r, 6):
            s = 0.0
            for a in range(dim):
                s += K[r, a] * PHt[c, a]
            v = P[r, c] - s
            P[r, c] = v
            P[c, r] = v
        if P[r, r] < 1e-9:
            P[r, r] = 1e-9
    return d2, logdet


# ======================================================================================
# IMM


@njit(cache=True, error_model="numpy")
def _model_matrices(dt, mdl, Fm, Qm, stay):
    """Per-model F, Q and the probability of staying in the model over ``dt``.

    They depend on ``dt`` alone, and most tracks of a scan share one ``dt``: the
    scan computes them once per distinct ``dt`` (``_imm_predict_with``).
    """
    M = mdl.shape[0]
    for a in range(M):
        stay[a] = math.exp(-dt / max(mdl[a, M_TAU], 1e-6)) if M > 1 else 1.0
        _transition(dt, mdl[a, M_QH], mdl[a, M_QV], mdl[a, M_OMEGA], Fm[a], Qm[a])


@njit(cache=True, error_model="numpy")
def _imm_predict(xs, Ps, mu, i, dt, mdl, F, Q, x0, P0, mix, cbar, tmp):
    """Mixing and model-matched prediction of track slot ``i`` over ``dt`` (in place)."""
    M = mdl.shape[0]
    Fm = np.empty((M, 6, 6))
    Qm = np.empty((M, 6, 6))
    stay = np.empty(M)
    _model_matrices(dt, mdl, Fm, Qm, stay)
    _imm_predict_with(xs, Ps, mu, i, dt, mdl, Fm, Qm, stay, x0, P0, mix, cbar, tmp)
    F[:, :] = Fm[M - 1]
    Q[:, :] = Qm[M - 1]


@njit(cache=True, error_model="numpy")
def _imm_predict_with(xs, Ps, mu, i, dt, mdl, Fm, Qm, stay, x0, P0, mix, cbar, tmp):
    """``_imm_predict`` with the model matrices of this ``dt`` given (``_model_matrices``)."""
    M = mdl.shape[0]
    for a in range(M):
        for b in range(M):
            pab = stay[a] if a == b else (1.0 - stay[a]) / (M - 1)
            mix[a, b] = pab * mu[i, a]
    for b in range(M):
        s = 0.0
        for a in range(M):
            s += mix[a, b]
        cbar[b] = s
        for a in range(M):
            mix[a, b] = mix[a, b] / s if s > 0.0 else 1.0 / M
    tot = 0.0
    for b in range(M):
        tot += cbar[b]
    for b in range(M):
        cbar[b] = cbar[b] / tot if tot > 0.0 else 1.0 / M
    for b in range(M):
        xb = x0[b]
        Pb = P0[b]
        for r in range(6):
            s = 0.0
            for a in range(M):
                s += mix[a, b] * xs[i, a, r]
            xb[r] = s
        for r in range(6):
            for c in range(6):
                Pb[r, c] = 0.0
        for a in range(M):
            wa = mix[a, b]
            xa = xs[i, a]
            Pa = Ps[i, a]
            for r in range(6):
                dr = xa[r] - xb[r]
                for c in range(r, 6):
                    Pb[r, c] += wa * (Pa[r, c] + dr * (xa[c] - xb[c]))
        for r in range(6):
            for c in range(r + 1, 6):
                Pb[c, r] = Pb[r, c]
    for b in range(M):
        F = Fm[b]
        for r in range(6):
            s = 0.0
            for c in range(6):
                s += F[r, c] * x0[b, c]
            xs[i, b, r] = s
        if mdl[b, M_OMEGA] * dt == 0.0:
            _fpft_cv(dt, P0[b], Qm[b], Ps[i, b])
        else:
            _fpft(F, P0[b], Qm[b], Ps[i, b], tmp)
        mu[i, b] = cbar[b]


@njit(cache=True, error_model="numpy")
def _imm_combine(xs, Ps, mu, i, xc, Pc):
    """Moment-matched combination of the model estimates of slot ``i``."""
    M = mu.shape[1]
    x = xc[i]
    P = Pc[i]
    for r in range(6):
        s = 0.0
        for m in range(M):
            s += mu[i, m] * xs[i, m, r]
        x[r] = s
    for r in range(6):
        for c in range(r, 6):
            P[r, c] = 0.0
    for m in range(M):
        w = mu[i, m]
        xm = xs[i, m]
        Pm = Ps[i, m]
        for r in range(6):
            dr = xm[r] - x[r]
            for c in range(r, 6):
                P[r, c] += w * (Pm[r, c] + dr * (xm[c] - x[c]))
    for r in range(6):
        for c in range(r + 1, 6):
            P[c, r] = P[r, c]


@njit(cache=True, error_model="numpy")
def _imm_update(
    xs, Ps, mu, i, z, R, vr, vr_var, has_vr, sensor, vr_amb, H, nu, S, PHt, L, K, w, b, lik
):
    """Model-matched updates and mode probabilities of slot ``i``; returns the steady model's Doppler NIS."""
    M = mu.shape[1]
    nis0 = np.nan
    for m in range(M):
        dim = _innovation(
            xs[i, m], Ps[i, m], z, R, vr, vr_var, has_vr, sensor, vr_amb, H, nu, S, PHt
        )
        if m == 0 and has_vr:
            nis0 = nu[3] * nu[3] / S[3, 3] if S[3, 3] > 0.0 else np.nan
        d2, logdet = _kalman_update(xs[i, m], Ps[i, m], nu, S, PHt, dim, L, K, w, b)
        if np.isfinite(d2):
            lik[m] = -0.5 * d2 - 0.5 * logdet - 0.5 * dim * LOG_2PI
        else:
            lik[m] = -np.inf
    top = -np.inf
    for m in range(M):
        if lik[m] > top:
            top = lik[m]
    tot = 0.0
    for m in range(M):
        v = mu[i, m] * math.exp(lik[m] - top) if np.isfinite(top) else mu[i, m]
        mu[i, m] = v
        tot += v
    for m in range(M):
        mu[i, m] = mu[i, m] / tot if tot > 0.0 else 1.0 / M
    return nis0


# ======================================================================================
# assignment


@njit(cache=True, error_model="numpy")
def _lsap(cost, nr, nc, row4col, col4row, u, v, shortest, path, sr, sc, remaining):
    """Minimum-cost assignment of every row of ``cost[:nr, :nc]`` (nr <= nc) to a distinct column.

    Shortest augmenting path with dual potentials (Crouse 2016, Algorithm 1;
    the method of SciPy's ``linear_sum_assignment``). Fills ``col4row``;
    returns False when some row has no finite column.
    """
    for i in range(nr):
        u[i] = 0.0
        col4row[i] = -1
    for j in range(nc):
        v[j] = 0.0
        row4col[j] = -1
        path[j] = -1
    for cur in range(nr):
        for j in range(nc):
            shortest[j] = np.inf
            sc[j] = False
            remaining[j] = nc - j - 1
        for i in range(nr):
            sr[i] = False
        n_rem = nc
        min_val = 0.0
        sink = -1
        i = cur
        while sink == -1:
            sr[i] = True
            index = -1
            lowest = np.inf
            for it in range(n_rem):
                j = remaining[it]
                r = min_val + cost[i, j] - u[i] - v[j]
                if r < shortest[j]:
                    path[j] = i
                    shortest[j] = r
                if shortest[j] < lowest or (shortest[j] == lowest and row4col[j] == -1):
                    lowest = shortest[j]
                    index = it
            min_val = lowest
            if index == -1 or not np.isfinite(min_val):
                return False
            j = remaining[index]
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
            sc[j] = True
            n_rem -= 1
            remaining[index] = remaining[n_rem]
        u[cur] += min_val
        for i in range(nr):
            if sr[i] and i != cur:
                u[i] += min_val - shortest[col4row[i]]
        for j in range(nc):
            if sc[j]:
                v[j] -= min_val - shortest[j]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            nxt = col4row[i]
            col4row[i] = j
            j = nxt
            if i == cur:
                break
    return True


@njit(cache=True, error_model="numpy")
def _find(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@njit(cache=True, error_model="numpy")
def _clusters(n_nodes, pair_a, pair_b, n_pairs, comp):
    """Connected components of a bipartite pair list (union-find); ``comp[k]`` = root of pair k."""
    parent = np.arange(n_nodes)
    for k in range(n_pairs):
        ra = _find(parent, pair_a[k])
        rb = _find(parent, pair_b[k])
        if ra != rb:
            if ra < rb:
                parent[rb] = ra
            else:
                parent[ra] = rb
    for k in range(n_pairs):
        comp[k] = _find(parent, pair_a[k])


@njit(cache=True, error_model="numpy")
def _assign(
    n_tracks, n_plots, pair_t, pair_p, pair_cost, n_pairs, miss_cost, track_plot, plot_track, stats
):
    """Global nearest neighbour over gated pairs, solved exactly per cluster.

    Rows are tracks, columns their gated plots plus one private "miss" column
    per track (cost ``miss_cost``); pairs outside the gate are forbidden.
    Fills ``track_plot`` (plot index or -1) and ``plot_track``.
    """
    for a in range(n_tracks):
        track_plot[a] = -1
    for j in range(n_plots):
        plot_track[j] = -1
    if n_pairs == 0:
        return
    comp = np.empty(n_pairs, dtype=np.int64)
    _clusters(n_tracks + n_plots, pair_t, pair_p + n_tracks, n_pairs, comp)
    order = np.argsort(comp, kind="mergesort")
    loc_t = -np.ones(n_tracks, dtype=np.int64)
    loc_p = -np.ones(n_plots, dtype=np.int64)
    rows = np.empty(n_tracks, dtype=np.int64)
    cols = np.empty(n_plots, dtype=np.int64)
    k0 = 0
    while k0 < n_pairs:
        root = comp[order[k0]]
        k1 = k0
        while k1 < n_pairs and comp[order[k1]] == root:
            k1 += 1
        nr = 0
        ncp = 0
        for kk in range(k0, k1):
            k = order[kk]
            a = pair_t[k]
            j = pair_p[k]
            if loc_t[a] == -1:
                loc_t[a] = nr
                rows[nr] = a
                nr += 1
            if loc_p[j] == -1:
                loc_p[j] = ncp
                cols[ncp] = j
                ncp += 1
        stats[ST_CLUSTERS] += 1
        if nr + ncp > stats[ST_MAX_CLUSTER]:
            stats[ST_MAX_CLUSTER] = nr + ncp
        if nr == 1 and ncp == 1:
            k = order[k0]
            a = pair_t[k]
            if pair_cost[k] < miss_cost[a]:
                track_plot[a] = pair_p[k]
                plot_track[pair_p[k]] = a
        else:
            nc = ncp + nr
            cost = np.full((nr, nc), BIG)
            for r in range(nr):
                cost[r, ncp + r] = miss_cost[rows[r]]
            for kk in range(k0, k1):
                k = order[kk]
                cost[loc_t[pair_t[k]], loc_p[pair_p[k]]] = pair_cost[k]
            row4col = np.empty(nc, dtype=np.int64)
            col4row = np.empty(nr, dtype=np.int64)
            ok = _lsap(
                cost,
                nr,
                nc,
                row4col,
                col4row,
                np.empty(nr),
                np.empty(nc),
                np.empty(nc),
                np.empty(nc, dtype=np.int64),
                np.empty(nr, dtype=np.bool_),
                np.empty(nc, dtype=np.bool_),
                np.empty(nc, dtype=np.int64),
            )
            if ok:
                for r in range(nr):
                    c = col4row[r]
                    if c < ncp and cost[r, c] < BIG:
                        track_plot[rows[r]] = cols[c]
                        plot_track[cols[c]] = rows[r]
        for r in range(nr):
            loc_t[rows[r]] = -1
        for c in range(ncp):
            loc_p[cols[c]] = -1
        k0 = k1


# ======================================================================================
# track logic helpers


@njit(cache=True, error_model="numpy")
def _popcount(h, n):
    c = 0
    for b in range(n):
        if (h >> b) & 1:
            c += 1
    return c


@njit(cache=True, error_model="numpy")
def _misses_in_row(h, n):
    """Scans since the last hit: trailing zeros of the hit history (at most n)."""
    c = 0
    while c < n and c < 62 and ((h >> c) & 1) == 0:
        c += 1
    return c


@njit(cache=True, error_model="numpy")
def _detection_probability(feats, i, rng, sp):
    """Pd of track ``i`` at range ``rng``: exp(-T/SNR̄) from its own SNR history (Swerling 1)."""
    thr = sp[S_THR_LIN]
    if feats[i, F_N_SNR] >= 1.0 and np.isfinite(thr) and rng > 0.0:
        snr = feats[i, F_SNR1] / (rng * rng * rng * rng)
        if snr > 0.0:
            return math.exp(-thr / snr)
        return 0.0
    return sp[S_PD_DEFAULT]


@njit(cache=True, error_model="numpy")
def _in_coverage(x, sp):
    d0 = x[0] - sp[S_POS]
    d1 = x[1] - sp[S_POS + 1]
    d2 = x[2] - sp[S_POS + 2]
    rh = math.sqrt(d0 * d0 + d1 * d1)
    r = math.sqrt(rh * rh + d2 * d2)
    if r > sp[S_MAX_RANGE] or r < sp[S_MIN_RANGE]:
        return False, r
    el = math.atan2(d2, rh)
    return sp[S_EL_MIN] <= el <= sp[S_EL_MAX], r


@njit(cache=True, error_model="numpy")
def _existence_update(p, pd, pg, ratio, detected):
    """IPDA existence update (Musicki et al. 1994, eq. 27-28) with at most one measurement."""
    delta = pd * pg - pd * ratio if detected else pd * pg
    den = 1.0 - delta * p
    if den <= 0.0:
        return p
    return p * (1.0 - delta) / den


@njit(cache=True, error_model="numpy")
def _init_track(
    slot,
    t,
    z,
    R,
    vr,
    vr_var,
    has_vr,
    los,
    prm,
    mdl,
    status,
    tid,
    hist,
    n_scans,
    n_hits,
    exist,
    t_state,
    t_last_hit,
    t_birth,
    xs,
    Ps,
    mu,
    xc,
    Pc,
    birth_z,
    birth_R,
    birth_vr,
    birth_los,
    feats,
):
    """One-point initiation: position from the plot, velocity along the line of sight from Doppler."""
    M = mdl.shape[0]
    sv = prm[P_INIT_VEL_SIGMA]
    for r in range(6):
        xc[slot, r] = 0.0
        for c in range(6):
            Pc[slot, r, c] = 0.0
    for a in range(3):
        xc[slot, a] = z[a]
        for b in range(3):
            Pc[slot, a, b] = R[a, b]
    if has_vr:
        # Across the line of sight: the prior spread; along it: the Doppler's own.
        for a in range(3):
            xc[slot, 3 + a] = vr * los[a]
            for b in range(3):
                eye = 1.0 if a == b else 0.0
                Pc[slot, 3 + a, 3 + b] = (
                    sv * sv * (eye - los[a] * los[b]) + (vr_var + 0.25) * los[a] * los[b]
                )
    else:
        for a in range(3):
            Pc[slot, 3 + a, 3 + a] = sv * sv
    for m in range(M):
        mu[slot, m] = mdl[m, M_MU0]
        for r in range(6):
            xs[slot, m, r] = xc[slot, r]
            for c in range(6):
                Ps[slot, m, r, c] = Pc[slot, r, c]
    status[slot] = TENTATIVE
    tid[slot] = 0
    hist[slot] = 1
    n_scans[slot] = 1
    n_hits[slot] = 1
    exist[slot] = prm[P_P_INIT]
    t_state[slot] = t
    t_last_hit[slot] = t
    t_birth[slot] = t
    for a in range(3):
        birth_z[slot, a] = z[a]
        birth_los[slot, a] = los[a]
        for b in range(3):
            birth_R[slot, a, b] = R[a, b]
    birth_vr[slot] = vr if has_vr else np.nan
    for f in range(feats.shape[1]):
        feats[slot, f] = 0.0
    for f in range(NIS_RING):
        feats[slot, F_NIS_RING + f] = -1.0


@njit(cache=True, error_model="numpy")
def _two_point(
    i, t, z, R, vr, vr_var, has_vr, los, prm, t_last_hit, birth_z, birth_R, birth_vr, birth_los
):
    """Whether a plot continues the single-plot tentative ``i`` at any speed up to the limit.

    The implied velocity (z - z_first)/dt must be below ``P_MAX_SPEED`` and its
    line-of-sight component must match the Doppler of both plots within 4
    sigma. Returns (the worse of the two Doppler misfits in sigma units, or inf
    when the pair is inconsistent; the implied speed, which breaks ties).
    """
    dt = t - t_last_hit[i]
    if dt <= 0.0 or dt > prm[P_TWO_POINT_DT]:
        return np.inf, np.inf
    v0 = (z[0] - birth_z[i, 0]) / dt
    v1 = (z[1] - birth_z[i, 1]) / dt
    v2 = (z[2] - birth_z[i, 2]) / dt
    speed = math.sqrt(v0 * v0 + v1 * v1 + v2 * v2)
    if speed > prm[P_MAX_SPEED]:
        return np.inf, speed
    worst = 0.0
    for which in range(2):
        if which == 0:
            if not has_vr:
                continue
            ur = los
            vm = vr
            var = vr_var
        else:
            if not np.isfinite(birth_vr[i]):
                continue
            ur = birth_los[i]
            vm = birth_vr[i]
            var = vr_var if has_vr else 0.09
        pred = ur[0] * v0 + ur[1] * v1 + ur[2] * v2
        pv = 0.0
        for a in range(3):
            for c in range(3):
                pv += ur[a] * (R[a, c] + birth_R[i, a, c]) * ur[c]
        # Position noise of both plots over the gap, the Doppler's own, and some acceleration.
        pv = pv / (dt * dt) + var + 1.0
        k = abs(pred - vm) / math.sqrt(pv)
        if k > worst:
            worst = k
    if worst > 4.0:
        return np.inf, speed
    return worst, speed


@njit(cache=True, error_model="numpy")
def _two_point_start(
    i,
    t,
    z,
    R,
    prm,
    mdl,
    hist,
    n_scans,
    n_hits,
    exist,
    t_state,
    t_last_hit,
    xs,
    Ps,
    mu,
    xc,
    Pc,
    birth_z,
    birth_R,
):
    """Restarts tentative ``i`` from two plots: position of the second, velocity by differencing."""
    M = mdl.shape[0]
    dt = t - t_last_hit[i]
    for r in range(6):
        for c in range(6):
            Pc[i, r, c] = 0.0
    for a in range(3):
        xc[i, a] = z[a]
        xc[i, 3 + a] = (z[a] - birth_z[i, a]) / dt
        for b in range(3):
            Pc[i, a, b] = R[a, b]
            Pc[i, a, 3 + b] = R[a, b] / dt
            Pc[i, 3 + a, b] = R[a, b] / dt
            Pc[i, 3 + a, 3 + b] = (R[a, b] + birth_R[i, a, b]) / (dt * dt)
        Pc[i, 3 + a, 3 + a] += 4.0  # unknown acceleration over the gap
    for m in range(M):
        mu[i, m] = mdl[m, M_MU0]
        for r in range(6):
            xs[i, m, r] = xc[i, r]
            for c in range(6):
                Ps[i, m, r, c] = Pc[i, r, c]
    hist[i] = (hist[i] << 1) | 1
    n_scans[i] += 1
    n_hits[i] += 1
    exist[i] = max(exist[i], prm[P_P_INIT2])
    t_state[i] = t
    t_last_hit[i] = t


@njit(cache=True, error_model="numpy")
def _ewma(feats, i, col, value, alpha):
    feats[i, col] += alpha * (value - feats[i, col])


@njit(cache=True, error_model="numpy")
def _update_features(
    feats, i, t, x, P, mu0, nis0, vr, has_vr, rng, snr_lin, rcs_lin, thr_lin, birth_z, prm
):
    """Per-hit features for classification (averages with time constant ``P_FEAT_TAU``)."""
    n = feats[i, F_N]
    dt = t - feats[i, F_T_LAST] if n > 0 else 0.0
    alpha = max(1.0 / (n + 1.0), 1.0 - math.exp(-max(dt, 0.0) / prm[P_FEAT_TAU]))
    feats[i, F_N] = n + 1.0
    feats[i, F_T_LAST] = t
    if np.isfinite(rcs_lin):
        corr = 1.0
        if np.isfinite(snr_lin) and np.isfinite(thr_lin) and snr_lin > 0.0:
            corr = max(1.0 - thr_lin / snr_lin, 0.0)
        val = rcs_lin * corr
        nr = feats[i, F_N_RCS]
        ar = max(1.0 / (nr + 1.0), alpha)
        _ewma(feats, i, F_RCS, val, ar)
        _ewma(feats, i, F_RCS2, val * val, ar)
        feats[i, F_N_RCS] = nr + 1.0
    if np.isfinite(snr_lin) and np.isfinite(thr_lin):
        ns = feats[i, F_N_SNR]
        a_s = max(1.0 / (ns + 1.0), alpha)
        _ewma(feats, i, F_SNR1, max(snr_lin - thr_lin, 0.0) * rng * rng * rng * rng, a_s)
        feats[i, F_N_SNR] = ns + 1.0
    speed = math.sqrt(x[3] * x[3] + x[4] * x[4] + x[5] * x[5])
    _ewma(feats, i, F_SPEED, speed, alpha)
    _ewma(feats, i, F_SPEED2, speed * speed, alpha)
    _ewma(feats, i, F_MANOEUVRE, 1.0 - mu0, alpha)
    if np.isfinite(nis0):
        nv = feats[i, F_N_VR]
        av = max(1.0 / (nv + 1.0), alpha)
        _ewma(feats, i, F_NIS_VR, min(nis0, 25.0), av)
        _ewma(feats, i, F_NIS_VR_HI, 1.0 if nis0 > 9.0 else 0.0, av)
        _ewma(feats, i, F_VR_ABS, abs(vr), av)
        feats[i, F_N_VR] = nv + 1.0
        # The median of recent NIS tells continual unsteadiness (a bird) from one manoeuvre.
        pos = int(feats[i, F_NIS_RING_POS])
        feats[i, F_NIS_RING + pos % NIS_RING] = min(nis0, 100.0)
        feats[i, F_NIS_RING_POS] = pos + 1.0
    dx = x[0] - birth_z[i, 0]
    dy = x[1] - birth_z[i, 1]
    disp = math.sqrt(dx * dx + dy * dy)
    if disp > feats[i, F_MAX_DISP]:
        feats[i, F_MAX_DISP] = disp
    hs = math.sqrt(x[3] * x[3] + x[4] * x[4])
    hs_sigma = math.sqrt(max(P[3, 3] + P[4, 4], 0.0))
    if (
        hs < prm[P_HOVER_SPEED]
        and hs_sigma < prm[P_HOVER_SPEED]
        and feats[i, F_MAX_DISP] >= prm[P_MOVED_M]
    ):
        feats[i, F_HOVER_S] += dt
    _ewma(feats, i, F_ALT, x[2], alpha)
    _ewma(feats, i, F_CLIMB, abs(x[5]), alpha)


@njit(cache=True, error_model="numpy")
def _gate_bounds(xs, Ps, xc, i, off, pmax):
    """Per-axis offset of the models from the combined mean, and the models' largest variance.

    A plot inside model m's gate (gamma) satisfies, on every axis k,
    |z_k - x_m,k| <= sqrt(gamma · S_m,kk) = sqrt(gamma · (P_m,kk + R_kk)), hence
    |z_k - xc_k| <= off_k + sqrt(gamma · (pmax_k + R_kk)): an exact pre-gate.
    """
    M = xs.shape[1]
    for k in range(3):
        o = 0.0
        p = 0.0
        for m in range(M):
            d = abs(xs[i, m, k] - xc[i, k])
            if d > o:
                o = d
            if Ps[i, m, k, k] > p:
                p = Ps[i, m, k, k]
        off[k] = o
        pmax[k] = p


@njit(cache=True, error_model="numpy")
def _pair_score(xs, Ps, mu, i, z, R, vr, vr_var, has_vr, sensor, vr_amb, H, nu, S, PHt, L, w):
    """Gate distance and IMM mixture likelihood of one plot for track slot ``i`` (predicted).

    Returns (smallest d² over the models, log of sum_m mu_m N(nu_m; 0, S_m),
    dimension). A plot is in the gate when any model's prediction explains
    it: a hovering drone that sets off is out of the steady model's Doppler
    gate but inside the manoeuvring model's.
    """
    M = mu.shape[1]
    best = np.inf
    top = -np.inf
    acc = 0.0
    dim = 3
    for m in range(M):
        dim = _innovation(
            xs[i, m], Ps[i, m], z, R, vr, vr_var, has_vr, sensor, vr_amb, H, nu, S, PHt
        )
        logdet = _chol(S, L, dim)
        if not np.isfinite(logdet) or mu[i, m] <= 0.0:
            continue
        _chol_solve(L, nu, w, dim)
        d2 = 0.0
        for q in range(dim):
            d2 += nu[q] * w[q]
        if d2 < best:
            best = d2
        lg = math.log(mu[i, m]) - 0.5 * d2 - 0.5 * logdet - 0.5 * dim * LOG_2PI
        # Running log-sum-exp.
        if lg > top:
            acc = acc * math.exp(top - lg) + 1.0 if np.isfinite(top) else 1.0
            top = lg
        else:
            acc += math.exp(lg - top)
    if not np.isfinite(top):
        return np.inf, -np.inf, dim
    return best, top + math.log(acc), dim


# ======================================================================================
# one scan


@njit(cache=True, error_model="numpy")
def _small_size(M):
    return (
        36
        + 6 * M
        + 36 * M
        + M * M
        + M
        + 3
        + 3
        + 24
        + 4
        + 16
        + 24
        + 16
        + 24
        + 4
        + 16
        + M
        + 72 * M
        + M
    )


@njit(cache=True, error_model="numpy")
def _work_size(hc, pc, M):
    """(floats, ints) of the scratch ``_scan`` needs for ``hc`` used slots and ``pc`` plots."""
    mp = 16 * (hc + pc) + 16
    return 7 * pc + 4 * hc + 2 * mp + _small_size(M), 5 * hc + 2 * pc + 2 * mp


@njit(cache=True, error_model="numpy", inline="always")
def _take(buf, o, n):
    return buf[o : o + n], o + n


@njit(cache=True, error_model="numpy", inline="always")
def _work_views(wf, wi, hc, pc, M):
    """The scratch arrays of ``_scan`` as views of ``wf`` and ``wi`` (layout of ``_work_size``)."""
    mp = 16 * (hc + pc) + 16
    o = 0
    act, o = _take(wi, o, hc)
    track_plot, o = _take(wi, o, hc)
    cand, o = _take(wi, o, hc)
    covered, o = _take(wi, o, hc)
    taken, o = _take(wi, o, hc)
    order, o = _take(wi, o, pc)
    plot_track, o = _take(wi, o, pc)
    pair_t, o = _take(wi, o, mp)
    pair_p, o = _take(wi, o, mp)
    o = 0
    zx, o = _take(wf, o, pc)
    gp, o = _take(wf, o, 5 * pc)
    near, o = _take(wf, o, pc)
    pd, o = _take(wf, o, hc)
    miss_cost, o = _take(wf, o, hc)
    ratio_of, o = _take(wf, o, hc)
    cand_x, o = _take(wf, o, hc)
    pair_cost, o = _take(wf, o, mp)
    pair_ratio, o = _take(wf, o, mp)
    tmp, o = _take(wf, o, 36)
    x0, o = _take(wf, o, 6 * M)
    P0, o = _take(wf, o, 36 * M)
    mix, o = _take(wf, o, M * M)
    cbar, o = _take(wf, o, M)
    off, o = _take(wf, o, 3)
    pmax, o = _take(wf, o, 3)
    H, o = _take(wf, o, 24)
    nu, o = _take(wf, o, 4)
    S, o = _take(wf, o, 16)
    PHt, o = _take(wf, o, 24)
    L, o = _take(wf, o, 16)
    K, o = _take(wf, o, 24)
    w, o = _take(wf, o, 4)
    bb, o = _take(wf, o, 16)
    lik, o = _take(wf, o, M)
    Fm, o = _take(wf, o, 36 * M)
    Qm, o = _take(wf, o, 36 * M)
    stay, o = _take(wf, o, M)
    small = (
        tmp.reshape((6, 6)),
        x0.reshape((M, 6)),
        P0.reshape((M, 6, 6)),
        mix.reshape((M, M)),
        cbar,
        off,
        pmax,
        H.reshape((4, 6)),
        nu,
        S.reshape((4, 4)),
        PHt.reshape((6, 4)),
        L.reshape((4, 4)),
        K.reshape((6, 4)),
        w,
        bb.reshape((4, 4)),
        lik,
        Fm.reshape((M, 6, 6)),
        Qm.reshape((M, 6, 6)),
        stay,
    )
    return (
        act,
        track_plot,
        cand,
        covered,
        taken,
        order,
        plot_track,
        pair_t,
        pair_p,
        zx,
        gp.reshape((pc, 5)),
        near,
        pd,
        miss_cost,
        ratio_of,
        cand_x,
        pair_cost,
        pair_ratio,
        small,
    )


@njit(cache=True, error_model="numpy")
def _scan(
    t,
    sp,
    z,
    R,
    vr,
    vr_var,
    has_vr,
    los,
    dens,
    rng_m,
    snr_lin,
    rcs_lin,
    prm,
    mdl,
    status,
    tid,
    hist,
    n_scans,
    n_hits,
    exist,
    t_state,
    t_last_hit,
    t_birth,
    xs,
    Ps,
    mu,
    xc,
    Pc,
    birth_z,
    birth_R,
    birth_vr,
    birth_los,
    feats,
    track_plot_out,
    plot_slot_out,
    next_id,
    deleted_out,
    stats,
    totals,
    high_water,
    conf_slots,
    n_conf,
    wf,
    wi,
    hc,
    pc,
):
    """Processes one radar scan at time ``t`` (s) against every track; returns the number deleted.

    Predict all tracks to ``t``; gate; assign (GNN per cluster); IMM-update the
    assigned tracks and their features; update existence and hit history; start
    tracks from unexplained plots (two-point, else one-point); confirm (M-of-N
    and existence); delete. ``track_plot_out[slot]`` receives the plot index
    that updated each slot (-1: none), ``plot_slot_out[plot]`` the slot each plot
    updated or started (-1: none). ``deleted_out`` receives the public ids of
    deleted confirmed tracks. ``stats`` receives this scan's counters and
    ``totals`` accumulates them (``ST_MAX_CLUSTER``: the largest).
    ``high_water[0]`` bounds the used slots: every slot at or above it is free
    (and has ``track_plot_out`` -1), so per-scan loops skip the empty capacity.
    ``conf_slots[:n_conf[0]]`` receives the confirmed slots after the scan, in
    slot order. ``wf`` and ``wi`` are scratch (float, int64) laid out by
    ``_work_size(hc, pc)`` for at least ``hc`` used slots and ``pc`` plots: the
    caller keeps them, so a scan allocates almost nothing.
    """
    N = status.shape[0]
    M = mdl.shape[0]
    P = z.shape[0]
    for k in range(stats.shape[0]):
        stats[k] = 0
    for j in range(P):
        plot_slot_out[j] = -1
    sensor = sp[S_POS : S_POS + 3]
    vr_amb = sp[S_VR_AMB]
    pg = prm[P_GATE_PROB]

    # --- active slots, prediction --------------------------------------------------------
    hw = min(high_water[0], N)
    (
        act,
        i_track_plot,
        cand,
        covered,
        taken,
        order,
        plot_track,
        pair_t,
        pair_p,
        zx,
        gp,
        plot_near_confirmed,
        pd,
        miss_cost,
        ratio_of,
        cand_x,
        pair_cost,
        pair_ratio,
        small,
    ) = _work_views(wf, wi, hc, pc, M)
    tmp, x0, P0, mix, cbar, off, pmax, H, nu, S, PHt, L, K, w, bb, lik, Fm, Qm, stay = small
    n_act = 0
    for i in range(hw):
        track_plot_out[i] = -1
        if status[i] != FREE:
            act[n_act] = i
            n_act += 1
    dt_done = np.nan  # the dt whose model matrices are in Fm, Qm, stay
    survival = 1.0
    for a in range(n_act):
        i = act[a]
        dt = t - t_state[i]
        if dt > 0.0:
            if dt != dt_done:
                _model_matrices(dt, mdl, Fm, Qm, stay)
                survival = math.exp(-dt / prm[P_SURVIVAL_TAU])
                dt_done = dt
            _imm_predict_with(xs, Ps, mu, i, dt, mdl, Fm, Qm, stay, x0, P0, mix, cbar, tmp)
            _imm_combine(xs, Ps, mu, i, xc, Pc)
            exist[i] *= survival
            t_state[i] = t
        cov, r = _in_coverage(xc[i], sp)
        covered[a] = 1 if cov else 0
        pdv = _detection_probability(feats, i, r, sp)
        pd[a] = min(prm[P_PD_MAX], max(prm[P_PD_MIN], pdv))

    # --- gating ---------------------------------------------------------------------------
    # Plots sorted by east, packed with what the box pre-gate reads: (north, up,
    # gamma·R_ee, gamma·R_nn, gamma·R_uu), so the sweep reads memory in order.
    gate_max = max(prm[P_GATE3], prm[P_GATE4])
    srt = np.argsort(z[:, 0].copy())
    rxx_max = 0.0
    for k in range(P):
        j = srt[k]
        order[k] = j
        zx[k] = z[j, 0]
        gp[k, 0] = z[j, 1]
        gp[k, 1] = z[j, 2]
        gp[k, 2] = gate_max * R[j, 0, 0]
        gp[k, 3] = gate_max * R[j, 1, 1]
        gp[k, 4] = gate_max * R[j, 2, 2]
        if R[j, 0, 0] > rxx_max:
            rxx_max = R[j, 0, 0]
        plot_near_confirmed[j] = np.inf
    zxs = zx[:P]
    max_pairs = 16 * (n_act + P) + 16
    n_pairs = 0
    for a in range(n_act):
        i = act[a]
        pe = exist[i] * pd[a]
        miss_cost[a] = -math.log(max(1.0 - pe * pg, 1e-12))
        if P == 0:
            continue
        _gate_bounds(xs, Ps, xc, i, off, pmax)
        cx = xc[i, 0]
        cy = xc[i, 1]
        cz = xc[i, 2]
        radius = off[0] + math.sqrt(gate_max * (pmax[0] + rxx_max))
        # The box test |z_q - xc_q| <= off_q + sqrt(gamma (pmax_q + R_qq)) without a square
        # root: (|z_q - xc_q| - off_q)² <= gamma pmax_q + gamma R_qq, widened by 1e-9 so
        # that rounding never drops a plot the exact box keeps (the gate decides anyway).
        gx = gate_max * pmax[0]
        gy = gate_max * pmax[1]
        gz = gate_max * pmax[2]
        lo = np.searchsorted(zxs, cx - radius)
        for kk in range(lo, P):
            if zxs[kk] > cx + radius:
                break
            e = abs(zxs[kk] - cx) - off[0]
            if e > 0.0 and e * e > (gx + gp[kk, 2]) * BOX_SLACK:
                continue
            e = abs(gp[kk, 0] - cy) - off[1]
            if e > 0.0 and e * e > (gy + gp[kk, 3]) * BOX_SLACK:
                continue
            e = abs(gp[kk, 1] - cz) - off[2]
            if e > 0.0 and e * e > (gz + gp[kk, 4]) * BOX_SLACK:
                continue
            j = order[kk]
            d2, log_g, dim = _pair_score(
                xs,
                Ps,
                mu,
                i,
                z[j],
                R[j],
                vr[j],
                vr_var[j],
                has_vr[j] == 1,
                sensor,
                vr_amb,
                H,
                nu,
                S,
                PHt,
                L,
                w,
            )
            if not np.isfinite(d2):
                continue
            if status[i] == CONFIRMED and d2 < plot_near_confirmed[j]:
                plot_near_confirmed[j] = d2
            if d2 > (prm[P_GATE4] if dim == 4 else prm[P_GATE3]):
                continue
            if n_pairs >= max_pairs:
                stats[ST_PAIR_OVERFLOW] += 1
                continue
            log_ratio = log_g - math.log(dens[j])
            pair_t[n_pairs] = a
            pair_p[n_pairs] = j
            pair_ratio[n_pairs] = log_ratio
            pair_cost[n_pairs] = -(math.log(max(pe, 1e-12)) + log_ratio)
            n_pairs += 1
    stats[ST_PAIRS] = n_pairs

    # --- assignment -----------------------------------------------------------------------
    track_plot = i_track_plot
    _assign(
        n_act,
        P,
        pair_t[:n_pairs],
        pair_p[:n_pairs],
        pair_cost[:n_pairs],
        n_pairs,
        miss_cost,
        track_plot,
        plot_track,
        stats,
    )
    for a in range(n_act):
        ratio_of[a] = 0.0
    for k in range(n_pairs):
        a = pair_t[k]
        if track_plot[a] == pair_p[k]:
            ratio_of[a] = pair_ratio[k]

    # --- update ---------------------------------------------------------------------------
    thr_lin = sp[S_THR_LIN]
    for a in range(n_act):
        i = act[a]
        j = track_plot[a]
        if j >= 0:
            nis0 = _imm_update(
                xs,
                Ps,
                mu,
                i,
                z[j],
                R[j],
                vr[j],
                vr_var[j],
                has_vr[j] == 1,
                sensor,
                vr_amb,
                H,
                nu,
                S,
                PHt,
                L,
                K,
                w,
                bb,
                lik,
            )
            _imm_combine(xs, Ps, mu, i, xc, Pc)
            ratio = math.exp(min(ratio_of[a], 700.0))
            exist[i] = _existence_update(exist[i], pd[a], pg, ratio, True)
            hist[i] = (hist[i] << 1) | 1
            n_scans[i] += 1
            n_hits[i] += 1
            t_last_hit[i] = t
            _update_features(
                feats,
                i,
                t,
                xc[i],
                Pc[i],
                mu[i, 0],
                nis0,
                vr[j],
                has_vr[j] == 1,
                rng_m[j],
                snr_lin[j],
                rcs_lin[j],
                thr_lin,
                birth_z,
                prm,
            )
            track_plot_out[i] = j
            plot_slot_out[j] = i
            stats[ST_ASSIGNED] += 1
        elif covered[a] != 0:
            exist[i] = _existence_update(exist[i], pd[a], pg, 0.0, False)
            hist[i] = hist[i] << 1
            n_scans[i] += 1
        exist[i] = min(exist[i], prm[P_P_MAX])

    # --- initiation ----------------------------------------------------------------------
    # Two-point candidates: single-plot tentative tracks that missed this scan, by east.
    n_cand = 0
    max_gap = 0.0
    for a in range(n_act):
        i = act[a]
        if status[i] == TENTATIVE and n_hits[i] == 1 and track_plot[a] < 0 and t_birth[i] < t:
            gap = t - t_last_hit[i]
            if gap <= prm[P_TWO_POINT_DT]:
                cand[n_cand] = a
                n_cand += 1
                if gap > max_gap:
                    max_gap = gap
    for k in range(n_cand):
        cand_x[k] = birth_z[act[cand[k]], 0]
    corder = np.argsort(cand_x[:n_cand])
    cand = cand[:n_cand][corder]
    cand_x = cand_x[:n_cand][corder]
    reach = prm[P_MAX_SPEED] * max_gap
    free_ptr = 0
    for a in range(n_act):
        taken[a] = 0
    for j in range(P):
        if plot_track[j] >= 0:
            continue
        hv = has_vr[j] == 1
        # Two-point start: the best Doppler fit, then the lowest speed, then the first slot.
        best = -1
        best_fit = np.inf
        best_speed = np.inf
        lo = np.searchsorted(cand_x, z[j, 0] - reach)
        for kk in range(lo, n_cand):
            if cand_x[kk] > z[j, 0] + reach:
                break
            a = cand[kk]
            if taken[a] != 0:
                continue
            i = act[a]
            fit, speed = _two_point(
                i,
                t,
                z[j],
                R[j],
                vr[j],
                vr_var[j],
                hv,
                los[j],
                prm,
                t_last_hit,
                birth_z,
                birth_R,
                birth_vr,
                birth_los,
            )
            if not np.isfinite(fit):
                continue
            if fit < best_fit or (
                fit == best_fit and (speed < best_speed or (speed == best_speed and a < best))
            ):
                best_fit = fit
                best_speed = speed
                best = a
        if best >= 0:
            i = act[best]
            taken[best] = 1
            _two_point_start(
                i,
                t,
                z[j],
                R[j],
                prm,
                mdl,
                hist,
                n_scans,
                n_hits,
                exist,
                t_state,
                t_last_hit,
                xs,
                Ps,
                mu,
                xc,
                Pc,
                birth_z,
                birth_R,
            )
            _update_features(
                feats,
                i,
                t,
                xc[i],
                Pc[i],
                mu[i, 0],
                np.nan,
                vr[j],
                hv,
                rng_m[j],
                snr_lin[j],
                rcs_lin[j],
                thr_lin,
                birth_z,
                prm,
            )
            track_plot_out[i] = j
            plot_slot_out[j] = i
            stats[ST_TWO_POINT] += 1
            continue
        if plot_near_confirmed[j] < prm[P_SPAWN_SUPPRESS]:
            continue  # a second plot of a tracked target, not a new one
        while free_ptr < N and status[free_ptr] != FREE:
            free_ptr += 1
        if free_ptr >= N:
            stats[ST_SLOT_OVERFLOW] += 1
            continue
        i = free_ptr
        if i >= hw:
            hw = i + 1
        _init_track(
            i,
            t,
            z[j],
            R[j],
            vr[j],
            vr_var[j],
            hv,
            los[j],
            prm,
            mdl,
            status,
            tid,
            hist,
            n_scans,
            n_hits,
            exist,
            t_state,
            t_last_hit,
            t_birth,
            xs,
            Ps,
            mu,
            xc,
            Pc,
            birth_z,
            birth_R,
            birth_vr,
            birth_los,
            feats,
        )
        _update_features(
            feats,
            i,
            t,
            xc[i],
            Pc[i],
            mu[i, 0],
            np.nan,
            vr[j],
            hv,
            rng_m[j],
            snr_lin[j],
            rcs_lin[j],
            thr_lin,
            birth_z,
            prm,
        )
        track_plot_out[i] = j
        plot_slot_out[j] = i
        stats[ST_NEW] += 1

    # --- confirmation and deletion --------------------------------------------------------
    m_need = int(prm[P_CONFIRM_M])
    n_win = int(prm[P_CONFIRM_N])
    n_del = 0
    for a in range(n_act):
        i = act[a]
        if status[i] == TENTATIVE:
            hits = _popcount(hist[i], n_win)
            if hits >= m_need and exist[i] >= prm[P_P_CONFIRM]:
                status[i] = CONFIRMED
                tid[i] = next_id[0]
                next_id[0] += 1
                stats[ST_CONFIRMED] += 1
            elif (
                exist[i] < prm[P_P_DELETE_TENT]
                or n_scans[i] >= prm[P_TENT_MAX_SCANS]
                or _misses_in_row(hist[i], n_scans[i]) >= prm[P_TENT_MAX_MISSES]
                or t - t_last_hit[i] > prm[P_MAX_COAST_TENT]
            ):
                status[i] = FREE
                stats[ST_DELETED] += 1
        else:
            spread = max(Pc[i, 0, 0], max(Pc[i, 1, 1], Pc[i, 2, 2]))
            if (
                exist[i] < prm[P_P_DELETE]
                or spread > prm[P_MAX_POS_SIGMA] * prm[P_MAX_POS_SIGMA]
                or t - t_last_hit[i] > prm[P_MAX_COAST]
            ):
                status[i] = FREE
                if n_del < deleted_out.shape[0]:
                    deleted_out[n_del] = tid[i]
                    n_del += 1
                stats[ST_DELETED] += 1
    while hw > 0 and status[hw - 1] == FREE:
        hw -= 1
        track_plot_out[hw] = -1
    high_water[0] = hw
    nc = 0
    for i in range(hw):
        if status[i] == CONFIRMED:
            conf_slots[nc] = i
            nc += 1
    n_conf[0] = nc
    for k in range(stats.shape[0]):
        if k == ST_MAX_CLUSTER:
            if stats[k] > totals[k]:
                totals[k] = stats[k]
        else:
            totals[k] += stats[k]
    return n_del


# ======================================================================================
# the tracker's entry point


# Track arrays as blocks of two buffers (``tracker.TrackArrays`` builds the same views):
# floats per slot, in this order and width (M models, N_FEAT features) ...
TRACK_FLOATS = ("exist", "t_state", "t_last_hit", "t_birth", "birth_vr", "xs", "Ps", "mu")
TRACK_FLOATS += ("xc", "Pc", "birth_z", "birth_R", "birth_los", "feats")
# ... and int64 per slot, then the single counters.
TRACK_INTS = ("tid", "hist", "n_scans", "n_hits", "track_plot", "deleted", "conf_slots")


def track_float_widths(M: int) -> tuple[tuple[int, ...], ...]:
    """Row shape of each ``TRACK_FLOATS`` block."""
    return (
        (),
        (),
        (),
        (),
        (),
        (M, 6),
        (M, 6, 6),
        (M,),
        (6,),
        (6, 6),
        (3,),
        (3, 3),
        (3,),
        (N_FEAT,),
    )


def track_buffer_sizes(N: int, M: int) -> tuple[int, int]:
    return N * (5 + 6 * M + 36 * M + M + 6 + 36 + 3 + 9 + 3 + N_FEAT), N * 7 + 3 + N_STATS


@njit(cache=True, error_model="numpy", inline="always")
def _track_views(tf, ti, N, M):
    """The track arrays as views of ``tf`` and ``ti`` (layout ``TRACK_FLOATS``, ``TRACK_INTS``)."""
    o = 0
    exist, o = _take(tf, o, N)
    t_state, o = _take(tf, o, N)
    t_last_hit, o = _take(tf, o, N)
    t_birth, o = _take(tf, o, N)
    birth_vr, o = _take(tf, o, N)
    xs, o = _take(tf, o, N * M * 6)
    Ps, o = _take(tf, o, N * M * 36)
    mu, o = _take(tf, o, N * M)
    xc, o = _take(tf, o, N * 6)
    Pc, o = _take(tf, o, N * 36)
    birth_z, o = _take(tf, o, N * 3)
    birth_R, o = _take(tf, o, N * 9)
    birth_los, o = _take(tf, o, N * 3)
    feats, o = _take(tf, o, N * N_FEAT)
    o = 0
    tid, o = _take(ti, o, N)
    hist, o = _take(ti, o, N)
    n_scans, o = _take(ti, o, N)
    n_hits, o = _take(ti, o, N)
    track_plot, o = _take(ti, o, N)
    deleted, o = _take(ti, o, N)
    conf_slots, o = _take(ti, o, N)
    next_id, o = _take(ti, o, 1)
    high_water, o = _take(ti, o, 1)
    n_conf, o = _take(ti, o, 1)
    stats, o = _take(ti, o, N_STATS)
    return (
        exist,
        t_state,
        t_last_hit,
        t_birth,
        birth_vr,
        xs.reshape((N, M, 6)),
        Ps.reshape((N, M, 6, 6)),
        mu.reshape((N, M)),
        xc.reshape((N, 6)),
        Pc.reshape((N, 6, 6)),
        birth_z.reshape((N, 3)),
        birth_R.reshape((N, 3, 3)),
        birth_los.reshape((N, 3)),
        feats.reshape((N, N_FEAT)),
        tid,
        hist,
        n_scans,
        n_hits,
        track_plot,
        deleted,
        conf_slots,
        next_id,
        high_water,
        n_conf,
        stats,
    )


@njit(cache=True, error_model="numpy")
def _process(t, plots, geo, prm, mdl, status, tf, ti, totals, wf, wi, hc, pc, out_f, out_i):
    """One radar scan from its raw plots: conversion (``measurement``) then ``_scan``.

    One call per scan with few arguments (each array argument costs the
    dispatcher time): the track arrays come as two buffers (``_track_views``),
    the scratch as two more (``_work_views``, at least ``hc`` slots and ``pc``
    plots), and the scan's output as ``out_f`` (converted plots, layout
    ``measurement._plot_views``) and ``out_i`` (plot_slot, has_vr, then this
    scan's ``ST_*`` counters). Returns the number of confirmed tracks deleted.
    """
    N = status.shape[0]
    M = mdl.shape[0]
    n = plots.shape[0]
    z, R, vr, vr_var, has_vr, los, dens, rng_m, snr, rcs = _plot_views(out_f, out_i, n)
    _convert_into(
        plots,
        geo[G_POS : G_POS + 3],
        geo[G_ROT : G_ROT + 9].reshape((3, 3)),
        geo[G_ACC:G_SP],
        out_f,
        out_i,
    )
    (
        exist,
        t_state,
        t_last_hit,
        t_birth,
        birth_vr,
        xs,
        Ps,
        mu,
        xc,
        Pc,
        birth_z,
        birth_R,
        birth_los,
        feats,
        tid,
        hist,
        n_scans,
        n_hits,
        track_plot,
        deleted,
        conf_slots,
        next_id,
        high_water,
        n_conf,
        stats,
    ) = _track_views(tf, ti, N, M)
    plot_slot = out_i[:n]
    n_del = _scan(
        t,
        geo[G_SP:N_GEO],
        z,
        R,
        vr,
        vr_var,
        has_vr,
        los,
        dens,
        rng_m,
        snr,
        rcs,
        prm,
        mdl,
        status,
        tid,
        hist,
        n_scans,
        n_hits,
        exist,
        t_state,
        t_last_hit,
        t_birth,
        xs,
        Ps,
        mu,
        xc,
        Pc,
        birth_z,
        birth_R,
        birth_vr,
        birth_los,
        feats,
        track_plot,
        plot_slot,
        next_id,
        deleted,
        stats,
        totals,
        high_water,
        conf_slots,
        n_conf,
        wf,
        wi,
        hc,
        pc,
    )
    for k in range(N_STATS):
        out_i[2 * n + k] = stats[k]
    return n_del
