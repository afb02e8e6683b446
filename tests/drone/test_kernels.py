"""Every drone kernel against its slow twin in ``naive.py``, on random and edge-case input."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from drivers.json_feeds import RadarPlotsDecoder
from drivers.simulated.base import SimContext
from drivers.simulated.objects import Leg, MovingObject, fly_legs, sensor_enu
from drivers.simulated.radar import RadarParams, simulate_radar
from drivers.simulated.site import SIM_T0_NS, sim_site
from fusion.drone import kernels as K
from fusion.drone import measurement as MS
from fusion.drone.measurement import RadarAccuracy, RadarGeometry, convert_plots
from fusion.drone.settings import TrackerSettings
from fusion.drone.tracker import MultiTargetTracker, model_table, parameter_vector, scan_parameters
from fusion.geo import EnuFrame
from fusion.records import RadarScan
from tests.drone import naive as NV

RNG_SEEDS = range(5)


def spd(rng, n, scale=1.0):
    A = rng.normal(size=(n, n))
    return A @ A.T * scale + np.eye(n) * 0.1 * scale


def random_state(rng, M):
    x = np.empty((M, 6))
    P = np.empty((M, 6, 6))
    base = np.concatenate(
        [rng.uniform(-3000, 3000, 2), rng.uniform(10, 300, 1), rng.normal(0, 10, 3)]
    )
    for m in range(M):
        x[m] = base + rng.normal(0, [20, 20, 10, 2, 2, 1])
        P[m] = spd(rng, 6, 50.0)
    mu = rng.dirichlet(np.ones(M))
    return x, P, mu


def mdl_table(M):
    s = TrackerSettings(turn_rate_dps=12.0 if M == 4 else 0.0)
    return model_table(s)


# --------------------------------------------------------------------------- measurement


def random_plots(rng, n):
    p = np.column_stack(
        [
            rng.uniform(0.5, 6000, n),
            rng.uniform(0, 360, n),
            rng.uniform(-5, 60, n),
            rng.uniform(-40, 40, n),
            rng.uniform(-30, 10, n),
            rng.uniform(10, 60, n),
        ]
    )
    # Absent optional fields and edge values.
    p[rng.random(n) < 0.2, 2] = np.nan
    p[rng.random(n) < 0.2, 3] = np.nan
    p[rng.random(n) < 0.2, 4] = np.nan
    p[rng.random(n) < 0.2, 5] = np.nan
    p[0, 2] = 90.0
    p[1, 0] = 0.0
    p[2, 5] = 60.0  # a saturated receiver
    return p


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_convert_plots_matches_naive(seed):
    rng = np.random.default_rng(seed)
    frame = EnuFrame(52.0, 4.0, 55.0)
    # A radar 5 km from the origin: its local frame is visibly rotated.
    radar = RadarGeometry.build(
        "r", frame, 52.03, 4.05, 80.0, RadarAccuracy(false_plots_per_scan=3.0)
    )
    plots = random_plots(rng, 40)
    conv = convert_plots(plots, radar)
    for k in range(len(plots)):
        z, R, vr, vr_var, has_vr, los, dens, rng_m, snr, rcs = NV.convert_plot(
            plots[k], radar.position_enu, radar.rotation, radar.acc
        )
        np.testing.assert_allclose(conv.z[k], z, rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(conv.R[k], R, rtol=1e-9, atol=1e-7)
        np.testing.assert_allclose(conv.los[k], los, atol=1e-12)
        assert conv.has_vr[k] == has_vr
        np.testing.assert_allclose([conv.vr[k], conv.vr_var[k]], [vr, vr_var], equal_nan=True)
        np.testing.assert_allclose(
            [conv.clutter_density[k], conv.range_m[k], conv.snr_lin[k], conv.rcs_lin[k]],
            [dens, rng_m, snr, rcs],
            rtol=1e-12,
            equal_nan=True,
        )
        assert np.all(np.linalg.eigvalsh(conv.R[k]) > 0)


def test_converted_measurements_are_unbiased_and_consistent():
    """Monte Carlo: the debiased conversion has no bias and R matches the true spread (NEES ~ 3)."""
    rng = np.random.default_rng(3)
    frame = EnuFrame(52.0, 4.0, 55.0)
    acc = RadarAccuracy(range_sigma_m=(5.0, 5.0), az_sigma_deg=(2.0, 2.0), el_sigma_deg=(6.0, 6.0))
    radar = RadarGeometry.build("r", frame, 52.0, 4.0, 55.0, acc)
    r, az, el = 4000.0, 33.0, 25.0
    ra, re = math.radians(az), math.radians(el)
    truth = r * np.array([math.cos(re) * math.sin(ra), math.cos(re) * math.cos(ra), math.sin(re)])
    n = 200_000
    noisy = np.column_stack(
        [r + rng.normal(0, 5.0, n), az + rng.normal(0, 2.0, n), el + rng.normal(0, 6.0, n)]
    )
    plots = np.column_stack([noisy, np.full((n, 3), np.nan)])
    conv = convert_plots(plots, radar)
    err = conv.z - radar.position_enu - truth
    mean = err.mean(axis=0)
    sem = err.std(axis=0) / math.sqrt(n)
    assert np.all(np.abs(mean) < 4 * sem), (mean, sem)
    # The plain conversion of the same plots is visibly biased (shorter than the truth).
    a_, e_ = np.radians(noisy[:, 1]), np.radians(noisy[:, 2])
    raw = noisy[:, 0:1] * np.column_stack(
        [np.cos(e_) * np.sin(a_), np.cos(e_) * np.cos(a_), np.sin(e_)]
    )
    raw_mean = (raw - truth).mean(axis=0)
    assert np.any(np.abs(raw_mean) > 6 * sem), (raw_mean, sem)
    nees = np.einsum("ni,nij,nj->n", err, np.linalg.inv(conv.R), err)
    assert 2.85 < nees.mean() < 3.15


def test_sigma_at_edges():
    for snr in (np.nan, -10.0, 13.0, 19.0, 25.0, 40.0):
        assert MS._sigma_at(snr, 0.5, 1.0, 25.0, 13.0) == pytest.approx(
            NV.sigma_at(snr, 0.5, 1.0, 25.0, 13.0)
        )
    assert MS._sigma_at(30.0, 0.5, 1.0, 13.0, 13.0) == 1.0  # degenerate datasheet: the low figure


# --------------------------------------------------------------------------- linear algebra, models


@pytest.mark.parametrize("dt", [0.0, 0.1, 1.0, 7.5])
@pytest.mark.parametrize("omega", [0.0, 0.2, -0.5, 1e-12])
def test_transition_and_fpft(dt, omega):
    F, Q = np.empty((6, 6)), np.empty((6, 6))
    K._transition(dt, 3.0, 0.5, omega, F, Q)
    Fn, Qn = NV.transition(dt, 3.0, 0.5, omega)
    np.testing.assert_allclose(F, Fn, atol=1e-12)
    np.testing.assert_allclose(Q, Qn, atol=1e-12)
    P = spd(np.random.default_rng(1), 6, 10.0)
    out, tmp = np.empty((6, 6)), np.empty((6, 6))
    K._fpft(F, P, Q, out, tmp)
    np.testing.assert_allclose(out, Fn @ P @ Fn.T + Qn, rtol=1e-12, atol=1e-9)
    if omega == 0.0 or omega * dt == 0.0:
        K._fpft_cv(dt, P, Q, out)
        np.testing.assert_allclose(out, Fn @ P @ Fn.T + Qn, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("n", [1, 3, 4])
def test_cholesky_helpers(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        S = np.zeros((4, 4))
        S[:n, :n] = spd(rng, n, rng.uniform(0.01, 1e4))
        L = np.zeros((4, 4))
        logdet = K._chol(S, L, n)
        assert logdet == pytest.approx(np.linalg.slogdet(S[:n, :n])[1], rel=1e-10, abs=1e-10)
        b = rng.normal(size=4)
        out = np.empty(4)
        K._chol_solve(L, b, out, n)
        np.testing.assert_allclose(out[:n], np.linalg.solve(S[:n, :n], b[:n]), rtol=1e-9)
        Sinv = np.zeros((4, 4))
        K._chol_inverse(L, Sinv, n)
        np.testing.assert_allclose(Sinv[:n, :n], np.linalg.inv(S[:n, :n]), rtol=1e-8, atol=1e-12)
    bad = np.diag([1.0, -1.0, 1.0, 1.0])
    assert K._chol(bad, np.zeros((4, 4)), 3) == -np.inf


def test_wrap():
    for amb in (0.0, 40.0):
        for d in (-130.0, -40.0, -39.9, 0.0, 39.9, 40.0, 79.0, 250.0):
            expect = d if amb == 0 else d - 2 * amb * math.floor((d + amb) / (2 * amb))
            assert K._wrap(d, amb) == pytest.approx(expect)


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("has_vr", [True, False])
def test_innovation_and_kalman_update(seed, has_vr):
    rng = np.random.default_rng(seed)
    x, P, _ = random_state(rng, 1)
    x, P = x[0], P[0]
    sensor = rng.uniform(-50, 50, 3)
    if seed == 0:
        x[:3] = sensor + 0.2  # target on top of the radar: the range guard
    z = x[:3] + rng.normal(0, 30, 3)
    R = spd(rng, 3, 100.0)
    vr = float(rng.normal(0, 10))
    H, nu, S, PHt = np.empty((4, 6)), np.empty(4), np.empty((4, 4)), np.empty((6, 4))
    dim = K._innovation(x, P, z, R, vr, 0.09, has_vr, sensor, 0.0, H, nu, S, PHt)
    nu_n, S_n, H_n = NV.innovation(x, P, z, R, vr, 0.09, has_vr, sensor)
    assert dim == len(nu_n)
    if seed != 0:  # the guard makes h non-smooth at the radar; finite differences do not apply
        np.testing.assert_allclose(H[:dim], H_n, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(S[:dim, :dim], S_n, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(nu[:dim], nu_n, rtol=1e-10, atol=1e-10)
    x1, P1 = x.copy(), P.copy()
    d2, logdet = K._kalman_update(
        x1, P1, nu, S, PHt, dim, np.empty((4, 4)), np.empty((6, 4)), np.empty(4), np.empty((4, 4))
    )
    x2, P2, d2n, logdet_n = NV.kalman_update(x, P, nu[:dim], S[:dim, :dim], H[:dim])
    np.testing.assert_allclose(x1, x2, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(P1, P2, rtol=1e-7, atol=1e-7)
    assert d2 == pytest.approx(d2n, rel=1e-8)
    assert logdet == pytest.approx(logdet_n, rel=1e-9, abs=1e-9)


# --------------------------------------------------------------------------- IMM


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("M", [2, 4])
def test_imm_predict_combine_update(seed, M):
    rng = np.random.default_rng(100 + seed)
    mdl = mdl_table(M)
    x, P, mu = random_state(rng, M)
    if seed == 1:
        mu = np.eye(M)[0]  # all weight on one model
    xs, Ps, mus = x[None].copy(), P[None].copy(), mu[None].copy()
    dt = float(rng.uniform(0.05, 3.0))
    F, Q, tmp = np.empty((6, 6)), np.empty((6, 6)), np.empty((6, 6))
    K._imm_predict(
        xs,
        Ps,
        mus,
        0,
        dt,
        mdl,
        F,
        Q,
        np.empty((M, 6)),
        np.empty((M, 6, 6)),
        np.empty((M, M)),
        np.empty(M),
        tmp,
    )
    xn, Pn, mun = NV.imm_predict(x, P, mu, dt, mdl)
    np.testing.assert_allclose(xs[0], xn, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(Ps[0], Pn, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(mus[0], mun, rtol=1e-12, atol=1e-14)
    xc, Pc = np.empty((1, 6)), np.empty((1, 6, 6))
    K._imm_combine(xs, Ps, mus, 0, xc, Pc)
    xcn, Pcn = NV.imm_combine(xn, Pn, mun)
    np.testing.assert_allclose(xc[0], xcn, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(Pc[0], Pcn, rtol=1e-9, atol=1e-8)
    sensor = np.zeros(3)
    z = xcn[:3] + rng.normal(0, 20, 3)
    R = spd(rng, 3, 200.0)
    vr = NV.doppler(xcn, sensor) + rng.normal(0, 1.0)
    for has_vr in (True, False):
        a, b, c = xs.copy(), Ps.copy(), mus.copy()
        H, nu, S, PHt, L = (
            np.empty((4, 6)),
            np.empty(4),
            np.empty((4, 4)),
            np.empty((6, 4)),
            np.empty((4, 4)),
        )
        nis0 = K._imm_update(
            a,
            b,
            c,
            0,
            z,
            R,
            vr,
            0.09,
            has_vr,
            sensor,
            0.0,
            H,
            nu,
            S,
            PHt,
            L,
            np.empty((6, 4)),
            np.empty(4),
            np.empty((4, 4)),
            np.empty(M),
        )
        an, bn, cn, nis_n = NV.imm_update(xn, Pn, mun, z, R, vr, 0.09, has_vr, sensor)
        np.testing.assert_allclose(a[0], an, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(b[0], bn, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(c[0], cn, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(nis0, nis_n, rtol=1e-6, equal_nan=True)
        d2, log_g, dim = K._pair_score(
            xs, Ps, mus, 0, z, R, vr, 0.09, has_vr, sensor, 0.0, H, nu, S, PHt, L, np.empty(4)
        )
        d2n, log_gn, dimn = NV.pair_score(xn, Pn, mun, z, R, vr, 0.09, has_vr, sensor)
        assert dim == dimn
        assert d2 == pytest.approx(d2n, rel=1e-6)
        assert log_g == pytest.approx(log_gn, rel=1e-7, abs=1e-7)


def test_gate_bounds_contain_every_gated_plot():
    """The pre-gate box never drops a plot some model's gate accepts."""
    rng = np.random.default_rng(9)
    mdl = mdl_table(4)
    gate = 20.0
    for _ in range(200):
        x, P, mu = random_state(rng, 4)
        xs, Ps, mus = x[None], P[None], mu[None]
        xc, Pc = np.empty((1, 6)), np.empty((1, 6, 6))
        K._imm_combine(xs, Ps, mus, 0, xc, Pc)
        off, pmax = np.empty(3), np.empty(3)
        K._gate_bounds(xs, Ps, xc, 0, off, pmax)
        R = spd(rng, 3, 30.0)
        z = (
            x[rng.integers(0, 4), :3]
            + rng.normal(0, 1, 3) * np.sqrt(np.diag(P[0, :3, :3]) + np.diag(R)) * 1.5
        )
        d2, _, _ = NV.pair_score(x, P, mu, z, R, np.nan, np.nan, False, np.zeros(3))
        inside = bool(np.all(np.abs(z - xc[0, :3]) <= off + np.sqrt(gate * (pmax + np.diag(R)))))
        assert inside == NV.in_gate_box(x, P, xc[0], z, R, gate)
        if d2 <= gate:
            assert inside
    assert mdl.shape[0] == 4


