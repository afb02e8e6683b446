"""Simulated power front-ends, read back WITHOUT the project's decoders.

Only ``cobs.cobs.decode``, ``struct``, ``zlib.crc32`` and NumPy, straight from
contract §2.5, so a mistake shared by the simulator and our decoder cannot
hide itself.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
from cobs import cobs

from drivers.simulated.base import PowerEvent, SimContext
from drivers.simulated.power import power_feed_rows, simulate_power
from drivers.simulated.site import SIM_T0_NS, sim_site

NS = 1_000_000_000
HEADER = struct.Struct("<HBBHIqIBBH")
EVENTS = [
    PowerEvent("emp-1", "emp", 10.0, ("A", "B")),
    PowerEvent("cap-1", "cap_switching", 20.0, ("A",)),
    PowerEvent("ats-1", "ats_transfer", 30.0, ("B",)),
    PowerEvent("sag-1", "sag", 40.0, ("A",)),
    PowerEvent("fault-1", "fault", 50.0, ("B",)),
]
VPK = math.sqrt(2) * 230.0


@dataclass
class Frame:
    flags: int
    board: int
    seq: int
    t0_ns: int
    fs_hz: int
    scale: np.ndarray
    counts: np.ndarray
    wire_bytes: int  # COBS-encoded length including the delimiter
    t_rx_ns: int  # receive time of the chunk that completed it


def parse_frame(data: bytes) -> tuple:
    magic, version, flags, board, seq, t0, fs, n_ch, _res, n_samp = HEADER.unpack_from(data)
    assert (magic, version) == (0x5750, 1)
    assert len(data) == 26 + 4 * n_ch + 2 * n_ch * n_samp + 4
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    assert crc == zlib.crc32(data[:-4])
    scale = np.frombuffer(data, "<f4", n_ch, 26)
    counts = np.frombuffer(data, "<i2", n_ch * n_samp, 26 + 4 * n_ch).reshape(n_samp, n_ch)
    return flags, board, seq, t0, fs, scale, counts


def serial_frames(rows, channel: str) -> list[Frame]:
    frames, pending = [], b""
    for r in rows:
        if r.channel != channel:
            continue
        assert r.transport == "serial"
        pending += r.payload
        *done, pending = pending.split(b"\x00")
        for seg in done:
            frames.append(Frame(*parse_frame(cobs.decode(seg)), len(seg) + 1, r.t_rx_ns))
    assert pending == b""
    return frames


@pytest.fixture(scope="module")
def sim():
    site = sim_site()
    ctx = SimContext(site, SIM_T0_NS, 60.0, seed=11)
    power = [s for s in site.sensors if s.kind == "power"]
    gear = [s for s in site.sensors if s.kind == "switchgear"]
    out = simulate_power(ctx, power, gear, EVENTS)
    frames = {s.id: serial_frames(out.feeds, s.id) for s in power}
    return ctx, power, gear, out, frames


def continuous(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if not f.flags & 2]


def volts(frames: list[Frame]) -> np.ndarray:
    return np.concatenate([f.counts * f.scale.astype(np.float64) for f in continuous(frames)])


def cycle_rms(frames: list[Frame], t_s: float) -> np.ndarray:
    """RMS of the 20 ms cycle (one continuous frame) starting at scenario time t_s."""
    v = volts(frames)
    i = round(t_s * 12800)
    return np.sqrt((v[i : i + 256] ** 2).mean(axis=0))


def test_every_frame_is_valid_and_contiguous(sim):
    ctx, power, _, out, frames = sim
    for s in power:
        fr = frames[s.id]
        assert [f.seq for f in fr] == list(range(len(fr)))
        assert {f.board for f in fr} == {s.board}
        cont = continuous(fr)
        assert len(cont) == 60 * 50
        assert {(f.fs_hz, f.counts.shape) for f in cont} == {(12800, (256, 3))}
        assert [f.t0_ns for f in cont] == [ctx.t0_ns + k * 20_000_000 for k in range(len(cont))]
        # the clipped flag says exactly which frames hold a full-scale sample
        for f in fr:
            assert bool(f.flags & 1) == bool(((f.counts == 32767) | (f.counts == -32768)).any())
    t_rx = [r.t_rx_ns for r in out.feeds]
    assert t_rx == sorted(t_rx)


def test_serial_timing_respects_the_baud_rate(sim):
    _, power, _, out, frames = sim
    for s in power:
        byte_ns = 10 * NS / s.baud
        fr = frames[s.id]
        for f in fr:
            # the frame is complete, then its bytes take their time on the wire
            assert f.t_rx_ns >= f.t0_ns + f.counts.shape[0] * NS // f.fs_hz + f.wire_bytes * byte_ns
        chunks = [r for r in out.feeds if r.channel == s.id]
        sizes = np.array([len(r.payload) for r in chunks])
        assert sizes.max() <= 4096
        assert len(set(sizes.tolist())) > 20  # boundaries fall anywhere
        # never more bytes received than the line could have carried
        t = np.array([r.t_rx_ns for r in chunks], dtype=np.float64)
        cum = np.cumsum(sizes)
        carried = (t - t[0]) / byte_ns + sizes[0]
        assert np.all(cum <= carried + 1)


def test_emp_clips_all_six_channels_within_a_millisecond(sim):
    ctx, power, _, out, frames = sim
    (emp,) = [t for t in out.truth if t.object_id == "emp-1"]
    assert (emp.kind, emp.must_alert, emp.deadline_ns) == (
        "power_transient_emp",
        True,
        emp.t_start_ns + 100_000_000,
    )
    first_clip = []
    for s in power:
        v_counts = np.concatenate([f.counts for f in continuous(frames[s.id])])
        clipped = (v_counts == 32767) | (v_counts == -32768)
        for k in range(3):
            idx = np.flatnonzero(clipped[:, k])
            assert len(idx) >= 1
            t = ctx.t0_ns + idx * NS // 12800
            # all clipping belongs to the impulse: nothing else reaches 2 pu
            assert np.all((t >= emp.t_start_ns - 100_000) & (t <= emp.t_start_ns + 2_000_000))
            first_clip.append(int(t[0]))
    assert max(first_clip) - min(first_clip) <= 1_000_000
    assert min(first_clip) - emp.t_start_ns <= 100_000  # within one sample period of the impulse


def test_emp_burst_frames(sim):
    _ctx, power, _, out, frames = sim
    (emp,) = [t for t in out.truth if t.object_id == "emp-1"]
    for s in power:
        bursts = [f for f in frames[s.id] if f.flags & 2]
        assert len(bursts) == 1
        b = bursts[0]
        assert b.fs_hz == 1_000_000 and b.counts.shape == (2000, 3)
        assert b.t0_ns <= emp.t_start_ns + 600_000 and b.t0_ns + 2_000_000 >= emp.t_start_ns
        v = b.counts * b.scale.astype(np.float64)
        peak = np.abs(v).max(axis=0)
        assert np.all(peak > 4 * VPK)  # the impulse, resolved at 1 us
        # rise in microseconds: from under 1 pu to near the peak within 5 samples
        k = int(np.argmax(np.abs(v[:, 0])))
        assert np.abs(v[k - 5, 0]) < 1.5 * VPK


def test_quiet_cycles_are_nominal(sim):
    _, power, _, _, frames = sim
    for s in power:
        for t in (1.0, 5.0, 15.0, 25.0, 35.0, 45.0, 58.0):
            rms = cycle_rms(frames[s.id], t)
            assert np.all(np.abs(rms / 230.0 - 1) < 0.02), (s.id, t, rms)
        v = volts(frames[s.id])[: 12800 * 5]
        # harmonics: a few per cent; fundamental near 50 Hz
        spec = np.abs(np.fft.rfft(v[:, 0] * np.hanning(len(v))))
        f = np.fft.rfftfreq(len(v), 1 / 12800)
        fund = spec[np.argmin(np.abs(f - 50))]
        assert abs(f[np.argmax(spec)] - 50.0) < 0.1
        for h in (3, 5, 7):
            ratio = spec[np.argmin(np.abs(f - 50 * h))] / fund
            assert 0.005 < ratio < 0.06, (h, ratio)


def test_sag_shows_its_retained_voltage(sim):
    ctx, _, _, out, frames = sim
    (sag,) = [t for t in out.truth if t.object_id == "sag-1"]
    assert sag.kind == "sag" and not sag.must_alert
    t0 = (sag.t_start_ns - ctx.t0_ns) / NS
    t1 = (sag.t_end_ns - ctx.t0_ns) / NS
    assert 0.1 <= t1 - t0 <= 0.5
    inside = [cycle_rms(frames["pq-a"], t) / 230.0 for t in np.arange(t0 + 0.02, t1 - 0.02, 0.02)]
    assert inside
    for r in inside:
        assert np.all((r > 0.48) & (r < 0.82)), r
        assert np.ptp(r) < 0.02  # all phases together
    assert np.all(
        np.abs(cycle_rms(frames["pq-b"], t0 + 0.04) / 230 - 1) < 0.02
    )  # other feed untouched


def test_ats_transfer_interrupts_the_feed_and_publishes_its_event(sim):
    ctx, _, _gear, out, frames = sim
    (ats,) = [t for t in out.truth if t.object_id == "ats-1"]
    assert ats.kind == "switching" and not ats.must_alert and ats.deadline_ns is None
    events = [r for r in out.feeds if r.channel == "rampart/sim-site/switchgear/ats-1/events"]
    assert {r.transport for r in events} == {"mqtt"}
    bodies = [json.loads(r.payload) for r in events]
    (body,) = [b for b in bodies if b["event"] == "ats_transfer"]
    assert body["sensor"] == "ats-1" and body["feed"] == "B" and isinstance(body["detail"], dict)
    assert isinstance(body["t"], float)
    gap_ms = body["detail"]["interruption_ms"]
    assert 80 <= gap_ms <= 150
    t_event_ns = round(body["t"] * NS)
    assert ats.t_start_ns <= t_event_ns <= ats.t_end_ns
    (row,) = [r for r in events if json.loads(r.payload)["event"] == "ats_transfer"]
    assert row.t_rx_ns >= t_event_ns
    # the waveform: near zero in the second half of the interruption, back after
    t0 = (ats.t_start_ns - ctx.t0_ns) / NS
    mid = cycle_rms(frames["pq-b"], t0 + gap_ms / 1000 - 0.03)
    assert np.all(mid < 0.25 * 230), mid
    assert np.all(np.abs(cycle_rms(frames["pq-b"], t0 + gap_ms / 1000 + 0.3) / 230 - 1) < 0.03)


def test_cap_switching_rings_above_nominal(sim):
    ctx, _, _, out, frames = sim
    (cap,) = [t for t in out.truth if t.object_id == "cap-1"]
    assert cap.kind == "switching"
    v = volts(frames["pq-a"])
    i0 = (cap.t_start_ns - ctx.t0_ns) * 12800 // NS
    window = v[i0 : i0 + 12800 // 25]  # 40 ms
    peak_pu = np.abs(window).max() / VPK
    assert 1.25 < peak_pu < 1.95
    before = v[i0 - 12800 // 10 : i0]
    assert np.abs(before).max() / VPK < 1.1
    # an oscillation of a few hundred Hz: many more sign changes of the deviation than mains
    dev = window[:, 0] - v[i0 - 256 * 2 : i0 - 256 * 2 + len(window), 0]
    crossings = np.count_nonzero(np.diff(np.sign(dev[: 12800 // 100])) != 0)  # first 10 ms
    assert crossings >= 4


def test_fault_sags_one_phase_and_swells_the_others(sim):
    ctx, _, _, out, frames = sim
    (fault,) = [t for t in out.truth if t.object_id == "fault-1"]
    assert fault.kind == "fault" and not fault.must_alert
    t0 = (fault.t_start_ns - ctx.t0_ns) / NS
    r = cycle_rms(frames["pq-b"], t0 + 0.04) / 230
    low = int(np.argmin(r))
    assert r[low] < 0.4
    assert np.all(np.delete(r, low) > 1.05)
    trips = [
        json.loads(x.payload)
        for x in out.feeds
        if x.transport == "mqtt" and b"breaker_trip" in x.payload
    ]
    assert len(trips) == 1 and trips[0]["feed"] == "B"


def test_truth_rows(sim):
    _, _, _, out, _ = sim
    kinds = {t.object_id: (t.kind, t.must_alert) for t in out.truth}
    assert kinds == {
        "emp-1": ("power_transient_emp", True),
        "cap-1": ("switching", False),
        "ats-1": ("switching", False),
        "sag-1": ("sag", False),
        "fault-1": ("fault", False),
    }
    assert all(t.t_end_ns > t.t_start_ns for t in out.truth)


def test_same_seed_same_bytes_other_seed_other_bytes():
    site = sim_site()
    power = [s for s in site.sensors if s.kind == "power"]
    gear = [s for s in site.sensors if s.kind == "switchgear"]
    events = [
        PowerEvent("emp-1", "emp", 1.0, ("A", "B")),
        PowerEvent("ats-1", "ats_transfer", 2.0, ("A",)),
    ]

    def run(seed):
        return simulate_power(SimContext(site, SIM_T0_NS, 3.0, seed=seed), power, gear, events)

    a, b, c = run(5), run(5), run(6)
    assert a.feeds == b.feeds and a.truth == b.truth
    assert a.feeds != c.feeds
    # the streaming form yields the same rows
    assert (
        list(power_feed_rows(SimContext(site, SIM_T0_NS, 3.0, seed=5), power, gear, events))
        == a.feeds
    )


def test_mqtt_front_end_sends_one_frame_per_payload():
    site = sim_site()
    pq = site.sensor("pq-a")
    mq = type(pq)(
        **{**{f: getattr(pq, f) for f in pq.__slots__}, "transport": "mqtt", "port": None}
    )
    out = simulate_power(SimContext(site, SIM_T0_NS, 1.0, seed=1), [mq], [], [])
    assert {r.channel for r in out.feeds} == {"rampart/sim-site/power/pq-a/waveform"}
    parsed = [parse_frame(r.payload) for r in out.feeds]
    assert [p[2] for p in parsed] == list(range(50))
    assert all(r.t_rx_ns > p[3] + 20_000_000 for r, p in zip(out.feeds, parsed, strict=True))
