"""Simulated GNSS receivers, read back with plain pyubx2/pynmeagps (no project decoder)."""

from __future__ import annotations

import io
import math
from collections import Counter, defaultdict

import numpy as np
import pytest
from pynmeagps import NMEAMessage, NMEAReader
from pyubx2 import UBXMessage, UBXReader

from drivers.simulated.base import NS, JammingEpisode, SimContext, SpoofingEpisode
from drivers.simulated.gnss import GEOID_SEP_M, simulate_gnss
from drivers.simulated.site import SIM_T0_NS, sim_site
from fusion.geo import EnuFrame

SITE = sim_site()
GNSS_SENSORS = [s for s in SITE.sensors if s.kind == "gnss"]
JAM = JammingEpisode("jammer-1", t_start_s=20.0, t_end_s=60.0, peak_jn_db=40.0, ramp_s=10.0)
SPOOF = SpoofingEpisode(
    "spoofer-1",
    t_start_s=70.0,
    t_end_s=115.0,
    drift_mps=3.0,
    clock_jump_ns=2500.0,
    power_advantage_db=6.0,
)
DURATION_S = 120.0
UBX_PER_EPOCH = ("NAV-PVT", "NAV-SAT", "NAV-STATUS", "NAV-CLOCK", "MON-RF")


def run(seed: int = 11, duration_s: float = DURATION_S, jamming=(JAM,), spoofing=(SPOOF,)):
    ctx = SimContext(SITE, SIM_T0_NS, duration_s, seed)
    return simulate_gnss(ctx, list(SITE.sensors), list(jamming), list(spoofing))


@pytest.fixture(scope="module")
def out():
    return run()


def read_strict(data: bytes) -> list[tuple[bytes, object]]:
    """Every frame through pyubx2 with checksums validated; any error fails (quitonerror=2)."""
    frames = list(UBXReader(io.BytesIO(data), protfilter=7, quitonerror=2, validate=1))
    assert sum(len(raw) for raw, _ in frames) == len(data)  # no byte outside a frame
    return frames


@pytest.fixture(scope="module")
def epochs(out):
    """gnss-1's serial stream, decoded and grouped per epoch (by iTOW / NMEA time)."""
    data = b"".join(r.payload for r in out.feeds if r.channel == "gnss-1")
    per: list[dict] = []
    for _raw, msg in read_strict(data):
        if msg.identity == "NAV-PVT":
            per.append(defaultdict(list))
        per[-1][msg.identity].append(msg)
    return per