# --------------------------------------------------------------------------- assignment


def _run_lsap(cost):
    nr, nc = cost.shape
    col4row = np.empty(nr, dtype=np.int64)
    ok = K._lsap(
        cost,
        nr,
        nc,
        np.empty(nc, dtype=np.int64),
        col4row,
        np.empty(nr),
        np.empty(nc),
        np.empty(nc),
        np.empty(nc, dtype=np.int64),
        np.empty(nr, dtype=bool),
        np.empty(nc, dtype=bool),
        np.empty(nc, dtype=np.int64),
    )
    return ok, col4row


@pytest.mark.parametrize("seed", range(20))
def test_lsap_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    nr = int(rng.integers(1, 9))
    nc = nr + int(rng.integers(0, 6))
    cost = rng.normal(size=(nr, nc)) * 10
    if seed % 3 == 0:
        cost = np.round(cost)  # ties: compare the optimum, not the argmin
    if seed % 4 == 1:
        forbid = rng.random((nr, nc)) < 0.4
        forbid[np.arange(nr), np.arange(nr)] = False  # keep it feasible
        cost[forbid] = K.BIG
    ok, col4row = _run_lsap(cost.copy())
    assert ok
    assert len(set(col4row.tolist())) == nr
    expect = NV.lsap(cost)
    assert cost[np.arange(nr), col4row].sum() == pytest.approx(cost[np.arange(nr), expect].sum())


