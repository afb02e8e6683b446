"""GOSPA against its definition (a brute-force search over every injection) and hand-checked cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fusion.gospa import gospa


def gospa_brute(x: np.ndarray, y: np.ndarray, c: float, p: float, alpha: float) -> float:
    """Definition 1 of Rahmathullah et al. (FUSION 2017), by enumerating every injection."""
    if len(x) > len(y):
        x, y = y, x
    m, n = len(x), len(y)
    best = math.inf
    for perm in itertools.permutations(range(n), m):
        cost = sum(min(float(np.linalg.norm(x[i] - y[j])), c) ** p for i, j in enumerate(perm))
        best = min(best, cost)
    return (best + c**p / alpha * (n - m)) ** (1.0 / p)


def gospa_brute_partial(
    x: np.ndarray, y: np.ndarray, c: float, p: float
) -> tuple[float, float, int]:
    """Proposition 1 (alpha = 2): best partial assignment -> (distance, localisation, n_assigned)."""
    n, m = len(x), len(y)
    best = (math.inf, 0.0, 0)
    for k in range(min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                loc = sum(
                    float(np.linalg.norm(x[i] - y[j])) ** p for i, j in zip(rows, cols, strict=True)
                )
                total = loc + c**p / 2 * (n + m - 2 * k)
                if total < best[0] - 1e-9:
                    best = (total, loc, k)
    return best[0] ** (1.0 / p), best[1], best[2]


points = st.lists(
    st.tuples(*[st.floats(-300, 300, allow_nan=False, allow_infinity=False)] * 3),
    min_size=0,
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(
    x=points,
    y=points,
    c=st.floats(1.0, 400.0),
    p=st.sampled_from([1.0, 2.0, 3.0]),
    alpha=st.sampled_from([2.0, 1.0, 0.5]),
)
def test_matches_definition(x, y, c, p, alpha):
    xa = np.array(x, dtype=float).reshape(-1, 3)
    ya = np.array(y, dtype=float).reshape(-1, 3)
    g = gospa(xa, ya, c=c, p=p, alpha=alpha)
    assert g.distance == pytest.approx(gospa_brute(xa, ya, c, p, alpha), rel=1e-9, abs=1e-9)
    # The three terms always add up to distance ** p.
    assert g.localisation + g.missed + g.false == pytest.approx(g.distance**p, rel=1e-9, abs=1e-9)
    assert 0 <= g.n_assigned <= min(len(xa), len(ya))


@settings(max_examples=100, deadline=None)
@given(x=points, y=points, c=st.floats(1.0, 400.0), p=st.sampled_from([1.0, 2.0]))
def test_alpha2_decomposition_matches_partial_assignment(x, y, c, p):
    xa = np.array(x, dtype=float).reshape(-1, 3)
    ya = np.array(y, dtype=float).reshape(-1, 3)
    g = gospa(xa, ya, c=c, p=p, alpha=2.0)
    dist, loc, k = gospa_brute_partial(xa, ya, c, p)
    assert g.distance == pytest.approx(dist, rel=1e-9, abs=1e-9)
    # Localisation is unique up to ties at exactly d == c, which random floats avoid.
    assert g.localisation == pytest.approx(loc, rel=1e-6, abs=1e-6)
    assert g.n_assigned == k
    assert g.missed == pytest.approx(c**p / 2 * (len(xa) - k))
    assert g.false == pytest.approx(c**p / 2 * (len(ya) - k))


def test_both_empty_is_zero():
    g = gospa(np.zeros((0, 3)), np.zeros((0, 3)), c=100.0)
    assert (g.distance, g.localisation, g.missed, g.false, g.n_assigned) == (0.0, 0.0, 0.0, 0.0, 0)


def test_all_missed():
    truth = np.array([[0.0, 0.0, 0.0], [500.0, 0.0, 0.0], [0.0, 900.0, 10.0]])
    g = gospa(truth, np.zeros((0, 3)), c=100.0)
    assert g.missed == pytest.approx(3 * 100.0**2 / 2)
    assert g.false == 0.0
    assert g.distance == pytest.approx(math.sqrt(3 * 5000.0))
    assert g.n_assigned == 0


def test_all_false():
    g = gospa([], np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), c=50.0)
    assert g.false == pytest.approx(2 * 50.0**2 / 2)
    assert g.missed == 0.0
    assert g.distance == pytest.approx(50.0)


def test_far_pair_is_one_missed_and_one_false():
    g = gospa(np.array([[0.0, 0.0, 0.0]]), np.array([[1000.0, 0.0, 0.0]]), c=100.0)
    assert g.n_assigned == 0
    assert g.missed == pytest.approx(5000.0)
    assert g.false == pytest.approx(5000.0)
    assert g.distance == pytest.approx(100.0)


def test_hand_checked_mix():
    # Two drones: one tracked 3-4-0 m off (5 m), one missed; one false track far away.
    truth = np.array([[0.0, 0.0, 50.0], [800.0, 0.0, 50.0]])
    est = np.array([[3.0, 4.0, 50.0], [-2000.0, 0.0, 50.0]])
    g = gospa(truth, est, c=100.0)
    assert g.n_assigned == 1
    assert g.localisation == pytest.approx(25.0)
    assert g.missed == pytest.approx(5000.0)
    assert g.false == pytest.approx(5000.0)
    assert g.distance == pytest.approx(math.sqrt(10025.0))


def test_optimal_not_greedy_assignment():
    # Nearest-first would pair truth 0 with est 0 (d=1) and leave truth 1 to est 1
    # (d=10): 1 + 100. The optimum pairs crosswise (d=4 and d=5): 16 + 25 = 41.
    truth = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]])
    est = np.array([[1.0, 0.0, 0.0], [-4.0, 0.0, 0.0]])
    g = gospa(truth, est, c=100.0)
    assert g.n_assigned == 2
    assert g.localisation == pytest.approx(41.0)


@pytest.mark.parametrize("kwargs", [{"c": 0.0}, {"c": 10.0, "p": 0.5}, {"c": 10.0, "alpha": 3.0}])
def test_bad_parameters_rejected(kwargs):
    with pytest.raises(ValueError):
        gospa(np.zeros((1, 3)), np.zeros((1, 3)), **kwargs)
