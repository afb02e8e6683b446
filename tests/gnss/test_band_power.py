"""GNSS band power over a learned floor: quiet, a jammer, a one-sweep impulse, odd sweeps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusion.gnss.band_power import BandPowerMonitor
from fusion.gnss.settings import GnssSettings
from fusion.records import RfSpectrum

NS = 1_000_000_000
T0 = 1_767_686_400
L1_SWEEP = (1555.0e6, 58)  # as the simulated RF sensor sweeps: 1555-1612 MHz, 1 MHz bins


def sweep(t_s: float, power: np.ndarray, f0: float = L1_SWEEP[0]) -> RfSpectrum:
    t_ns = int((T0 + t_s) * NS)
    return RfSpectrum("rf-1", t_ns, t_ns, f0, 1.0e6, power)


def quiet(rng, n=L1_SWEEP[1]) -> np.ndarray:
    return -100.0 + rng.normal(0, 0.5, n)


def test_a_quiet_band_stays_near_0_db_and_a_jammer_raises_l1_e1():
    rng = np.random.default_rng(1)
    m = BandPowerMonitor("rf-1", GnssSettings())
    for k in range(30):
        assert m.on_sweep(sweep(k, quiet(rng)))
    st = m.bands["L1"]
    assert abs(st.rise_db) < 0.5 and not m.raised(T0 + 29.0)
    freqs = L1_SWEEP[0] + 1e6 * np.arange(L1_SWEEP[1])
    jammer = np.where(np.abs(freqs - 1575.42e6) <= 10e6, 12.0, 0.0)  # 12 dB over the floor, 20 MHz
    for k in range(30, 34):
        m.on_sweep(sweep(k, quiet(rng) + jammer))
    raised = m.raised(T0 + 33.0)
    assert set(raised) == {"L1"} and raised["L1"].sub_band == "L1/E1"
    assert raised["L1"].rise_db == pytest.approx(10 * math.log10((21 * 10**1.2 + 3) / 24), abs=0.6)
    assert m.raised(T0 + 33.0, alone=True)  # >= 10 dB for 3 s: jamming on its own
    assert not m.raised(T0 + 40.0)  # evidence goes stale without sweeps


def test_a_one_sweep_impulse_is_not_a_jammer_and_is_not_learned():
    rng = np.random.default_rng(2)
    m = BandPowerMonitor("rf-1", GnssSettings())
    for k in range(20):
        m.on_sweep(sweep(k, quiet(rng)))
    floor = m._layouts[(L1_SWEEP[0], 1e6, L1_SWEEP[1])].floor_lin.copy()
    m.on_sweep(sweep(20, quiet(rng) + 30.0))  # an EMP-like burst lands in one sweep
    assert m.bands["L1"].rise_db > 25 and not m.raised(T0 + 20.0)
    np.testing.assert_array_equal(m._layouts[(L1_SWEEP[0], 1e6, L1_SWEEP[1])].floor_lin, floor)
    m.on_sweep(sweep(21, quiet(rng)))
    assert not m.raised(T0 + 21.0) and abs(m.bands["L1"].rise_db) < 0.5


def test_layouts_are_learned_separately_and_non_gnss_sweeps_ignored():
    rng = np.random.default_rng(3)
    m = BandPowerMonitor("rf-1", GnssSettings())
    assert not m.on_sweep(sweep(0, quiet(rng, 20), f0=2400e6))  # Wi-Fi: no GNSS band
    for k in range(2):
        assert m.on_sweep(sweep(k, quiet(rng, 33), f0=1160e6))  # L5 sweep
        assert m.on_sweep(sweep(k, quiet(rng, 31), f0=1212e6))  # L2 sweep
    assert m.bands["L5"].t == T0 + 1 and m.bands["L2"].t == T0 + 1
    assert math.isnan(m.bands["L1"].rise_db)
    assert not m.on_sweep(sweep(1, np.full(33, np.nan), f0=1160e6))  # a broken sweep


def test_the_floor_needs_a_few_sweeps_before_a_rise_counts():
    rng = np.random.default_rng(4)
    m = BandPowerMonitor("rf-1", GnssSettings())
    m.on_sweep(sweep(0, quiet(rng)))
    m.on_sweep(sweep(1, quiet(rng) + 20))
    assert not m.raised(T0 + 1.0)