def test_lsap_reports_infeasible():
    cost = np.full((2, 2), np.inf)
    cost[0, 0] = 1.0
    ok, _ = _run_lsap(cost)
    assert not ok


@pytest.mark.parametrize("seed", range(10))
def test_clusters_and_assign_match_naive(seed):
    rng = np.random.default_rng(seed)
    n_t, n_p = int(rng.integers(1, 25)), int(rng.integers(0, 30))
    pairs = []
    for a in range(n_t):
        for j in range(n_p):
            if rng.random() < 3.0 / max(n_p, 1):
                pairs.append((a, j, float(rng.normal(-5, 5))))
    pt = np.array([p[0] for p in pairs], dtype=np.int64)
    pp = np.array([p[1] for p in pairs], dtype=np.int64)
    pc = np.array([p[2] for p in pairs])
    if pairs:
        comp = np.empty(len(pairs), dtype=np.int64)
        K._clusters(n_t + n_p, pt, pp + n_t, len(pairs), comp)
        expect = NV.clusters(n_t + n_p, list(zip(pt.tolist(), (pp + n_t).tolist(), strict=True)))
        assert comp.tolist() == expect
    miss = rng.uniform(0, 3, n_t)
    tp, ptk = np.empty(n_t, dtype=np.int64), np.empty(n_p, dtype=np.int64)
    stats = np.zeros(K.N_STATS, dtype=np.int64)
    K._assign(n_t, n_p, pt, pp, pc, len(pairs), miss, tp, ptk, stats)
    tpn, ptn = NV.assign(n_t, n_p, pairs, miss)
    assert tp.tolist() == tpn.tolist()
    assert ptk.tolist() == ptn.tolist()