def scenario_t(k: int) -> float:
    return k + (-(-SIM_T0_NS // NS) * NS - SIM_T0_NS) / NS


def cnos(sat) -> list[int]:
    return [getattr(sat, f"cno_{i:02d}") for i in range(1, sat.numSvs + 1)]


def test_serial_stream_has_every_message_each_epoch(out, epochs) -> None:
    assert len(epochs) == DURATION_S
    for ep in epochs:
        for ident in (*UBX_PER_EPOCH, "GNRMC", "GNGGA"):
            assert len(ep[ident]) == 1, ident
        assert len(ep["GNGSA"]) >= 2 and len(ep["GPGSV"]) >= 1 and len(ep["GAGSV"]) >= 1
        gsv = ep["GPGSV"][0]
        assert len(ep["GPGSV"]) == gsv.numMsg and gsv.signalID == "1"
    itow = [ep["NAV-PVT"][0].iTOW for ep in epochs]
    assert np.all(np.diff(itow) == 1000)


def test_mqtt_receiver_publishes_one_payload_per_epoch(out) -> None:
    rows = [r for r in out.feeds if r.transport == "mqtt"]
    assert {r.channel for r in rows} == {"rampart/sim-site/gnss/gnss-2/raw"}
    assert len(rows) == DURATION_S
    for r in rows[:5]:
        ids = Counter(msg.identity for _, msg in read_strict(r.payload))
        assert all(ids[i] == 1 for i in UBX_PER_EPOCH)


def test_serial_chunks_follow_the_baud_rate(out) -> None:
    rows = [r for r in out.feeds if r.channel == "gnss-1"]
    assert all(r.transport == "serial" for r in rows)
    t = np.array([r.t_rx_ns for r in rows])
    assert np.all(np.diff(t) >= 0)
    sizes = np.array([len(r.payload) for r in rows])
    assert sizes.max() <= 512 and np.median(sizes) >= 32
    # Within an epoch consecutive reads are spaced by their size at 115200 baud (10 bits
    # a byte), give or take the driver's read jitter.
    gaps = np.diff(t)
    inside = gaps < 0.5 * NS
    expected = sizes[1:] * 10 * NS / 115200
    assert np.all(np.abs(gaps[inside] - expected[inside]) < 1.5e6)
    # Each epoch's first read arrives 50-90 ms (+ transmission) after the epoch.
    first = t[np.concatenate(([True], ~inside))]
    lag = (first - SIM_T0_NS) % NS
    assert np.all((lag > 50e6) & (lag < 90e6 + 512 * 10 * NS / 115200 + 2e6))


def test_quiet_sky_is_plausible(epochs) -> None:
    frame = EnuFrame(
        SITE.sensor("gnss-1").lat, SITE.sensor("gnss-1").lon, SITE.sensor("gnss-1").alt_m
    )
    errors = []
    for ep in epochs[:20]:
        pvt, sat = ep["NAV-PVT"][0], ep["NAV-SAT"][0]
        assert pvt.fixType == 3 and pvt.gnssFixOk == 1 and pvt.numSV >= 8
        assert 12 <= sat.numSvs <= 30
        c = np.array(cnos(sat))
        el = np.array([getattr(sat, f"elev_{i:02d}") for i in range(1, sat.numSvs + 1)])
        assert np.all(el >= 5) and 35 <= np.median(c) <= 50
        assert np.corrcoef(el, c)[0, 1] > 0.3  # lower C/N0 at low elevation
        x, y, _z = frame.to_enu(pvt.lat, pvt.lon, pvt.height / 1000.0)
        errors.append(math.hypot(float(x), float(y)))
        gga = ep["GNGGA"][0]
        # NMEA altitude is MSL; with its geoid separation it is the ellipsoidal height.
        assert gga.sep == GEOID_SEP_M and abs(gga.alt + gga.sep - pvt.height / 1000.0) < 0.06
        rf = ep["MON-RF"][0]
        assert (
            rf.nBlocks == 2
            and rf.jammingState_01 == 1
            and rf.jamInd_01 < 40
            and rf.agcCnt_01 > 4000
        )
        assert ep["NAV-STATUS"][0].spoofDetState == 1
    assert 0.2 < np.sqrt(np.mean(np.square(errors))) < 4.0


def test_jamming_lowers_cn0_by_the_jn_based_amount(epochs) -> None:
    quiet = np.mean([np.median(cnos(ep["NAV-SAT"][0])) for ep in epochs[10:20]])
    checked = 0
    for k in range(20, 30):
        jn = float(JAM.jn_db(np.array([scenario_t(k)]))[0])
        loss = 10 * math.log10(1 + 10 ** (jn / 10))
        c = np.array(cnos(epochs[k]["NAV-SAT"][0]))
        if not 2.0 <= loss <= 12.0 or np.any(c == 0):
            continue  # tracked satellites only: untracked ones report 0
        assert quiet - np.median(c) == pytest.approx(loss, abs=2.0)
        checked += 1
    assert checked >= 2
    peak = epochs[40]
    assert peak["NAV-PVT"][0].fixType == 0 and peak["GNGGA"][0].quality == 0
    rf = peak["MON-RF"][0]
    assert rf.jamInd_01 > 200 and rf.agcCnt_01 < 2000 and rf.jammingState_01 == 3
    assert rf.jamInd_02 < 40  # the jammer is on L1 only
    assert all(c == 0 for c in cnos(peak["NAV-SAT"][0]))
    after = epochs[65]
    assert after["NAV-PVT"][0].fixType == 3 and after["MON-RF"][0].jammingState_01 == 1


def test_spoofing_captures_uniformly_then_drags_the_position(epochs) -> None:
    s = SITE.sensor("gnss-1")
    frame = EnuFrame(s.lat, s.lon, s.alt_m)

    def offset(k: int) -> float:
        pvt = epochs[k]["NAV-PVT"][0]
        x, y, _ = frame.to_enu(pvt.lat, pvt.lon, pvt.height / 1000.0)
        return math.hypot(float(x), float(y))

    assert offset(68) < 10.0
    captured = np.array(cnos(epochs[90]["NAV-SAT"][0]))
    authentic = np.array(cnos(epochs[68]["NAV-SAT"][0]))
    assert captured.std() < 1.0 < authentic.std()  # uniform power is the tell
    assert np.median(captured) >= np.median(authentic) + 4.0
    # All satellites captured 10 s after the start; then 3 m/s away from the truth.
    for k in (95, 105, 110):
        walked = 3.0 * (scenario_t(k) - 80.0)
        assert offset(k) == pytest.approx(walked, abs=8.0)
    assert offset(118) < 10.0  # spoofer off: back on the authentic signals
    # Clock bias jumps at full capture by clock_jump_ns (on top of the slow drift).
    clk = np.array([ep["NAV-CLOCK"][0].clkB for ep in epochs])
    steps = np.diff(clk)
    k_full = next(k for k in range(len(epochs)) if scenario_t(k) >= 80.0)
    assert steps[k_full - 1] - np.median(steps) == pytest.approx(2500, abs=40)
    states = [ep["NAV-STATUS"][0].spoofDetState for ep in epochs]
    assert set(states[:69]) == {1} and {2, 3} & set(states[70:115])
    # The spoofer's power shows in the L1 AGC, not in the jamming indicator.
    assert epochs[100]["MON-RF"][0].agcCnt_01 < epochs[68]["MON-RF"][0].agcCnt_01
    assert epochs[100]["MON-RF"][0].jamInd_01 < 60


def test_frames_match_what_pyubx2_and_pynmeagps_would_build(epochs) -> None:
    ep = epochs[3]
    for ident in ("NAV-STATUS", "NAV-CLOCK", "MON-RF"):
        msg = ep[ident][0]
        attrs = {k: v for k, v in vars(msg).items() if not k.startswith("_")}
        rebuilt = UBXMessage(msg.msg_cls, msg.msg_id, 0, **attrs).serialize()
        assert rebuilt == msg.serialize()
    # pyubx2 truncates scaled fields when it re-serializes floats (one LSB off), so
    # compare values within one LSB of each scaled field, exactly for the rest.
    lsb = {
        "lat": 1e-7,
        "lon": 1e-7,
        "headMot": 1e-5,
        "headAcc": 1e-5,
        "headVeh": 1e-5,
        "pDOP": 0.01,
    }
    for ident in ("NAV-PVT", "NAV-SAT"):
        msg = ep[ident][0]
        attrs = {k: v for k, v in vars(msg).items() if not k.startswith("_")}
        again = UBXReader.parse(UBXMessage(msg.msg_cls, msg.msg_id, 0, **attrs).serialize())
        for k, v in attrs.items():
            tol = 0.1 if k.startswith("prRes") else lsb.get(k, 0.0)
            assert getattr(again, k) == pytest.approx(v, abs=tol * 1.01), (ident, k)
    for ident in ("GNRMC", "GNGGA", "GNGSA", "GPGSV", "GAGSV"):
        msg = ep[ident][0]
        raw = msg.serialize()
        fields = raw[1 : raw.rfind(b"*")].decode().split(",")[1:]
        assert NMEAMessage(msg.talker, msg.msgID, 0, payload=fields).serialize() == raw
        assert NMEAReader.parse(raw, validate=1).identity == ident


def test_truth_rows_once_per_episode(out) -> None:
    assert len(out.truth) == 2  # two receivers, still one row per episode
    jam, spoof = out.truth
    # J/N ramps -10 -> 40 dB over 10 s: +3 dB after 13/50 of the ramp.
    assert jam.object_id == "jammer-1" and jam.kind == "gnss_jamming" and jam.must_alert
    assert jam.t_start_ns == SIM_T0_NS + 22_600_000_000
    assert jam.t_end_ns == SIM_T0_NS + 57_400_000_000
    assert jam.deadline_ns == jam.t_start_ns + 10 * NS
    assert spoof.object_id == "spoofer-1" and spoof.kind == "gnss_spoofing" and spoof.must_alert
    assert (spoof.t_start_ns, spoof.t_end_ns) == (SIM_T0_NS + 70 * NS, SIM_T0_NS + 115 * NS)
    assert spoof.deadline_ns == spoof.t_start_ns + 30 * NS
    weak = JammingEpisode("weak", 10.0, 50.0, peak_jn_db=2.0)
    assert run(duration_s=5.0, jamming=[weak], spoofing=[]).truth == []


def test_same_seed_same_bytes_other_seed_differs() -> None:
    a, b, c = (
        run(seed=5, duration_s=20.0),
        run(seed=5, duration_s=20.0),
        run(seed=6, duration_s=20.0),
    )
    assert a.feeds == b.feeds and a.truth == b.truth
    assert [r.payload for r in a.feeds] != [r.payload for r in c.feeds]
    assert a.truth == c.truth  # truth does not depend on the random streams


def test_other_sensor_kinds_are_ignored() -> None:
    ctx = SimContext(SITE, SIM_T0_NS, 3.0, 1)
    others = [s for s in SITE.sensors if s.kind != "gnss"]
    assert simulate_gnss(ctx, others, [], []).feeds == []
    only_serial = simulate_gnss(ctx, [SITE.sensor("gnss-1")], [], [])
    assert {r.channel for r in only_serial.feeds} == {"gnss-1"}
