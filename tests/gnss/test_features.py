"""ReceiverMonitor: GSV groups, sources, position reference, clock steps, own flags, MON-HW."""

from __future__ import annotations

import math

import pytest

from fusion.config import Sensor
from fusion.geo import EnuFrame
from fusion.gnss import kernels as K
from fusion.gnss.features import ReceiverMonitor
from fusion.gnss.settings import GnssSettings
from fusion.records import GnssMessage

NS = 1_000_000_000
T0 = 1_767_686_400.0
SURVEYED = Sensor("gnss-1", "gnss", "serial", 52.0, 4.0, 60.0, port="/dev/ttyACM0")
UNSURVEYED = Sensor("gnss-1", "gnss", "serial", port="/dev/ttyACM0")
MOBILE = Sensor("gnss-1", "gnss", "serial", 52.0, 4.0, 60.0, port="/dev/ttyACM0", mobile=True)


def msg(t: float, ident: str, protocol: str = "NMEA", raw: bytes = b"", **fields) -> GnssMessage:
    t_ns = round((T0 + t) * NS)
    return GnssMessage("gnss-1", t_ns, t_ns, protocol, ident, fields, raw)


def gsv(t: float, talker: str, num: int, idx: int, sats: list[tuple[int, int, object]], signal="1"):
    f = {"numMsg": num, "msgNum": idx, "numSV": 4 * num, "talker": talker, "signalID": signal}
    for i, (sv, el, cno) in enumerate(sats, start=1):
        f.update({f"svid_{i:02d}": sv, f"elv_{i:02d}": el, f"az_{i:02d}": 100, f"cno_{i:02d}": cno})
    return msg(t, "GSV", **f)


def sky(t: float, drop: float = 0.0) -> list[GnssMessage]:
    """One epoch of a two-constellation NMEA sky: GP in 2 sentences, GA in 1."""
    gp = [(sv, 10 + 8 * sv, round(35 + 0.4 * sv - drop)) for sv in range(1, 9)]
    ga = [(sv, 20 + 10 * sv, round(38 + 0.3 * sv - drop)) for sv in range(1, 5)]
    return [
        gsv(t, "GP", 2, 1, gp[:4]),
        gsv(t, "GP", 2, 2, gp[4:]),
        gsv(t, "GA", 1, 1, ga, signal="7"),
    ]


def test_gsv_groups_are_judged_when_complete_and_keyed_by_talker_and_signal():
    m = ReceiverMonitor(UNSURVEYED, GnssSettings())
    first, second, third = sky(0.0)
    assert not m.on_message(first)  # the group is not complete yet
    assert m.on_message(second)
    assert m.cn0[K.F_TRACKED] == 8
    assert m.on_message(third)
    assert m.cn0[K.F_TRACKED] == 12 and m.cn0_source == "GSV"
    # An empty SNR is an untracked satellite.
    m.on_message(
        gsv(1.0, "GA", 1, 1, [(1, 30, ""), (2, 40, 39), (3, 50, 39), (4, 60, 40)], signal="7")
    )
    assert m.cn0[K.F_TRACKED] == 11


def test_a_common_drop_across_the_sky_is_a_cn0_drop_after_persistence():
    m = ReceiverMonitor(UNSURVEYED, GnssSettings())
    for k in range(10):
        for g in sky(float(k)):
            m.on_message(g)
    assert not m.cn0_drop.active and abs(m.cn0[K.F_MED_RES]) < 0.5
    for k in range(10, 13):
        for g in sky(float(k), drop=6.0):
            m.on_message(g)
    assert m.cn0_drop.active and m.cn0_drop.onset == pytest.approx(T0 + 10.0)
    assert m.cn0[K.F_MED_RES] == pytest.approx(-6.0, abs=0.6)
    assert m.suspect  # baselines stop learning
    base_before = m.sats.base.copy()
    for g in sky(13.0, drop=6.0):
        m.on_message(g)
    assert (m.sats.base == base_before).all()


def test_ubx_satellite_reports_take_precedence_over_gsv():
    from tests.gnss.test_ubx_blocks import NAV_SAT

    m = ReceiverMonitor(UNSURVEYED, GnssSettings())
    _, raw = NAV_SAT[0]
    assert m.on_message(msg(0.0, "NAV-SAT", "UBX", raw))
    n = m.cn0[K.F_TRACKED]
    assert m.cn0_source == "NAV-SAT" and n > 0
    assert not m.on_message(sky(1.0)[2])  # ignored while NAV-SAT arrives
    assert m.cn0_source == "NAV-SAT"


def fix(t: float, lat: float, lon: float, h: float = 60.0, h_acc_mm: int = 1500) -> GnssMessage:
    return msg(
        t,
        "NAV-PVT",
        "UBX",
        fixType=3,
        gnssFixOk=1,
        numSV=12,
        hAcc=h_acc_mm,
        lat=lat,
        lon=lon,
        height=int(h * 1000),
    )


def offset_fix(t: float, east_m: float, north_m: float, origin=(52.0, 4.0, 60.0)) -> GnssMessage:
    lat, lon, h = EnuFrame(*origin).to_geodetic(east_m, north_m, 0.0)
    return fix(t, float(lat), float(lon), float(h))