# --------------------------------------------------------------------------- track logic


def test_small_track_logic_helpers():
    for p in (0.0, 0.2, 0.9, 0.9999):
        for pd in (0.2, 0.9):
            for ratio, det in ((0.0, False), (1e-3, True), (1e6, True)):
                assert K._existence_update(p, pd, 0.9995, ratio, det) == pytest.approx(
                    NV.existence_update(p, pd, 0.9995, ratio, det)
                )
    for h, n in ((0b1011, 4), (0b1000, 4), (0, 5), (0b1, 1), (0b100, 2)):
        assert K._popcount(h, 3) == bin(h & 0b111).count("1")
        expect = next((c for c in range(n) if (h >> c) & 1), n)
        assert K._misses_in_row(h, n) == expect
    sp = scan_parameters(RadarGeometry.build("r", EnuFrame(52, 4, 55), 52, 4, 55, RadarAccuracy()))
    feats = np.zeros((1, K.N_FEAT))
    assert K._detection_probability(feats, 0, 1000.0, sp) == sp[K.S_PD_DEFAULT]
    feats[0, K.F_N_SNR] = 3
    feats[0, K.F_SNR1] = 50.0 * 1000.0**4
    assert K._detection_probability(feats, 0, 1000.0, sp) == pytest.approx(
        NV.detection_probability(feats[0], 1000.0, sp)
    )
    for pos in ([100, 100, 50], [6000, 0, 50], [10, 10, 500], [0, 0, 0.0]):
        x = np.array([*pos, 0, 0, 0], dtype=float)
        assert K._in_coverage(x, sp) == pytest.approx(NV.in_coverage(x, sp))


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_update_features_matches_naive(seed):
    rng = np.random.default_rng(seed)
    prm = parameter_vector(TrackerSettings())
    feats = np.zeros((1, K.N_FEAT))
    feats[0, K.F_NIS_RING : K.F_NIS_RING + K.NIS_RING] = -1
    ref = feats[0].copy()
    birth = np.array([100.0, 200.0, 50.0])
    t = 0.0
    for k in range(40):
        t += float(rng.uniform(0.1, 2.0))
        x = np.concatenate([birth + rng.normal(0, 300, 3), rng.normal(0, 3, 3)])
        if k > 20:
            x[3:5] = 0.3  # a hover after moving
        P = spd(rng, 6, 0.01)
        nis0 = float(rng.exponential(2.0)) if rng.random() < 0.8 else np.nan
        snr = 10 ** rng.uniform(1.3, 3) if rng.random() < 0.8 else np.nan
        rcs = 10 ** rng.uniform(-3, 0) if rng.random() < 0.9 else np.nan
        K._update_features(
            feats, 0, t, x, P, 0.7, nis0, -3.0, True, 1500.0, snr, rcs, 20.0, birth[None], prm
        )
        ref = NV.update_features(
            ref, t, x, P, 0.7, nis0, -3.0, True, 1500.0, snr, rcs, 20.0, birth, prm
        )
        np.testing.assert_allclose(feats[0], ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_two_point_matches_naive(seed):
    rng = np.random.default_rng(seed)
    prm = parameter_vector(TrackerSettings())
    for _ in range(50):
        z0 = rng.uniform(-2000, 2000, 3)
        v = rng.normal(0, 60, 3)
        dt = float(rng.uniform(0.05, 3.0))
        z1 = z0 + v * dt + rng.normal(0, 5, 3)
        u0, u1 = z0 / np.linalg.norm(z0), z1 / np.linalg.norm(z1)
        R0, R1 = spd(rng, 3, 20.0), spd(rng, 3, 20.0)
        vr0 = float(u0 @ v + rng.normal(0, 0.5)) if rng.random() < 0.8 else np.nan
        has_vr = bool(rng.random() < 0.8)
        vr1 = float(u1 @ v + rng.normal(0, 0.5))
        fit, speed = K._two_point(
            0,
            dt,
            z1,
            R1,
            vr1,
            0.09,
            has_vr,
            u1,
            prm,
            np.zeros(1),
            z0[None],
            R0[None],
            np.array([vr0]),
            u0[None],
        )
        expect, expect_speed = NV.two_point_fit(
            dt, z1, R1, vr1, 0.09, has_vr, u1, 0.0, z0, R0, vr0, u0, prm
        )
        assert fit == pytest.approx(expect, rel=1e-9) or (math.isinf(fit) and math.isinf(expect))
        assert speed == pytest.approx(expect_speed, rel=1e-12)


# --------------------------------------------------------------------------- whole scans


def _scene_scans(seed: int, n_targets: int, duration_s: float, strip: str | None = None):
    ctx = SimContext(sim_site(), SIM_T0_NS, duration_s, seed)
    radar = ctx.site.sensor("radar-1")
    origin = sensor_enu(ctx, radar)
    rng = np.random.default_rng(seed)
    objects = []
    for i in range(n_targets):
        b = rng.uniform(0, 2 * np.pi)
        start = origin[:2] + rng.uniform(300, 2500) * np.array([np.sin(b), np.cos(b)])
        goal = origin[:2] + rng.uniform(300, 2500) * np.array([np.cos(b), np.sin(b)])
        alt = float(rng.uniform(30, 200))
        legs = [
            Leg(
                "goto",
                (goal[0], goal[1], alt),
                float(rng.uniform(5, 25)),
                stop=bool(rng.random() < 0.3),
            ),
            Leg("hover", duration_s=1e9),
        ]
        t, pos, vel = fly_legs(
            0.0, duration_s, (start[0], start[1], alt), float(rng.uniform(0, 360)), 10.0, legs
        )
        objects.append(
            MovingObject(f"t{i}", "drone", t, pos, vel, np.full(len(t), float(rng.uniform(-15, 0))))
        )
    # Two targets close together: a cluster the assignment must solve jointly.
    objects.append(
        MovingObject.linear(
            "pair-a", "drone", (800.0, 800.0, 80.0), (5.0, 0.0, 0.0), 0.0, duration_s, -5.0
        )
    )
    objects.append(
        MovingObject.linear(
            "pair-b", "drone", (800.0, 830.0, 80.0), (5.0, 0.5, 0.0), 0.0, duration_s, -5.0
        )
    )
    out = simulate_radar(ctx, [radar], objects, RadarParams(false_alarms_per_scan=4.0))
    dec = RadarPlotsDecoder(radar.id, "test")
    scans = [
        r
        for row in out.feeds
        for r in dec.feed(row.payload, row.t_rx_ns)
        if isinstance(r, RadarScan)
    ]
    if strip:
        col = {"vr": 3, "el": 2, "snr": 5}[strip]
        scans = [
            RadarScan(
                s.sensor, s.t_ns, s.t_rx_ns, s.scan, np.where(np.arange(6) == col, np.nan, s.plots)
            )
            for s in scans
        ]
    return ctx.site, scans


@pytest.mark.parametrize(("seed", "strip"), [(1, None), (2, "vr"), (3, "el"), (4, "snr")])
def test_scan_matches_naive(seed, strip):
    """Every step of ``_scan`` against the plain version, scan after scan, on a simulated scene."""
    site, scans = _scene_scans(seed, 10, 20.0, strip)
    s = site.sensor("radar-1")
    frame = EnuFrame(site.site.lat, site.site.lon, site.site.alt_m)
    radar = RadarGeometry.build(s.id, frame, s.lat, s.lon, s.alt_m, RadarAccuracy())
    settings = TrackerSettings(capacity=128, turn_rate_dps=10.0 if seed == 1 else 0.0)
    trk = MultiTargetTracker({s.id: radar}, settings)
    sp = scan_parameters(radar)
    confirmed_seen = 0
    for scan in scans:
        before = copy.deepcopy(trk.arrays)
        next_id = int(trk.arrays.next_id[0])
        res = trk.process_scan(s.id, scan.t_ns, scan.plots)
        conv = convert_plots(scan.plots, radar)
        deleted, next_id_n, lost = NV.scan(
            trk.t_s(scan.t_ns), sp, conv, trk.prm, trk.mdl, before, next_id
        )
        a = trk.arrays
        assert lost == 0
        assert res.deleted == deleted
        assert int(a.next_id[0]) == next_id_n
        expect_plot_slot = np.full(conv.n, -1)
        took = np.flatnonzero(before.track_plot >= 0)
        expect_plot_slot[before.track_plot[took]] = took
        np.testing.assert_array_equal(res.plot_slot, expect_plot_slot)
        for name in ("status", "tid", "hist", "n_scans", "n_hits", "track_plot", "high_water"):
            np.testing.assert_array_equal(getattr(a, name), getattr(before, name), err_msg=name)
        live = a.status != K.FREE
        for name in (
            "exist",
            "t_state",
            "t_last_hit",
            "t_birth",
            "xs",
            "Ps",
            "mu",
            "xc",
            "Pc",
            "birth_z",
            "birth_R",
            "feats",
        ):
            np.testing.assert_allclose(
                getattr(a, name)[live],
                getattr(before, name)[live],
                rtol=1e-6,
                atol=1e-6,
                err_msg=name,
            )
        # Keep the twins in lock-step: the next scan starts from the same state.
        trk.arrays = before
        trk.arrays.next_id[0] = next_id_n
        confirmed_seen = max(confirmed_seen, int((a.status == K.CONFIRMED).sum()))
    assert confirmed_seen >= 8


@pytest.mark.parametrize("M", [2, 4])
def test_track_and_work_views_match_the_python_layout(M):
    """The kernel's views of the packed buffers are the ``TrackArrays`` attributes, and scratch fits."""
    from fusion.drone.tracker import TrackArrays

    N = 7
    a = TrackArrays(N, M)
    a.tf[:] = np.arange(a.tf.size)
    a.ti[:] = np.arange(a.ti.size)
    views = K._track_views(a.tf, a.ti, N, M)
    names = (*K.TRACK_FLOATS, *K.TRACK_INTS, "next_id", "high_water", "n_conf", "stats")
    assert len(views) == len(names)
    for name, v in zip(names, views, strict=True):
        np.testing.assert_array_equal(v, getattr(a, name), err_msg=name)
    assert views[-1][-1] == a.ti[-1]  # the layout covers the whole int buffer
    assert a.feats.ravel()[-1] == a.tf[-1]  # ... and the float buffer
    b = copy.deepcopy(a)
    b.xs[0, 0, 0] = -1.0
    assert a.xs[0, 0, 0] == N * 5 and b.tf[N * 5] == -1.0  # a deep copy owns new buffers
    for hc, pc in ((0, 0), (5, 3), (64, 200)):
        nf, ni = K._work_size(hc, pc, M)
        wf = np.full(nf, np.nan)
        wi = np.full(ni, -7, dtype=np.int64)
        w = K._work_views(wf, wi, hc, pc, M)
        flat = [x for x in w[:-1]] + list(w[-1])
        assert sum(x.size for x in flat) == nf + ni  # every element used once, nothing past the end
