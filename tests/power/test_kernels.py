"""The streaming kernel chain against its slow twin, and across frame boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.power import kernels as kn
from fusion.power.kernels import ChainSettings, WaveformChain
from tests.power import signals as sg
from tests.power.naive import chain_reference

INT_COLS = slice(0, kn.N_EI)


def run_chain(counts, scale, fs, f0, vn, frame: int, settings: ChainSettings | None = None):
    """Feeds ``counts`` in frames of ``frame`` samples; returns (events, envelope) as tuples."""
    k = counts.shape[1]
    chain = WaveformChain(k, fs, f0, vn, settings or ChainSettings())
    chans = np.arange(k, dtype=np.int64)
    sc = np.asarray(scale, dtype=np.float64)
    events, env = [], []
    for a in range(0, counts.shape[0], frame):
        ev_i, ev_f, env_idx, env_rms, env_freq = chain.process(counts[a : a + frame], chans, sc)
        for r in range(ev_i.shape[0]):
            events.append(tuple(int(v) for v in ev_i[r]) + tuple(float(v) for v in ev_f[r]))
        for j in range(env_idx.shape[0]):
            for c in range(k):
                env.append((c, int(env_idx[j]), float(env_rms[j, c]), float(env_freq[j, c])))
    return events, env


def as_reference_layout(ev: tuple) -> tuple:
    """Kernel row -> the twin's tuple layout."""
    i = ev[: kn.N_EI]
    f = ev[kn.N_EI :]
    return (
        i[kn.E_CH],
        i[kn.E_KIND],
        i[kn.E_START],
        i[kn.E_END],
        i[kn.E_FLIPS],
        i[kn.E_CLIPS],
        i[kn.E_POLARITY],
        i[kn.E_PEAK_IDX],
        i[kn.E_TRUNC],
        f[kn.EF_PEAK_D],
        f[kn.EF_PEAK_X],
        f[kn.EF_DV],
        f[kn.EF_TK],
        f[kn.EF_ENERGY],
        f[kn.EF_RMS],
        f[kn.EF_OSC_HZ],
        f[kn.EF_FREQ],
    )


def assert_same_events(got: list[tuple], want: list[tuple]) -> None:
    got = sorted(got, key=lambda e: (e[0], e[2], e[1]))
    want = sorted(want, key=lambda e: (e[0], e[2], e[1]))
    assert [e[:9] for e in got] == [e[:9] for e in want]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a[9:], b[9:], rtol=1e-9, atol=1e-9)


def assert_same_envelope(got, want) -> None:
    got, want = sorted(got), sorted(want)
    assert [e[:2] for e in got] == [e[:2] for e in want]
    np.testing.assert_allclose([e[2:] for e in got], [e[2:] for e in want], rtol=1e-9, atol=1e-9)


