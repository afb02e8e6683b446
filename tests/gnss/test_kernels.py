"""The GNSS kernels against their naive twins (tests/gnss/naive.py), random and edge input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusion.gnss import kernels as K
from fusion.gnss.baseline import RobustBaseline, SatParams, SatTable
from tests.gnss import naive

SUMMARY_KEYS = {
    "tracked": K.F_TRACKED,
    "ref": K.F_REF,
    "med_res": K.F_MED_RES,
    "frac_drop": K.F_FRAC_DROP,
    "lost": K.F_LOST,
    "up": K.F_UP,
    "above30": K.F_ABOVE30,
    "cno_median": K.F_CNO_MEDIAN,
    "spread": K.F_SPREAD,
    "cluster_n": K.F_CLUSTER_N,
    "cluster_up": K.F_CLUSTER_UP,
    "cluster_level": K.F_CLUSTER_LEVEL,
    "corr": K.F_CORR_ELEV,
    "changed": K.F_CHANGED,
}


def naive_state(table: SatTable) -> dict:
    return {
        "sats": [
            {
                "base": 0.0,
                "var": 0.0,
                "n": 0,
                "cno": 0.0,
                "elev": math.nan,
                "t": -math.inf,
                "out_since": math.nan,
            }
            for _ in range(table.capacity)
        ],
        "bin_mean": [0.0] * table.bin_mean.size,
        "bin_n": [0] * table.bin_count.size,
    }


def assert_same_state(table: SatTable, state: dict) -> None:
    sats = state["sats"]
    np.testing.assert_allclose(table.base, [s["base"] for s in sats], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(table.var, [s["var"] for s in sats], rtol=1e-9, atol=1e-9)
    assert table.count.tolist() == [s["n"] for s in sats]
    np.testing.assert_allclose(table.bin_mean, state["bin_mean"], rtol=1e-9, atol=1e-9)
    assert table.bin_count.tolist() == state["bin_n"]
    np.testing.assert_array_equal(
        np.isnan(table.out_since), [math.isnan(s["out_since"]) for s in sats]
    )


def assert_same_summary(got: np.ndarray, want: dict) -> None:
    for key, idx in SUMMARY_KEYS.items():
        g, w = float(got[idx]), float(want[key])
        if math.isnan(w):
            assert math.isnan(g), (key, g, w)
        else:
            assert g == pytest.approx(w, rel=1e-9, abs=1e-9), (key, g, w)


def scenario_reports(rng: np.random.Generator, n_sats: int, epochs: int):
    """Epochs of (slot, cno, elev) reports: noisy sky, some untracked, a drop and a cluster."""
    base = rng.uniform(25, 50, n_sats)
    elev = rng.uniform(-5, 95, n_sats)  # some unknown / out of range on purpose
    elev[rng.random(n_sats) < 0.1] = np.nan
    out = []
    for k in range(epochs):
        cno = np.round(base + rng.normal(0, 1.5, n_sats))
        if k > epochs // 2:
            cno -= rng.choice([0.0, 6.0])  # a common-mode drop now and then
        if k > 3 * epochs // 4:
            pick = rng.random(n_sats) < 0.5
            cno[pick] = 44.0 + rng.integers(0, 2, pick.sum())  # a spoofer's cluster
        cno[rng.random(n_sats) < 0.1] = 0.0  # untracked
        present = rng.random(n_sats) < 0.9
        slots = np.flatnonzero(present)
        out.append((slots, cno[slots], elev[slots]))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_observe_and_summary_match_the_naive_twin(seed):
    rng = np.random.default_rng(seed)
    params = SatParams(tau_s=float(rng.uniform(5, 200)), reseed_s=float(rng.uniform(3, 20)))
    table = SatTable(params, capacity=40)
    state = naive_state(table)
    t = 1_700_000_000.0
    for slots, cno, elev in scenario_reports(rng, 40, 60):
        t += float(rng.uniform(0.5, 1.5))
        learn = bool(rng.random() < 0.85)
        got = K.observe_sats(table, slots, cno, elev, t, learn)
        want = naive.observe(
            state,
            list(zip(slots.tolist(), cno.tolist(), elev.tolist(), strict=True)),
            t,
            learn,
            params,
        )
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True)
        assert_same_state(table, state)
        tq = t + float(rng.uniform(0, 3))  # some satellites go stale
        assert_same_summary(K.summarise_cn0(table, tq), naive.summarise(state, tq, params))


def test_edge_cases_empty_single_and_all_untracked():
    params = SatParams()
    table = SatTable(params, capacity=8)
    state = naive_state(table)
    # Nothing observed yet.
    assert_same_summary(K.summarise_cn0(table, 10.0), naive.summarise(state, 10.0, params))
    # An empty report.
    empty = np.array([], dtype=np.int64)
    assert (
        K.observe_sats(table, empty, empty.astype(float), empty.astype(float), 1.0, True).size == 0
    )
    # One satellite, then all untracked (lost above the elevation cut once it has a baseline).
    for k in range(5):
        K.observe_sats(
            table, np.array([0, 1]), np.array([40.0, 0.0]), np.array([45.0, 60.0]), k, True
        )
        naive.observe(state, [(0, 40.0, 45.0), (1, 0.0, 60.0)], k, True, params)
    K.observe_sats(table, np.array([0]), np.array([0.0]), np.array([45.0]), 5.0, True)
    naive.observe(state, [(0, 0.0, 45.0)], 5.0, True, params)
    assert_same_state(table, state)
    got = K.summarise_cn0(table, 5.0)
    assert_same_summary(got, naive.summarise(state, 5.0, params))
    assert got[K.F_TRACKED] == 0 and got[K.F_LOST] == 1
    assert got[K.F_MED_RES] == pytest.approx(params.track_floor_dbhz - 40.0)
    # Stale satellites leave the summary.
    assert K.summarise_cn0(table, 100.0)[K.F_REF] == 0


def test_observe_validates_its_input():
    table = SatTable(capacity=4)
    with pytest.raises(ValueError):
        K.observe_sats(table, np.array([4]), np.array([40.0]), np.array([10.0]), 0.0, True)
    with pytest.raises(ValueError):
        K.observe_sats(table, np.array([0, 1]), np.array([40.0]), np.array([10.0]), 0.0, True)


def test_cluster_ties_and_duplicates_match_the_naive_twin():
    params = SatParams()
    table = SatTable(params, capacity=12)
    state = naive_state(table)
    base = np.array([30, 31, 36, 37, 38, 40, 45, 46, 47, 48, 35, 50], dtype=float)
    slots = np.arange(12)
    elev = np.linspace(10, 80, 12)
    for k in range(6):
        K.observe_sats(table, slots, base, elev, float(k), True)
        naive.observe(
            state,
            list(zip(slots.tolist(), base.tolist(), elev.tolist(), strict=True)),
            float(k),
            True,
            params,
        )
    # Two equally dense windows, duplicate values, rises and drops.
    now = np.array([40, 40, 42, 42, 30, 30, 45, 45, 47, 30, 35, 50], dtype=float)
    K.observe_sats(table, slots, now, elev, 6.0, True)
    naive.observe(
        state,
        list(zip(slots.tolist(), now.tolist(), elev.tolist(), strict=True)),
        6.0,
        True,
        params,
    )
    assert_same_summary(K.summarise_cn0(table, 6.0), naive.summarise(state, 6.0, params))


@pytest.mark.parametrize("seed", range(4))
def test_rolling_median_mad_matches_the_naive_twin(seed):
    rng = np.random.default_rng(100 + seed)
    window = int(rng.integers(1, 40))
    b = RobustBaseline(window=window, min_samples=1)
    seen: list[float] = []
    for x in rng.normal(4000, 300, 150):
        x = float(np.round(x)) if rng.random() < 0.5 else float(x)
        b.learn(x)
        seen.append(x)
        med, mad = K.ring_median_mad(b.buf, b.state)
        want = naive.median_mad(seen[-window:])
        assert (med, mad) == pytest.approx(want)
    empty = K.ring_median_mad(np.zeros(3), np.zeros(2, dtype=np.int64))
    assert math.isnan(empty[0]) and math.isnan(empty[1])


def test_robust_baseline_floors_and_readiness():
    b = RobustBaseline(
        window=10, min_samples=3, floor_abs=10.0, floor_rel=0.01, young_n=5, young_rel=0.05
    )
    assert math.isnan(b.deviation(100.0))
    for _ in range(3):
        b.learn(4000.0)
    # MAD 0: sigma is the young relative floor, 5 % of 4000.
    assert b.deviation(4400.0) == pytest.approx(2.0)
    for _ in range(3):
        b.learn(4000.0)
    assert b.deviation(4400.0) == pytest.approx(10.0)  # 1 % once enough samples
    b.learn(math.nan)
    assert b.n == 6


@pytest.mark.parametrize("seed", range(5))
def test_band_update_matches_the_naive_twin(seed):
    rng = np.random.default_rng(200 + seed)
    n = int(rng.integers(5, 70))
    bands = []
    for _ in range(int(rng.integers(1, 5))):
        lo = int(rng.integers(0, n))
        hi = int(rng.integers(lo, n + 1))
        bands.append((lo, hi))
    lo = np.array([b[0] for b in bands])
    hi = np.array([b[1] for b in bands])
    floor = np.zeros(n)
    count = np.zeros(n, dtype=np.int64)
    n_floor, n_count = [0.0] * n, [0] * n
    for k in range(40):
        p = -100 + rng.normal(0, 0.5, n)
        if k > 20:
            p[lo[0] : hi[0]] += rng.uniform(0, 30)  # a jammer in the first band
        learn = bool(rng.random() < 0.8)
        gate, tau = float(rng.uniform(1, 6)), float(rng.uniform(2, 300))
        rise, power = K.band_update(p, lo, hi, learn, gate, tau, floor, count)
        w_rise, w_power = naive.band_update(p.tolist(), bands, learn, gate, tau, n_floor, n_count)
        np.testing.assert_allclose(rise, w_rise, rtol=1e-9, equal_nan=True)
        np.testing.assert_allclose(power, w_power, rtol=1e-9, equal_nan=True)
        np.testing.assert_allclose(floor, n_floor, rtol=1e-12)
        assert count.tolist() == n_count


def test_band_update_validates_its_input():
    with pytest.raises(ValueError):
        K.band_update(
            np.zeros(4),
            np.array([0]),
            np.array([5]),
            True,
            3.0,
            10.0,
            np.zeros(4),
            np.zeros(4, dtype=np.int64),
        )
    with pytest.raises(ValueError):
        K.band_update(
            np.zeros(4),
            np.array([0]),
            np.array([2]),
            True,
            3.0,
            10.0,
            np.zeros(5),
            np.zeros(5, dtype=np.int64),
        )


SKY_KEYS = {
    "n": K.S_N,
    "span": K.S_SPAN,
    "kept": K.S_KEPT,
    "spread": K.S_SPREAD,
    "slope": K.S_SLOPE,
    "level": K.S_LEVEL,
    "below": K.S_BELOW,
    "min_elev": K.S_MIN_ELEV,
}


def assert_same_sky(got: np.ndarray, want: dict) -> None:
    for key, idx in SKY_KEYS.items():
        g, w = float(got[idx]), float(want[key])
        if math.isnan(w):
            assert math.isnan(g), (key, g, w)
        else:
            assert g == pytest.approx(w, rel=1e-9, abs=1e-9), (key, g, w)


def naive_sky(table: SatTable, t: float, margin: float, trim: float) -> dict:
    sats = list(
        zip(table.last_cno.tolist(), table.last_elev.tolist(), table.last_t.tolist(), strict=True)
    )
    return naive.sky_check(sats, t, table.params.stale_s, margin, trim)


@pytest.mark.parametrize("seed", range(8))
def test_sky_check_matches_the_naive_twin(seed):
    rng = np.random.default_rng(100 + seed)
    table = SatTable(SatParams(), capacity=48)
    t = 1_700_000_000.0
    for k in range(12):
        t += float(rng.uniform(0.5, 1.5))
        n = int(rng.integers(0, 48))
        slots = rng.choice(48, n, replace=False)
        elev = rng.uniform(-20, 95, n)  # some below the horizon, some out of range
        elev[rng.random(n) < 0.1] = np.nan
        if k % 3 == 0:
            cno = np.round(44.0 + rng.normal(0, 0.5, n))  # a simulator: many ties
        else:
            cno = np.round(30 + 0.15 * np.nan_to_num(elev) + rng.normal(0, 3, n))
        cno[rng.random(n) < 0.1] = 0.0
        K.observe_sats(table, slots, cno, elev, t, True)
        margin = float(rng.choice([0.0, 5.0]))
        trim = float(rng.choice([0.0, 0.1, 0.3]))
        tq = t + float(rng.uniform(0, 3))  # some satellites go stale
        assert_same_sky(K.sky_check(table, tq, margin, trim), naive_sky(table, tq, margin, trim))


def test_sky_check_edge_cases():
    table = SatTable(SatParams(), capacity=8)
    # Nothing observed.
    got = K.sky_check(table, 0.0)
    assert got[K.S_N] == 0 and got[K.S_BELOW] == 0 and math.isnan(got[K.S_SPREAD])
    assert_same_sky(got, naive_sky(table, 0.0, 5.0, 0.1))
    # One satellite: no slope; two at one elevation: no slope either.
    K.observe_sats(table, np.array([0]), np.array([40.0]), np.array([30.0]), 1.0, True)
    got = K.sky_check(table, 1.0)
    assert got[K.S_N] == 1 and got[K.S_SPREAD] == 0.0 and math.isnan(got[K.S_SLOPE])
    K.observe_sats(
        table, np.array([1, 2]), np.array([41.0, 39.0]), np.array([30.0, 30.0]), 1.0, True
    )
    got = K.sky_check(table, 1.0, 5.0, 0.0)
    assert got[K.S_N] == 3 and got[K.S_SPAN] == 0.0 and math.isnan(got[K.S_SLOPE])
    assert_same_sky(got, naive_sky(table, 1.0, 5.0, 0.0))
    # Tracked below the margin counts; untracked or within the margin does not.
    K.observe_sats(
        table,
        np.array([3, 4, 5]),
        np.array([35.0, 0.0, 30.0]),
        np.array([-12.0, -30.0, -3.0]),
        1.0,
        True,
    )
    got = K.sky_check(table, 1.0, 5.0, 0.1)
    assert got[K.S_BELOW] == 1 and got[K.S_MIN_ELEV] == -12.0 and got[K.S_N] == 3
    with pytest.raises(ValueError):
        K.sky_check(table, 1.0, 5.0, 1.0)
