"""Spoofing present from the first byte: the static sky check and the ``spoofed_start`` scenario.

A receiver fed by a signal simulator from power-on has no onset to see and
no authentic history to learn: it must be judged from each epoch alone. The
unit tests drive ``ReceiverMonitor`` with hand-made NMEA/UBX reports (flat and
real-shaped skies, too few satellites, a narrow patch of sky, no fix, a
stray satellite, satellites below the horizon, a timing receiver's time-only
fix); the scenario tests replay ``spoofed_start`` (seeds 1-5: UBX and
NMEA-only receivers, one or both receivers fed, different power levels and
added spread) and require ``gnss_spoofing`` within 10 s of the first fix.
"""

from __future__ import annotations

import numpy as np
import pytest

from fusion.config import Sensor
from fusion.gnss import kernels as K
from fusion.gnss.features import ReceiverMonitor
from fusion.gnss.settings import GnssSettings
from fusion.records import GnssMessage

NS = 1_000_000_000
T0 = 1_767_686_400.0
UNSURVEYED = Sensor("gnss-1", "gnss", "serial", port="/dev/ttyACM0")
SEEDS = range(1, 6)
DURATION_S = 120.0


def msg(t: float, ident: str, protocol: str = "NMEA", **fields) -> GnssMessage:
    t_ns = round((T0 + t) * NS)
    return GnssMessage("gnss-1", t_ns, t_ns, protocol, ident, fields, b"")


def gga(t: float, quality: int = 1) -> GnssMessage:
    return msg(t, "GGA", quality=quality, HDOP=0.9, lat=52.0, lon=4.0, alt=20.0, sep=46.0, numSV=10)