def disturbed(seed: int, n: int = 6 * sg.FS // 5) -> np.ndarray:
    """1.2 s of mains with an impulse, a clipped impulse, a sag, a ringing and a swell."""
    rng = np.random.default_rng(seed)
    v = sg.mains(n, rng)
    v = sg.add_impulse(v, int(rng.integers(600, 1500)), rng.uniform(0.8, 1.5))
    v = sg.add_impulse(v, int(rng.integers(2500, 3500)), rng.uniform(4.0, 9.0))  # clips
    a = int(rng.integers(4500, 5000))
    v = sg.add_sag(v, a, a + int(rng.integers(1500, 3000)), (0.5, 0.7, 0.95))
    v = sg.add_ring(v, int(rng.integers(9000, 9500)), rng.uniform(300, 900), 0.6, 0.008)
    b = int(rng.integers(11500, 12000))
    v[b : b + 2000] *= 1.2
    return sg.to_counts(v)


# ----------------------------------------------------------------------------- twins


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chain_matches_twin_on_disturbed_mains(seed):
    counts = disturbed(seed)
    scale = [sg.SCALE] * 3
    got, env = run_chain(counts, scale, sg.FS, sg.F0, sg.VN, frame=256)
    want, want_env = chain_reference(counts, np.asarray(scale), sg.FS, sg.F0, sg.VN)
    assert_same_events([as_reference_layout(e) for e in got], want)
    assert_same_envelope(env, want_env)
    kinds = {e[kn.E_KIND] for e in got}
    assert {kn.K_IMPULSE, kn.K_DIP, kn.K_SWELL, kn.K_OSCILLATORY} <= kinds
    assert any(e[kn.E_KIND] == kn.K_IMPULSE and e[kn.E_CLIPS] > 0 for e in got)


@pytest.mark.parametrize("seed", range(6))
def test_chain_matches_twin_on_random_input(seed):
    """Random walks, bursts of noise and full-scale runs: whatever the state machines meet."""
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(300, 3000))
    fs = float(rng.choice([800.0, 1200.0, 2400.0, 12800.0]))
    f0 = float(rng.choice([50.0, 60.0]))
    k = int(rng.integers(1, 4))
    counts = rng.integers(-32768, 32768, size=(n, k)).astype(np.int16)
    if seed % 2:
        counts = np.cumsum(rng.integers(-3000, 3000, size=(n, k)), axis=0)
        counts = np.clip(counts, -32768, 32767).astype(np.int16)
    counts[rng.integers(0, n, 20), rng.integers(0, k, 20)] = 32767
    counts[rng.integers(0, n, 20), rng.integers(0, k, 20)] = -32768
    scale = rng.uniform(0.005, 0.05, k)
    got, env = run_chain(counts, scale, fs, f0, 230.0, frame=int(rng.integers(1, 500)))
    want, want_env = chain_reference(counts, scale, fs, f0, 230.0)
    assert_same_events([as_reference_layout(e) for e in got], want)
    assert_same_envelope(env, want_env)


@pytest.mark.parametrize(
    "name, counts",
    [
        ("zeros", np.zeros((2000, 3), dtype=np.int16)),
        ("full scale", np.full((2000, 2), 32767, dtype=np.int16)),
        ("negative full scale", np.full((900, 1), -32768, dtype=np.int16)),
        ("square wave", np.tile(np.repeat(np.array([20000, -20000], np.int16), 128), 12)[:, None]),
        ("single sample", np.array([[123]], dtype=np.int16)),
    ],
)
def test_chain_matches_twin_on_edge_cases(name, counts):
    scale = np.full(counts.shape[1], sg.SCALE)
    got, env = run_chain(counts, scale, sg.FS, sg.F0, sg.VN, frame=97)
    want, want_env = chain_reference(counts, scale, sg.FS, sg.F0, sg.VN)
    assert_same_events([as_reference_layout(e) for e in got], want)
    assert_same_envelope(env, want_env)