def test_surveyed_position_offset_and_displacement_after_persistence():
    m = ReceiverMonitor(SURVEYED, GnssSettings())
    assert m.reference_source == "survey"
    m.on_message(offset_fix(0.0, 3.0, 4.0))
    assert m.offset.horizontal_m == pytest.approx(5.0, abs=0.01)
    assert m.offset.limit_m == 50.0  # max(50 m, 5 x 1.5 m)
    for k in range(1, 6):
        m.on_message(offset_fix(float(k), 80.0 + k, 0.0))
    assert m.displaced.active and m.offset.rate_mps == pytest.approx(80 / 5, rel=0.3)


def test_self_survey_learns_the_median_then_judges():
    m = ReceiverMonitor(UNSURVEYED, GnssSettings(self_survey_s=10.0))
    assert m.reference is None
    for k in range(12):
        m.on_message(offset_fix(float(k), 1.0 if k % 2 else -1.0, 0.0))
    assert m.reference_source == "self-survey"
    m.on_message(offset_fix(12.0, 20.0, 0.0))
    assert m.offset.horizontal_m == pytest.approx(20.0, abs=1.5)


def test_mobile_receivers_have_no_reference_position():
    m = ReceiverMonitor(MOBILE, GnssSettings())
    for k in range(5):
        m.on_message(offset_fix(float(k), 1000.0 * k, 0.0))
    assert m.reference is None and not m.displaced.active and math.isnan(m.offset.horizontal_m)


def clock(t: float, itow_ms: int, bias: float, drift: float) -> GnssMessage:
    return msg(t, "NAV-CLOCK", "UBX", iTOW=itow_ms, clkB=bias, clkD=drift, tAcc=20, fAcc=300)


def test_clock_steps_against_the_drift_and_millisecond_resets():
    m = ReceiverMonitor(SURVEYED, GnssSettings())
    m.on_message(fix(0.0, 52.0, 4.0))
    bias = 400_000.0
    for k in range(5):
        m.on_message(clock(float(k), 1000 * k, bias + 90.0 * k, 90.0))
    assert m.clock_step(T0 + 5.0) is None  # bias follows its drift
    # A receiver that does not steer its clock steps back by 1 ms: not an attack.
    m.on_message(clock(5.0, 5000, bias + 450.0 - 1_000_000.0, 90.0))
    assert m.clock_step(T0 + 5.0) is None
    m.on_message(clock(6.0, 6000, bias + 540.0 - 1_000_000.0 + 7_000.0, 90.0))
    step = m.clock_step(T0 + 6.0)
    assert step is not None and step.step_ns == pytest.approx(7_000.0)
    assert m.clock_step(T0 + 6.0 + 29.0) is step and m.clock_step(T0 + 6.0 + 31.0) is None


def test_own_flags_count_within_the_window():
    m = ReceiverMonitor(SURVEYED, GnssSettings())
    m.on_message(msg(0.0, "NAV-STATUS", "UBX", gpsFix=3, gpsFixOk=1, spoofDetState=2))
    assert m.flags("spoof", 0.0 + T0) == []
    m.on_message(msg(4.0, "NAV-STATUS", "UBX", gpsFix=3, gpsFixOk=1, spoofDetState=3))
    assert len(m.flags("spoof", T0 + 4.0)) == 2
    assert m.flags("spoof", T0 + 30.0) == []
    m.on_message(msg(5.0, "SEC-SIG", "UBX", version=1, jammingState=2, spoofingState=1))
    m.on_message(msg(6.0, "SEC-SIG", "UBX", version=1, jammingState=3, spoofingState=1))
    assert m.flags("jam", T0 + 6.0) == ["SEC-SIG jammingState 2", "SEC-SIG jammingState 3"]


def test_mon_hw_is_one_rf_block_and_a_power_rise_is_seen():
    m = ReceiverMonitor(SURVEYED, GnssSettings())
    for k in range(10):
        m.on_message(
            msg(
                float(k),
                "MON-HW",
                "UBX",
                agcCnt=4000 + (k % 3),
                jamInd=12,
                noisePerMS=90,
                jammingState=1,
                aStatus=2,
            )
        )
    assert list(m.blocks) == [-1] and m.power_known(T0 + 9.0) and not m.power_rose(T0 + 9.0)
    m.on_message(
        msg(10.0, "MON-HW", "UBX", agcCnt=3500, jamInd=40, noisePerMS=95, jammingState=1, aStatus=2)
    )
    b = m.blocks[-1]
    assert b.drop and b.jam_up and m.power_rose(T0 + 10.0)
    assert b.agc_change == pytest.approx(-0.125, abs=0.01)
    m.on_message(
        msg(11.0, "MON-HW", "UBX", agcCnt=4000, jamInd=12, noisePerMS=90, jammingState=1, aStatus=4)
    )
    assert m.antenna_fault(T0 + 11.0) == "open"


def test_bad_contents_are_one_ignored_report():
    m = ReceiverMonitor(SURVEYED, GnssSettings())
    assert not m.on_message(msg(0.0, "NAV-SAT", "UBX", b"\xb5\x62\x01\x35\x01\x00\x00\x00\x00"))
    assert not m.on_message(msg(0.0, "GGA"))  # unparsed: no fields
    assert m.messages == 2