def gsv_group(t: float, sats: list[tuple[float, float]], talker: str = "GP") -> list[GnssMessage]:
    """One complete GSV group of (elevation, C/N0) satellites, four per sentence."""
    n_msg = max(1, (len(sats) + 3) // 4)
    out = []
    for m in range(n_msg):
        f: dict = {"numMsg": n_msg, "msgNum": m + 1, "talker": talker, "signalID": "1"}
        for i, (el, cno) in enumerate(sats[4 * m : 4 * m + 4], start=1):
            sv = 4 * m + i
            f.update({f"svid_{i:02d}": sv, f"elv_{i:02d}": el, f"az_{i:02d}": 40 * sv})
            f[f"cno_{i:02d}"] = cno
        out.append(msg(t, "GSV", **f))
    return out


def flat_sky(n: int = 12, lo: float = 8.0, hi: float = 80.0, level: float = 44.0):
    """A simulator: every satellite at one C/N0 (integer NMEA values, a 1 dB wobble)."""
    return [(round(e), level + (k % 2)) for k, e in enumerate(np.linspace(lo, hi, n))]


def real_sky(n: int = 12, seed: int = 0):
    """A real sky's shape: +0.15 dB/deg with 3 dB of scatter."""
    rng = np.random.default_rng(seed)
    els = np.linspace(8.0, 80.0, n)
    return [(round(e), round(33 + 0.15 * e + rng.normal(0, 3))) for e in els]


def feed(m: ReceiverMonitor, epochs: int, sats, fix: bool = True, t0: float = 0.0) -> list[bool]:
    active = []
    for k in range(epochs):
        t = t0 + k
        if fix:
            m.on_message(gga(t))
        for g in gsv_group(t, sats):
            m.on_message(g)
        active.append(m.flat_sky.active)
    return active


def test_a_flat_sky_with_a_fix_is_flagged_after_three_epochs():
    m = ReceiverMonitor(UNSURVEYED, GnssSettings())
    assert feed(m, 4, flat_sky()) == [False, False, True, True]
    assert m.flat_sky.onset == pytest.approx(T0)
    assert m.sky[K.S_N] == 12 and m.sky[K.S_SPREAD] <= 0.6 and m.sky[K.S_SPAN] >= 70
    assert m.suspect  # nothing is learned from what a simulator says


def test_a_real_shaped_sky_is_not_flat():
    for seed in range(5):
        m = ReceiverMonitor(UNSURVEYED, GnssSettings())
        assert not any(feed(m, 5, real_sky(seed=seed)))
        assert m.sky[K.S_SLOPE] > 0.05 or m.sky[K.S_SPREAD] > 1.5


@pytest.mark.parametrize(
    ("sats", "fix"),
    [
        (flat_sky(n=5), True),  # too few satellites to judge
        (flat_sky(lo=40.0, hi=65.0), True),  # a patch of sky: an obstructed antenna
        (flat_sky(), False),  # no fix: the elevations mean nothing yet
    ],
    ids=["five-satellites", "narrow-span", "no-fix"],
)
def test_the_sky_is_not_judged_without_enough_of_it(sats, fix):
    m = ReceiverMonitor(UNSURVEYED, GnssSettings())
    assert not any(feed(m, 5, sats, fix=fix))


def test_a_flat_but_elevation_following_sky_is_not_flat():
    # 1.2 dB of spread that rises 0.07 dB/deg with elevation is a clean real sky, not a simulator.
    sats = [(round(e), 40.0 + 0.07 * (e - 44)) for e in np.linspace(20, 68, 10)]
    m = ReceiverMonitor(UNSURVEYED, GnssSettings())
    assert not any(feed(m, 5, sats))
    assert m.sky[K.S_SPREAD] <= 1.5 and m.sky[K.S_SLOPE] > 0.05


def test_one_stray_satellite_does_not_hide_a_simulator():
    sats = [*flat_sky(), (30, 24.0)]  # e.g. one authentic satellite still tracked
    m = ReceiverMonitor(UNSURVEYED, GnssSettings())
    assert feed(m, 4, sats)[-1]
    assert m.sky[K.S_N] == 13 and m.sky[K.S_KEPT] == 12


def test_satellites_tracked_below_the_horizon_are_evidence():
    s = GnssSettings()
    below = [*real_sky(), (-11, 38.0), (-14, 37.0)]
    m = ReceiverMonitor(UNSURVEYED, s)
    feed(m, 3, below)
    assert m.below_horizon.active and m.sky[K.S_BELOW] == 2 and m.sky[K.S_MIN_ELEV] == -14
    # One satellite, or satellites just under the horizon (a mast, refraction), are not.
    for sats in ([*real_sky(), (-11, 38.0)], [*real_sky(), (-3, 38.0), (-4, 36.0)]):
        m = ReceiverMonitor(UNSURVEYED, s)
        feed(m, 4, sats)
        assert not m.below_horizon.active


def test_a_timing_receivers_time_only_fix_is_judged():
    m = ReceiverMonitor(UNSURVEYED, GnssSettings())
    pvt = {"gnssFixOk": 1, "fixType": 5, "numSV": 12, "hAcc": 1000, "lat": 52.0, "lon": 4.0}
    for k in range(4):
        m.on_message(msg(float(k), "NAV-PVT", "UBX", height=60_000, **pvt))
        for g in gsv_group(float(k), flat_sky()):
            m.on_message(g)
    assert not m.fix.ok and m.flat_sky.active


# --- the spoofed_start scenario ---------------------------------------------------------------


def fed_receivers(seed: int) -> set[str]:
    return {"gnss-1"} if seed % 3 == 0 else {"gnss-1", "gnss-2"}


@pytest.mark.parametrize("seed", SEEDS)
def test_spoofed_start_is_alerted_within_10_s_of_the_first_fix(scenario_run, seed):
    run = scenario_run("spoofed_start", seed, DURATION_S)
    result = run.score()
    (row,) = [r for r in result["truth_rows"] if r["kind"] == "gnss_spoofing"]
    assert row["detected"] and row["timely"], row
    assert 0.0 <= row["latency_raw_s"] <= 10.0, row
    kinds = result["kinds"]["gnss_spoofing"]
    assert kinds["false_alarms"] == 0 and kinds["duplicates"] == 0
    assert not run.of_kind("gnss_jamming")
    spoof = run.of_kind("gnss_spoofing")
    assert len({a.incident_id for a in spoof}) == 1
    first = spoof[0]
    assert first.state == "open" and "cn0_flat" in first.details["evidence_families"]
    # Only the receivers the simulator feeds are named, and in time every one of them is.
    named = {r for a in spoof for r in a.details["receivers"]}
    assert named == fed_receivers(seed)
    for e in first.details["evidence"]:
        if e["feature"] == "cn0_flat_sky":
            assert e["value"] <= 1.5 and e["satellites"] >= 6 and e["elevation_span_deg"] >= 30
    nmea_only = seed % 2 == 1
    assert (run.detector.receivers["gnss-1"].cn0_source == "GSV") == nmea_only
