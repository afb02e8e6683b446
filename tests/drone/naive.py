"""Slow, obvious twins of the drone kernels (STUMPY's ``tests/naive.py`` habit).

Each function here computes what a Numba kernel computes, the plain way:
NumPy matrices and ``np.linalg`` instead of hand-written loops, finite
differences instead of the analytic Doppler Jacobian, SciPy's assignment
solver over the whole problem instead of clusters, every track-plot pair
gated instead of a pre-gate box. ``test_kernels.py`` runs both on random and
edge-case input and compares.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment

from fusion.drone import kernels as K
from fusion.drone import measurement as MS

# --------------------------------------------------------------------------- measurement


def sigma_at(snr_db, hi, lo, snr_high, threshold):
    if not np.isfinite(snr_db) or snr_high <= threshold:
        return lo
    q = min(1.0, max(0.0, (snr_high - snr_db) / (snr_high - threshold)))
    return hi + (lo - hi) * q


def convert_plot(plot, sensor_pos, rot, acc):
    """One plot: (z, R, vr, vr_var, has_vr, los, density, range, snr_lin, rcs_lin)."""
    r = max(plot[0], 1.0)
    a = math.radians(plot[1])
    snr = plot[5]
    hi_lo = (acc[MS.A_SNR_HIGH], acc[MS.A_THRESHOLD])
    sr = sigma_at(snr, acc[MS.A_RANGE_HI], acc[MS.A_RANGE_LO], *hi_lo)
    sa = sigma_at(snr, acc[MS.A_AZ_HI], acc[MS.A_AZ_LO], *hi_lo)
    if np.isfinite(plot[2]):
        e = math.radians(plot[2])
        se = sigma_at(snr, acc[MS.A_EL_HI], acc[MS.A_EL_LO], *hi_lo)
        applied_e = math.exp(-(se**2) / 2)
    else:
        e = math.asin(np.clip((acc[MS.A_ASSUMED_Z] - sensor_pos[2]) / r, -1, 1))
        se = min(0.3, acc[MS.A_ASSUMED_Z_SIGMA] / r)
        applied_e = 1.0  # an assumed angle is not debiased
    lam_e = math.exp(-(se**2) / 2)
    lam_a = math.exp(-(sa**2) / 2)
    # Measured-value conversion and the average true covariance (Mo et al. 1998, in 3-D):
    # E[(x_u - x)(x_u - x)' | measured] with x_u the debiased conversion.
    u = np.array([math.cos(e) * math.sin(a), math.cos(e) * math.cos(a), math.sin(e)])
    xm = r * u
    zu = xm / np.array([lam_a * applied_e, lam_a * applied_e, applied_e])
    mean_true = xm * np.array([lam_a * lam_e, lam_a * lam_e, lam_e])  # E[x_true | measured]
    r2 = r * r + sr * sr
    ea2 = math.exp(-2 * sa**2)
    ee2 = math.exp(-2 * se**2)
    e_cos2e = 0.5 * (1 + math.cos(2 * e) * ee2)
    e_sin2e = 0.5 * (1 - math.cos(2 * e) * ee2)
    e_sce = 0.5 * math.sin(2 * e) * ee2
    e_sin2a = 0.5 * (1 - math.cos(2 * a) * ea2)
    e_cos2a = 0.5 * (1 + math.cos(2 * a) * ea2)
    e_sca = 0.5 * math.sin(2 * a) * ea2
    second = r2 * np.array(
        [
            [e_cos2e * e_sin2a, e_cos2e * e_sca, e_sce * lam_a * math.sin(a)],
            [e_cos2e * e_sca, e_cos2e * e_cos2a, e_sce * lam_a * math.cos(a)],
            [e_sce * lam_a * math.sin(a), e_sce * lam_a * math.cos(a), e_sin2e],
        ]
    )
    cov_true = second - np.outer(mean_true, mean_true)
    bias = zu - mean_true
    Rl = cov_true + np.outer(bias, bias)
    z = sensor_pos + rot @ zu
    R = rot @ Rl @ rot.T
    R = 0.5 * (R + R.T)
    los = rot @ u
    has_vr = bool(np.isfinite(plot[3]))
    vr = plot[3] if has_vr else np.nan
    vr_var = acc[MS.A_VR] ** 2 if has_vr else np.nan
    rr = max(r, acc[MS.A_MIN_RANGE])
    dens = acc[MS.A_CLUTTER_POLAR] / (rr * rr * max(math.cos(e), 0.05))
    if has_vr:
        dens /= acc[MS.A_VR_SPAN]
    saturated = np.isfinite(snr) and acc[MS.A_SNR_MAX] > 0 and snr >= acc[MS.A_SNR_MAX] - 0.05
    snr_lin = 10 ** (snr / 10) if np.isfinite(snr) and not saturated else np.nan
    rcs_lin = 10 ** (plot[4] / 10) if np.isfinite(plot[4]) and not saturated else np.nan
    return z, R, vr, vr_var, has_vr, los, dens, r, snr_lin, rcs_lin


# --------------------------------------------------------------------------- motion models


def transition(dt, q_h, q_v, omega):
    F = np.eye(6)
    if abs(omega * dt) > 1e-9:
        w = omega
        s, c = math.sin(w * dt), math.cos(w * dt)
        # Horizontal block in (x, y, vx, vy) order, then scattered into the state.
        A = np.array(
            [[1, 0, s / w, -(1 - c) / w], [0, 1, (1 - c) / w, s / w], [0, 0, c, -s], [0, 0, s, c]]
        )
        idx = [0, 1, 3, 4]
        F[np.ix_(idx, idx)] = A
    else:
        F[0, 3] = F[1, 4] = dt
    F[2, 5] = dt
    Q = np.zeros((6, 6))
    block = np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
    for axis, q in ((0, q_h), (1, q_h), (2, q_v)):
        Q[np.ix_([axis, axis + 3], [axis, axis + 3])] = q * block
    return F, Q


def imm_predict(x, P, mu, dt, mdl):
    """Textbook IMM mixing and prediction; x (M, 6), P (M, 6, 6), mu (M,)."""
    M = mdl.shape[0]
    Pi = np.empty((M, M))
    for a in range(M):
        stay = math.exp(-dt / max(mdl[a, K.M_TAU], 1e-6)) if M > 1 else 1.0
        for b in range(M):
            Pi[a, b] = stay if a == b else (1 - stay) / (M - 1)
    cbar = Pi.T @ mu
    w = (Pi * mu[:, None]) / np.where(cbar > 0, cbar, 1.0)[None, :]
    w = np.where(cbar[None, :] > 0, w, 1.0 / M)
    cbar = cbar / cbar.sum() if cbar.sum() > 0 else np.full(M, 1.0 / M)
    xo, Po = np.empty_like(x), np.empty_like(P)
    for b in range(M):
        x0 = w[:, b] @ x
        P0 = sum(w[a, b] * (P[a] + np.outer(x[a] - x0, x[a] - x0)) for a in range(M))
        F, Q = transition(dt, mdl[b, K.M_QH], mdl[b, K.M_QV], mdl[b, K.M_OMEGA])
        xo[b] = F @ x0
        Po[b] = F @ P0 @ F.T + Q
        Po[b] = 0.5 * (Po[b] + Po[b].T)
    return xo, Po, cbar


def imm_combine(x, P, mu):
    xc = mu @ x
    Pc = sum(mu[m] * (P[m] + np.outer(x[m] - xc, x[m] - xc)) for m in range(len(mu)))
    return xc, Pc


def doppler(x, sensor):
    d = x[:3] - sensor
    rho = max(np.linalg.norm(d), 1.0)
    return (d / rho) @ x[3:6]


def measurement_jacobian(x, sensor, has_vr, step=1e-4):
    """H by finite differences of h(x) = [p, (p - s)·v/|p - s|]: independent of the analytic one."""
    dim = 4 if has_vr else 3
    H = np.zeros((dim, 6))
    H[:3, :3] = np.eye(3)
    if has_vr:
        for c in range(6):
            e = np.zeros(6)
            e[c] = step * max(1.0, abs(x[c]))
            H[3, c] = (doppler(x + e, sensor) - doppler(x - e, sensor)) / (2 * e[c])
    return H


def innovation(x, P, z, R, vr, vr_var, has_vr, sensor, vr_amb=0.0, H=None):
    if H is None:
        H = measurement_jacobian(x, sensor, has_vr)
    dim = H.shape[0]
    Rm = np.zeros((dim, dim))
    Rm[:3, :3] = R
    nu = np.empty(dim)
    nu[:3] = z - x[:3]
    if has_vr:
        Rm[3, 3] = vr_var
        d = vr - doppler(x, sensor)
        if vr_amb > 0:
            d = d - 2 * vr_amb * math.floor((d + vr_amb) / (2 * vr_amb))
        nu[3] = d
    S = H @ P @ H.T + Rm
    return nu, S, H


def kalman_update(x, P, nu, S, H):
    Sinv = np.linalg.inv(S)
    Kg = P @ H.T @ Sinv
    x2 = x + Kg @ nu
    P2 = P - Kg @ S @ Kg.T
    P2 = 0.5 * (P2 + P2.T)
    P2[np.diag_indices(6)] = np.maximum(np.diag(P2), 1e-9)
    d2 = float(nu @ Sinv @ nu)
    return x2, P2, d2, float(np.linalg.slogdet(S)[1])


def imm_update(x, P, mu, z, R, vr, vr_var, has_vr, sensor):
    M = len(mu)
    xo, Po = x.copy(), P.copy()
    lik = np.empty(M)
    nis0 = np.nan
    for m in range(M):
        nu, S, H = innovation(x[m], P[m], z, R, vr, vr_var, has_vr, sensor)
        if m == 0 and has_vr:
            nis0 = nu[3] ** 2 / S[3, 3]
        xo[m], Po[m], d2, logdet = kalman_update(x[m], P[m], nu, S, H)
        lik[m] = -0.5 * d2 - 0.5 * logdet - 0.5 * len(nu) * math.log(2 * math.pi)
    w = mu * np.exp(lik - lik.max())
    return xo, Po, w / w.sum(), nis0


def pair_score(x, P, mu, z, R, vr, vr_var, has_vr, sensor, jacobians=None):
    """(min d², log sum_m mu_m N(nu_m; S_m), dim) over the models.

    ``jacobians``: optional per-model H already computed for this track (it does
    not depend on the plot, only on whether the plot has Doppler).
    """
    d2s, logs = [], []
    dim = 3
    for m in range(len(mu)):
        H = None if jacobians is None else jacobians[m][: 4 if has_vr else 3]
        nu, S, _ = innovation(x[m], P[m], z, R, vr, vr_var, has_vr, sensor, H=H)
        dim = len(nu)
        if mu[m] <= 0:
            continue
        d2 = float(nu @ np.linalg.solve(S, nu))
        d2s.append(d2)
        logs.append(
            math.log(mu[m])
            - 0.5 * d2
            - 0.5 * np.linalg.slogdet(S)[1]
            - 0.5 * dim * math.log(2 * math.pi)
        )
    if not logs:
        return np.inf, -np.inf, dim
    top = max(logs)
    return min(d2s), top + math.log(sum(math.exp(v - top) for v in logs)), dim


def in_gate_box(x, P, xc, z, R, gate):
    """The pre-gate's box test, written out: every axis within reach of some model's gate."""
    off = np.abs(x[:, :3] - xc[None, :3]).max(axis=0)
    pmax = np.array([P[:, k, k].max() for k in range(3)])
    return bool(np.all(np.abs(z - xc[:3]) <= off + np.sqrt(gate * (pmax + np.diag(R)))))


# --------------------------------------------------------------------------- assignment


def lsap(cost):
    """Minimum-cost assignment of every row (scipy); returns col4row or None if infeasible."""
    c = np.where(cost >= K.BIG, np.inf, cost)
    try:
        rows, cols = linear_sum_assignment(c)
    except ValueError:
        return None
    out = np.full(cost.shape[0], -1)
    out[rows] = cols
    return out


def clusters(n_nodes, pairs):
    """Connected components by breadth-first search; component = smallest node id in it."""
    adj = [[] for _ in range(n_nodes)]
    for a, b in pairs:
        adj[a].append(b)
        adj[b].append(a)
    comp = [-1] * n_nodes
    for s in range(n_nodes):
        if comp[s] != -1:
            continue
        stack, members = [s], []
        comp[s] = s
        while stack:
            v = stack.pop()
            members.append(v)
            for w in adj[v]:
                if comp[w] == -1:
                    comp[w] = s
                    stack.append(w)
        root = min(members)
        for v in members:
            comp[v] = root
    return [comp[a] for a, _ in pairs]


def assign(n_tracks, n_plots, pairs, miss_cost):
    """GNN over the whole problem at once: one dense matrix with a private miss column per track."""
    cost = np.full((n_tracks, n_plots + n_tracks), np.inf)
    for a, j, c in pairs:
        cost[a, j] = c
    for a in range(n_tracks):
        cost[a, n_plots + a] = miss_cost[a]
    track_plot = np.full(n_tracks, -1)
    plot_track = np.full(n_plots, -1)
    if n_tracks == 0:
        return track_plot, plot_track
    rows, cols = linear_sum_assignment(cost)
    for r, c in zip(rows, cols, strict=True):
        if c < n_plots:
            track_plot[r] = c
            plot_track[c] = r
    return track_plot, plot_track


# --------------------------------------------------------------------------- track logic


def existence_update(p, pd, pg, ratio, detected):
    delta = pd * pg - pd * ratio if detected else pd * pg
    den = 1 - delta * p
    return p if den <= 0 else p * (1 - delta) / den


def misses_in_row(h, n):
    bits = format(h, "b")[::-1] + "0" * 64
    return min(n, len(bits) - len(bits.lstrip("0")), 62)


def detection_probability(feats_row, rng, sp):
    thr = sp[K.S_THR_LIN]
    if feats_row[K.F_N_SNR] >= 1 and np.isfinite(thr) and rng > 0:
        snr = feats_row[K.F_SNR1] / rng**4
        return math.exp(-thr / snr) if snr > 0 else 0.0
    return sp[K.S_PD_DEFAULT]


def in_coverage(x, sp):
    d = x[:3] - sp[K.S_POS : K.S_POS + 3]
    r = float(np.linalg.norm(d))
    if r > sp[K.S_MAX_RANGE] or r < sp[K.S_MIN_RANGE]:
        return False, r
    el = math.atan2(d[2], math.hypot(d[0], d[1]))
    return bool(sp[K.S_EL_MIN] <= el <= sp[K.S_EL_MAX]), r


def update_features(
    f, t, x, P, mu0, nis0, vr, has_vr, rng, snr_lin, rcs_lin, thr_lin, birth_z, prm
):
    """Returns a new feature row (see ``kernels._update_features``)."""
    f = f.copy()
    n = f[K.F_N]
    dt = t - f[K.F_T_LAST] if n > 0 else 0.0
    alpha = max(1 / (n + 1), 1 - math.exp(-max(dt, 0) / prm[K.P_FEAT_TAU]))

    def ewma(col, value, a):
        f[col] = (1 - a) * f[col] + a * value

    f[K.F_N] = n + 1
    f[K.F_T_LAST] = t
    if np.isfinite(rcs_lin):
        corr = (
            max(1 - thr_lin / snr_lin, 0.0)
            if (np.isfinite(snr_lin) and np.isfinite(thr_lin) and snr_lin > 0)
            else 1.0
        )
        a = max(1 / (f[K.F_N_RCS] + 1), alpha)
        ewma(K.F_RCS, rcs_lin * corr, a)
        ewma(K.F_RCS2, (rcs_lin * corr) ** 2, a)
        f[K.F_N_RCS] += 1
    if np.isfinite(snr_lin) and np.isfinite(thr_lin):
        a = max(1 / (f[K.F_N_SNR] + 1), alpha)
        ewma(K.F_SNR1, max(snr_lin - thr_lin, 0.0) * rng**4, a)
        f[K.F_N_SNR] += 1
    speed = float(np.linalg.norm(x[3:6]))
    ewma(K.F_SPEED, speed, alpha)
    ewma(K.F_SPEED2, speed**2, alpha)
    ewma(K.F_MANOEUVRE, 1 - mu0, alpha)
    if np.isfinite(nis0):
        a = max(1 / (f[K.F_N_VR] + 1), alpha)
        ewma(K.F_NIS_VR, min(nis0, 25.0), a)
        ewma(K.F_NIS_VR_HI, float(nis0 > 9), a)
        ewma(K.F_VR_ABS, abs(vr), a)
        f[K.F_N_VR] += 1
        pos = int(f[K.F_NIS_RING_POS])
        f[K.F_NIS_RING + pos % K.NIS_RING] = min(nis0, 100.0)
        f[K.F_NIS_RING_POS] = pos + 1
    f[K.F_MAX_DISP] = max(f[K.F_MAX_DISP], math.hypot(x[0] - birth_z[0], x[1] - birth_z[1]))
    hs = math.hypot(x[3], x[4])
    hs_sigma = math.sqrt(max(P[3, 3] + P[4, 4], 0))
    if (
        hs < prm[K.P_HOVER_SPEED]
        and hs_sigma < prm[K.P_HOVER_SPEED]
        and f[K.F_MAX_DISP] >= prm[K.P_MOVED_M]
    ):
        f[K.F_HOVER_S] += dt
    ewma(K.F_ALT, x[2], alpha)
    ewma(K.F_CLIMB, abs(x[5]), alpha)
    return f


def two_point_fit(
    t, z, R, vr, vr_var, has_vr, los, t_first, z_first, R_first, vr_first, los_first, prm
):
    dt = t - t_first
    if dt <= 0 or dt > prm[K.P_TWO_POINT_DT]:
        return np.inf, np.inf
    v = (z - z_first) / dt
    speed = float(np.linalg.norm(v))
    if speed > prm[K.P_MAX_SPEED]:
        return np.inf, speed
    worst = 0.0
    checks = []
    if has_vr:
        checks.append((los, vr, vr_var))
    if np.isfinite(vr_first):
        checks.append((los_first, vr_first, vr_var if has_vr else 0.09))
    for u, vm, var in checks:
        pv = u @ (R + R_first) @ u / dt**2 + var + 1.0
        worst = max(worst, abs(u @ v - vm) / math.sqrt(pv))
    return (np.inf if worst > 4 else worst), speed


# --------------------------------------------------------------------------- one scan


def scan(t, sp, conv, prm, mdl, st, next_id):
    """The whole of ``kernels._scan`` done plainly, on a ``TrackArrays``-like object ``st`` (in place).

    Returns the list of deleted confirmed ids and the new next_id.
    """
    N = st.status.size
    P_ = conv.n
    sensor = sp[K.S_POS : K.S_POS + 3]
    pg = prm[K.P_GATE_PROB]
    st.track_plot[:] = -1
    act = [i for i in range(N) if st.status[i] != K.FREE]
    covered, pd = [], []
    for i in act:
        dt = t - st.t_state[i]
        if dt > 0:
            st.xs[i], st.Ps[i], st.mu[i] = imm_predict(st.xs[i], st.Ps[i], st.mu[i], dt, mdl)
            st.xc[i], st.Pc[i] = imm_combine(st.xs[i], st.Ps[i], st.mu[i])
            st.exist[i] *= math.exp(-dt / prm[K.P_SURVIVAL_TAU])
            st.t_state[i] = t
        cov, r = in_coverage(st.xc[i], sp)
        covered.append(cov)
        pd.append(
            min(prm[K.P_PD_MAX], max(prm[K.P_PD_MIN], detection_probability(st.feats[i], r, sp)))
        )
    pairs, ratios = [], {}
    miss_cost = []
    near = np.full(P_, np.inf)
    lost_by_pregate = 0
    gate_max = max(prm[K.P_GATE3], prm[K.P_GATE4])
    for a, i in enumerate(act):
        pe = st.exist[i] * pd[a]
        miss_cost.append(-math.log(max(1 - pe * pg, 1e-12)))
        jac = [measurement_jacobian(st.xs[i, m], sensor, True) for m in range(st.xs.shape[1])]
        for j in range(P_):
            d2, log_g, dim = pair_score(
                st.xs[i],
                st.Ps[i],
                st.mu[i],
                conv.z[j],
                conv.R[j],
                conv.vr[j],
                conv.vr_var[j],
                bool(conv.has_vr[j]),
                sensor,
                jac,
            )
            if not np.isfinite(d2):
                continue
            in_box = in_gate_box(st.xs[i], st.Ps[i], st.xc[i], conv.z[j], conv.R[j], gate_max)
            if st.status[i] == K.CONFIRMED and in_box:
                near[j] = min(near[j], d2)
            if d2 > (prm[K.P_GATE4] if dim == 4 else prm[K.P_GATE3]):
                continue
            if not in_box:
                lost_by_pregate += 1
                continue
            log_ratio = log_g - math.log(conv.clutter_density[j])
            pairs.append((a, j, -(math.log(max(pe, 1e-12)) + log_ratio)))
            ratios[(a, j)] = log_ratio
    track_plot, plot_track = assign(len(act), P_, pairs, miss_cost)
    thr = sp[K.S_THR_LIN]
    for a, i in enumerate(act):
        j = track_plot[a]
        if j >= 0:
            hv = bool(conv.has_vr[j])
            st.xs[i], st.Ps[i], st.mu[i], nis0 = imm_update(
                st.xs[i],
                st.Ps[i],
                st.mu[i],
                conv.z[j],
                conv.R[j],
                conv.vr[j],
                conv.vr_var[j],
                hv,
                sensor,
            )
            st.xc[i], st.Pc[i] = imm_combine(st.xs[i], st.Ps[i], st.mu[i])
            ratio = math.exp(min(ratios[(a, j)], 700.0))
            st.exist[i] = existence_update(st.exist[i], pd[a], pg, ratio, True)
            st.hist[i] = (int(st.hist[i]) << 1) | 1
            st.n_scans[i] += 1
            st.n_hits[i] += 1
            st.t_last_hit[i] = t
            st.feats[i] = update_features(
                st.feats[i],
                t,
                st.xc[i],
                st.Pc[i],
                st.mu[i, 0],
                nis0,
                conv.vr[j],
                hv,
                conv.range_m[j],
                conv.snr_lin[j],
                conv.rcs_lin[j],
                thr,
                st.birth_z[i],
                prm,
            )
            st.track_plot[i] = j
        elif covered[a]:
            st.exist[i] = existence_update(st.exist[i], pd[a], pg, 0.0, False)
            st.hist[i] = int(st.hist[i]) << 1
            st.n_scans[i] += 1
        st.exist[i] = min(st.exist[i], prm[K.P_P_MAX])
    taken = set()
    for j in range(P_):
        if plot_track[j] >= 0:
            continue
        hv = bool(conv.has_vr[j])
        options = []
        for a, i in enumerate(act):
            if (
                st.status[i] != K.TENTATIVE
                or st.n_hits[i] != 1
                or track_plot[a] >= 0
                or a in taken
                or st.t_birth[i] >= t
            ):
                continue
            fit, speed = two_point_fit(
                t,
                conv.z[j],
                conv.R[j],
                conv.vr[j],
                conv.vr_var[j],
                hv,
                conv.los[j],
                st.t_last_hit[i],
                st.birth_z[i],
                st.birth_R[i],
                st.birth_vr[i],
                st.birth_los[i],
                prm,
            )
            if np.isfinite(fit):
                options.append((fit, speed, a))
        best = min(options)[2] if options else -1
        if best >= 0:
            i = act[best]
            taken.add(best)
            dt = t - st.t_last_hit[i]
            x = np.concatenate([conv.z[j], (conv.z[j] - st.birth_z[i]) / dt])
            Pm = np.zeros((6, 6))
            Pm[:3, :3] = conv.R[j]
            Pm[:3, 3:] = Pm[3:, :3] = conv.R[j] / dt
            Pm[3:, 3:] = (conv.R[j] + st.birth_R[i]) / dt**2 + 4.0 * np.eye(3)
            st.xc[i], st.Pc[i] = x, Pm
            st.xs[i] = np.tile(x, (mdl.shape[0], 1))
            st.Ps[i] = np.tile(Pm, (mdl.shape[0], 1, 1))
            st.mu[i] = mdl[:, K.M_MU0]
            st.hist[i] = (int(st.hist[i]) << 1) | 1
            st.n_scans[i] += 1
            st.n_hits[i] += 1
            st.exist[i] = max(st.exist[i], prm[K.P_P_INIT2])
            st.t_state[i] = t
            st.t_last_hit[i] = t
            st.feats[i] = update_features(
                st.feats[i],
                t,
                st.xc[i],
                st.Pc[i],
                st.mu[i, 0],
                np.nan,
                conv.vr[j],
                hv,
                conv.range_m[j],
                conv.snr_lin[j],
                conv.rcs_lin[j],
                thr,
                st.birth_z[i],
                prm,
            )
            st.track_plot[i] = j
            continue
        if near[j] < prm[K.P_SPAWN_SUPPRESS]:
            continue
        free = np.flatnonzero(st.status == K.FREE)
        if free.size == 0:
            continue
        i = int(free[0])
        x = np.zeros(6)
        Pm = np.zeros((6, 6))
        x[:3] = conv.z[j]
        Pm[:3, :3] = conv.R[j]
        sv = prm[K.P_INIT_VEL_SIGMA]
        u = conv.los[j]
        if hv:
            x[3:] = conv.vr[j] * u
            Pm[3:, 3:] = sv**2 * (np.eye(3) - np.outer(u, u)) + (conv.vr_var[j] + 0.25) * np.outer(
                u, u
            )
        else:
            Pm[3:, 3:] = sv**2 * np.eye(3)
        st.xc[i], st.Pc[i] = x, Pm
        st.xs[i] = np.tile(x, (mdl.shape[0], 1))
        st.Ps[i] = np.tile(Pm, (mdl.shape[0], 1, 1))
        st.mu[i] = mdl[:, K.M_MU0]
        st.status[i] = K.TENTATIVE
        st.tid[i] = 0
        st.hist[i] = 1
        st.n_scans[i] = 1
        st.n_hits[i] = 1
        st.exist[i] = prm[K.P_P_INIT]
        st.t_state[i] = st.t_last_hit[i] = st.t_birth[i] = t
        st.birth_z[i] = conv.z[j]
        st.birth_R[i] = conv.R[j]
        st.birth_vr[i] = conv.vr[j] if hv else np.nan
        st.birth_los[i] = u
        st.feats[i] = 0.0
        st.feats[i, K.F_NIS_RING : K.F_NIS_RING + K.NIS_RING] = -1.0
        st.feats[i] = update_features(
            st.feats[i],
            t,
            x,
            Pm,
            st.mu[i, 0],
            np.nan,
            conv.vr[j],
            hv,
            conv.range_m[j],
            conv.snr_lin[j],
            conv.rcs_lin[j],
            thr,
            st.birth_z[i],
            prm,
        )
        st.track_plot[i] = j
    deleted = []
    m_need, n_win = int(prm[K.P_CONFIRM_M]), int(prm[K.P_CONFIRM_N])
    for i in act:
        if st.status[i] == K.TENTATIVE:
            hits = bin(int(st.hist[i]) & ((1 << n_win) - 1)).count("1")
            if hits >= m_need and st.exist[i] >= prm[K.P_P_CONFIRM]:
                st.status[i] = K.CONFIRMED
                st.tid[i] = next_id
                next_id += 1
            elif (
                st.exist[i] < prm[K.P_P_DELETE_TENT]
                or st.n_scans[i] >= prm[K.P_TENT_MAX_SCANS]
                or misses_in_row(int(st.hist[i]), int(st.n_scans[i])) >= prm[K.P_TENT_MAX_MISSES]
                or t - st.t_last_hit[i] > prm[K.P_MAX_COAST_TENT]
            ):
                st.status[i] = K.FREE
        else:
            spread = max(st.Pc[i, 0, 0], st.Pc[i, 1, 1], st.Pc[i, 2, 2])
            if (
                st.exist[i] < prm[K.P_P_DELETE]
                or spread > prm[K.P_MAX_POS_SIGMA] ** 2
                or t - st.t_last_hit[i] > prm[K.P_MAX_COAST]
            ):
                st.status[i] = K.FREE
                deleted.append(int(st.tid[i]))
    used = np.flatnonzero(st.status != K.FREE)
    st.high_water[0] = used[-1] + 1 if used.size else 0
    st.track_plot[st.high_water[0] :] = -1
    return deleted, next_id, lost_by_pregate


def turn_update(values, slots, tids, t, vx, vy, v_sigma):
    """Plain twin of ``kinematics._update``: accumulated heading change per slot."""
    from fusion.drone import kinematics as KM

    for k, i in enumerate(slots):
        if values[i, KM.T_TID] != tids[k]:
            values[i] = (tids[k], t, math.nan, 0.0, 0.0, 0.0)
        dt = t - values[i, KM.T_T]
        values[i, KM.T_T] = t
        if dt <= 0.0:
            continue
        if dt > KM.MAX_STEP_S:
            values[i, KM.T_HEADING] = math.nan
        decay = math.exp(-dt / KM.TURN_TAU_S)
        values[i, KM.T_TURN] *= decay
        speed = math.hypot(vx[k], vy[k])
        if speed < KM.MIN_SPEED_MPS or speed < KM.SPEED_SNR * v_sigma[k]:
            values[i, KM.T_HEADING] = math.nan
            continue
        h = math.atan2(vx[k], vy[k])
        prev = values[i, KM.T_HEADING]
        values[i, KM.T_HEADING] = h
        if math.isnan(prev):
            continue
        d = math.remainder(h - prev, 2.0 * math.pi)
        values[i, KM.T_TURN] += d
        values[i, KM.T_RATE] += (1.0 - decay) * (d / dt - values[i, KM.T_RATE])
        if abs(values[i, KM.T_TURN]) >= KM.FULL_CIRCLE:
            values[i, KM.T_CIRCLED_S] += dt