def test_odd_cycle_length_and_low_rate_match_twin():
    rng = np.random.default_rng(7)
    for fs, f0 in ((12800.0, 60.0), (600.0, 50.0), (2401.0, 50.0)):
        n = int(fs * 1.5)
        v = sg.mains(n, rng, fs=fs, f0=f0)
        v = sg.add_sag(v, n // 3, n // 2, (0.3, 0.8, 1.0))
        v[n // 4, :] += 3 * sg.VPK
        counts = sg.to_counts(v)
        got, env = run_chain(counts, [sg.SCALE] * 3, fs, f0, sg.VN, frame=256)
        want, want_env = chain_reference(counts, np.full(3, sg.SCALE), fs, f0, sg.VN)
        assert_same_events([as_reference_layout(e) for e in got], want)
        assert_same_envelope(env, want_env)
        if fs < 4000:  # an impulse cannot be resolved at relay-record rates
            assert not any(e[kn.E_KIND] == kn.K_IMPULSE for e in got)


# ----------------------------------------------------------------------------- frames


@pytest.mark.parametrize("seed", [11, 12])
def test_frames_of_1_7_256_4096_give_the_same_events(seed):
    counts = disturbed(seed)
    scale = [sg.SCALE] * 3
    results = {f: run_chain(counts, scale, sg.FS, sg.F0, sg.VN, frame=f) for f in (1, 7, 256, 4096)}
    ref_events, ref_env = results[4096]
    assert len(ref_events) >= 8
    for f, (events, env) in results.items():
        key = sorted(events, key=lambda e: (e[0], e[2], e[1]))
        assert key == sorted(ref_events, key=lambda e: (e[0], e[2], e[1])), f"frames of {f}"
        assert sorted(env) == sorted(ref_env), f"envelope with frames of {f}"


def test_one_block_longer_than_the_scratch_equals_frames():
    counts = np.concatenate([disturbed(21), disturbed(22)])  # 2.4 s: > CHUNK per call
    assert counts.shape[0] > kn.CHUNK
    scale = [sg.SCALE] * 3
    whole = run_chain(counts, scale, sg.FS, sg.F0, sg.VN, frame=counts.shape[0])
    framed = run_chain(counts, scale, sg.FS, sg.F0, sg.VN, frame=256)
    assert sorted(whole[0]) == sorted(framed[0])
    assert sorted(whole[1]) == sorted(framed[1])


# ----------------------------------------------------------------------------- behaviour


def test_an_impulse_is_patched_out_of_the_reference_cycle():
    """A lone impulse is one event, not an impulse and its mirror image a cycle later."""
    rng = np.random.default_rng(3)
    v = sg.add_impulse(sg.mains(4000, rng), 1500, 1.2)
    events, _ = run_chain(sg.to_counts(v), [sg.SCALE] * 3, sg.FS, sg.F0, sg.VN, frame=256)
    assert [e[kn.E_KIND] for e in events] == [kn.K_IMPULSE] * 3
    assert {e[kn.E_START] for e in events} == {1501}  # the double exponential is 0 at arrival


def test_quiet_mains_give_no_events_and_track_frequency_and_rms():
    rng = np.random.default_rng(5)
    counts = sg.to_counts(sg.mains(sg.FS * 2, rng, f0=50.2))
    chain = WaveformChain(3, sg.FS, sg.F0, sg.VN)
    ev_i, _, _, env_rms, env_freq = chain.process(counts, np.arange(3), np.full(3, sg.SCALE))
    assert ev_i.shape[0] == 0 and chain.open_count == 0
    np.testing.assert_allclose(chain.frequency_hz(), 50.2, atol=0.02)
    np.testing.assert_allclose(env_freq[-1], 50.2, atol=0.02)
    # RMS of sin + 2 % + 3 % harmonics: sqrt(1 + 0.02² + 0.03²) ≈ 1.00065
    np.testing.assert_allclose(env_rms[-1], 1.00065, atol=0.004)


def test_reset_ends_open_events_as_truncated():
    rng = np.random.default_rng(8)
    v = sg.add_sag(sg.mains(3000, rng), 1000, 3000, (0.5, 0.5, 0.5))
    chain = WaveformChain(3, sg.FS, sg.F0, sg.VN)
    ev_i, *_ = chain.process(sg.to_counts(v), np.arange(3), np.full(3, sg.SCALE))
    assert not (ev_i[:, kn.E_KIND] == kn.K_DIP).any()
    assert chain.any_rms_open() and chain.open_count == 3
    ev_i, ev_f = chain.reset()
    dips = ev_i[ev_i[:, kn.E_KIND] == kn.K_DIP]
    assert len(dips) == 3 and (dips[:, kn.E_TRUNC] == 1).all()
    np.testing.assert_allclose(ev_f[ev_i[:, kn.E_KIND] == kn.K_DIP, kn.EF_RMS], 0.5, atol=0.01)
    assert not chain.any_rms_open()


def test_too_slow_a_rate_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="samples per"):
        WaveformChain(3, 100.0, 50.0, 230.0)
