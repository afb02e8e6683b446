"""Power stream decoders: COBS framing, resync, sequence policy, and the interop recording."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from cobs import cobs
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.power_frame import encode_frame
from drivers.power_stream import PowerMqttDecoder, PowerSerialDecoder
from drivers.topics import stream_topic
from fusion.config import Sensor, load_config
from fusion.records import PowerFrame, Rejected

DATA = Path(__file__).resolve().parents[1] / "data" / "shared"
SAMPLE = DATA / "recording-sample"

SENSOR = Sensor(id="pq-a", kind="power", transport="serial", port="/dev/null", board=1)
MQTT_SENSOR = Sensor(
    id="pq-m", kind="power", transport="mqtt", board=7, channels=("va", "vb", "vc", "in")
)
SCALE = np.array([0.02, 0.02, 0.02], dtype=np.float32)
FRAME_NS = 20_000_000
REASONS = {
    "partial",
    "bad_cobs",
    "bad_magic",
    "bad_version",
    "bad_length",
    "bad_crc",
    "truncated",
    "invalid",
    "overflow",
    "wrong_board",
    "channel_mismatch",
    "duplicate",
    "out_of_order",
}


def frame(
    seq: int, board: int = 1, n_samp: int = 16, n_ch: int = 3, counts=None, burst=False
) -> bytes:
    if counts is None:
        rng = np.random.default_rng(seq)
        counts = rng.integers(-30000, 30000, (n_samp, n_ch)).astype(np.int16)
    scale = np.full(counts.shape[1], 0.02, dtype=np.float32)
    return encode_frame(board, seq, 1_000 + seq * FRAME_NS, 12800, scale, counts, burst=burst)


def framed(data: bytes) -> bytes:
    return cobs.encode(data) + b"\x00"


def stream(seqs, **kw) -> bytes:
    return b"".join(framed(frame(s, **kw)) for s in seqs)


def feed_chunks(dec, chunks, t0: int = 0):
    out = []
    for i, c in enumerate(chunks):
        out.extend(dec.feed(c, t0 + i))
    return out


def frames_of(records):
    return [r for r in records if isinstance(r, PowerFrame)]


def rejects_of(records):
    return [r for r in records if isinstance(r, Rejected)]


# --------------------------------------------------------------------------- framing


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 8), data=st.data())
def test_any_chunking_yields_identical_frames(n, data):
    raw = stream(range(n))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(raw) - 1)), max_size=30)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    whole = PowerSerialDecoder(SENSOR, "pq-a").feed(raw, 5)
    pieces = feed_chunks(PowerSerialDecoder(SENSOR, "pq-a"), chunks)
    assert not rejects_of(whole) and not rejects_of(pieces)
    assert [f.seq for f in frames_of(pieces)] == list(range(n))
    for a, b in zip(frames_of(whole), frames_of(pieces), strict=True):
        assert (a.seq, a.t_ns, a.fs_hz, a.board) == (b.seq, b.t_ns, b.fs_hz, b.board)
        np.testing.assert_array_equal(a.counts, b.counts)
        np.testing.assert_array_equal(a.scale, b.scale)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(2, 8),
    garbage=st.lists(st.binary(max_size=40), min_size=8, max_size=8),
    chunk=st.integers(1, 200),
)
def test_garbage_between_frames_never_loses_the_frames_around_it(n, garbage, chunk):
    """Garbage before frame i costs at most frame i, and not even that if it ends in 0x00.

    COBS cannot tell garbage without a delimiter from the start of the next
    frame, so the two arrive as one bad segment; every other frame survives.
    """
    raw = b"".join(garbage[i] + framed(frame(i)) for i in range(n))
    out = feed_chunks(
        PowerSerialDecoder(SENSOR, "pq-a"), [raw[i : i + chunk] for i in range(0, len(raw), chunk)]
    )
    got = [f.seq for f in frames_of(out)]
    guaranteed = {i for i in range(n) if garbage[i] == b"" or garbage[i].endswith(b"\x00")}
    assert guaranteed <= set(got) <= set(range(n))
    assert got == sorted(got)
    prev = None
    for f in frames_of(out):
        np.testing.assert_array_equal(
            f.counts, np.frombuffer(frame(f.seq)[38:-4], "<i2").reshape(16, 3)
        )
        assert f.lost_frames == (0 if prev is None else f.seq - prev - 1)
        prev = f.seq
    assert all(r.reason in REASONS for r in rejects_of(out))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20), st.sampled_from([64, 1 << 20]))
def test_arbitrary_bytes_never_raise(chunks, max_frame):
    dec = PowerSerialDecoder(SENSOR, "pq-a", max_frame=max_frame)
    for i, c in enumerate(chunks):
        for r in dec.feed(c, i):
            assert isinstance(r, PowerFrame | Rejected)
            if isinstance(r, Rejected):
                assert r.reason in REASONS and r.sensor == "pq-a" and "pq-a" in r.detail
    mq = PowerMqttDecoder(MQTT_SENSOR, "rampart/s/power/pq-m/waveform")
    for c in chunks:
        (r,) = mq.feed(c, 0)
        assert isinstance(r, Rejected) and r.reason in REASONS


@settings(max_examples=100, deadline=None)
@given(n=st.integers(2, 6), data=st.data())
def test_a_corrupted_byte_costs_only_its_frame(n, data):
    frames = [framed(frame(i)) for i in range(n)]
    k = data.draw(st.integers(0, n - 2))
    pos = data.draw(st.integers(0, len(frames[k]) - 2))  # not the delimiter
    new = data.draw(st.integers(0, 255).filter(lambda b: b != frames[k][pos]))
    frames[k] = frames[k][:pos] + bytes([new]) + frames[k][pos + 1 :]
    out = PowerSerialDecoder(SENSOR, "pq-a").feed(b"".join(frames), 1)
    assert [f.seq for f in frames_of(out)] == [i for i in range(n) if i != k]
    assert 1 <= len(rejects_of(out)) <= 2  # a byte turned into 0x00 splits the frame in two
    if k + 1 < n:
        nxt = next(f for f in frames_of(out) if f.seq == k + 1)
        assert nxt.lost_frames == 1 or k == 0  # k == 0: nothing before it to count from


def test_corrupted_sample_gives_bad_crc_and_the_next_frame_decodes():
    bad = bytearray(frame(1))
    bad[50] ^= 0x10  # a sample byte
    raw = framed(frame(0)) + framed(bytes(bad)) + framed(frame(2))
    out = PowerSerialDecoder(SENSOR, "pq-a").feed(raw, 9)
    assert [r.reason for r in rejects_of(out)] == ["bad_crc"]
    assert [(f.seq, f.lost_frames) for f in frames_of(out)] == [(0, 0), (2, 1)]
    (rej,) = rejects_of(out)
    assert rej.t_rx_ns == 9 and f"byte {len(framed(frame(0)))}" in rej.detail


def test_broken_cobs_code_gives_bad_cobs():
    enc = bytearray(cobs.encode(frame(1)))
    enc[0] = 0xFF  # first code byte points past the end of the segment
    raw = framed(frame(0)) + bytes(enc) + b"\x00" + framed(frame(2))
    out = PowerSerialDecoder(SENSOR, "pq-a").feed(raw, 0)
    assert [r.reason for r in rejects_of(out)] == ["bad_cobs"]
    assert [f.seq for f in frames_of(out)] == [0, 2]


def test_recording_that_starts_mid_frame_gives_one_partial_then_syncs():
    raw = stream(range(5))
    cut = len(framed(frame(0))) // 2
    out = feed_chunks(PowerSerialDecoder(SENSOR, "pq-a"), [raw[cut : cut + 10], raw[cut + 10 :]])
    assert [r.reason for r in rejects_of(out)] == ["partial"]
    assert [f.seq for f in frames_of(out)] == [1, 2, 3, 4]
    assert frames_of(out)[0].lost_frames == 0  # nothing seen before: not a gap


def test_overflow_drops_the_run_and_resyncs():
    dec = PowerSerialDecoder(SENSOR, "pq-a", max_frame=200)
    good = framed(frame(0, n_samp=4))
    out = dec.feed(good, 0)
    out += dec.feed(bytes(range(1, 151)), 1)
    out += dec.feed(bytes(range(1, 151)), 2)  # 300 bytes, no delimiter
    out += dec.feed(bytes(range(1, 101)) + b"\x00", 3)  # end of the overlong run
    out += dec.feed(framed(frame(1, n_samp=4)), 4)
    assert [r.reason for r in rejects_of(out)] == ["overflow"]
    assert [f.seq for f in frames_of(out)] == [0, 1]


def test_empty_segments_are_ignored():
    raw = b"\x00\x00" + framed(frame(0)) + b"\x00\x00\x00" + framed(frame(1))
    out = PowerSerialDecoder(SENSOR, "pq-a").feed(raw, 0)
    assert not rejects_of(out) and [f.seq for f in frames_of(out)] == [0, 1]


# --------------------------------------------------------------------------- policy


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 900), min_size=1, max_size=20), st.integers(16, 10**6))
def test_seq_gaps_become_lost_frames(steps, first):
    seqs = list(np.cumsum([first, *steps]))
    out = PowerSerialDecoder(SENSOR, "pq-a").feed(stream(seqs), 0)
    assert [f.lost_frames for f in frames_of(out)] == [0] + [s - 1 for s in steps]
    out = []
    dec = PowerMqttDecoder(SENSOR, "topic")
    for s in seqs:
        out += dec.feed(frame(int(s)), 0)
    assert [f.lost_frames for f in frames_of(out)] == [0] + [s - 1 for s in steps]


def test_sequence_policy():
    dec = PowerMqttDecoder(SENSOR, "rampart/s/power/pq-a/waveform")

    def one(seq):
        (r,) = dec.feed(frame(seq), 0)
        return r

    assert one(5000).lost_frames == 0
    assert one(5000).reason == "duplicate"
    assert one(5001).lost_frames == 0
    assert one(4990).reason == "out_of_order"  # small step back: a stray old frame
    assert one(5002).lost_frames == 0  # position kept after the rejection
    r = one(3)  # back to a small seq: the front-end rebooted
    assert r.restarted and r.lost_frames == 0
    assert one(4).lost_frames == 0
    assert one(2000).lost_frames == 1995
    r = one(200)  # far back: reboot too
    assert r.restarted


def test_u32_wrap_is_contiguous():
    dec = PowerSerialDecoder(SENSOR, "pq-a")
    out = dec.feed(stream([0xFFFFFFFE, 0xFFFFFFFF, 0, 1]), 0)
    assert [(f.seq, f.lost_frames, f.restarted) for f in frames_of(out)] == [
        (0xFFFFFFFE, 0, False),
        (0xFFFFFFFF, 0, False),
        (0, 0, False),
        (1, 0, False),
    ]


def test_wrong_board_and_channel_mismatch_are_named():
    dec = PowerSerialDecoder(SENSOR, "pq-a")
    out = dec.feed(framed(frame(0, board=2)) + framed(frame(1, n_ch=4)) + framed(frame(2)), 0)
    assert [r.reason for r in rejects_of(out)] == ["wrong_board", "channel_mismatch"]
    assert "board 2" in rejects_of(out)[0].detail
    assert [f.seq for f in frames_of(out)] == [2]
    mq = PowerMqttDecoder(MQTT_SENSOR, "t")
    (r,) = mq.feed(frame(0, board=7), 0)
    assert r.reason == "channel_mismatch"
    (r,) = mq.feed(frame(1, board=7, n_ch=4), 0)
    assert isinstance(r, PowerFrame) and r.channels == ("va", "vb", "vc", "in")


def test_clip_and_burst_flags_surface():
    counts = np.zeros((16, 3), dtype=np.int16)
    counts[3, 1] = 32767
    counts[4, 2] = -32768
    out = PowerSerialDecoder(SENSOR, "pq-a").feed(
        framed(frame(0, counts=counts)) + framed(frame(1)) + framed(frame(2, burst=True)), 0
    )
    f0, f1, f2 = frames_of(out)
    assert f0.clipped and not f0.burst
    assert np.argwhere(f0.clipped_mask()).tolist() == [[3, 1], [4, 2]]
    assert not f1.clipped
    assert f2.burst
    assert f0.values()[3, 1] == pytest.approx(32767 * 0.02, rel=1e-6)


def test_mqtt_record_fields():
    dec = PowerMqttDecoder(SENSOR, "rampart/s/power/pq-a/waveform")
    (r,) = dec.feed(frame(9), 1234)
    assert (r.sensor, r.t_ns, r.t_rx_ns, r.board, r.seq, r.fs_hz) == (
        "pq-a",
        1000 + 9 * FRAME_NS,
        1234,
        1,
        9,
        12800,
    )
    assert r.channels == ("va", "vb", "vc") and r.counts.shape == (16, 3)
    (r,) = dec.feed(cobs.encode(frame(10)), 0)  # COBS is not used over MQTT
    assert isinstance(r, Rejected) and "rampart/s/power/pq-a/waveform" in r.detail


def test_waveform_topic():
    assert stream_topic("s1", SENSOR, "waveform") == "rampart/s1/power/pq-a/waveform"
    s = Sensor(id="x", kind="power", transport="mqtt", board=1, topic="rampart/s1/power/x/+")
    assert stream_topic("s1", s, "waveform") == "rampart/s1/power/x/waveform"


# --------------------------------------------------------------------------- interop sample


@pytest.mark.parametrize("sensor_id", ["pq-a", "pq-b"])
def test_recording_sample_feeds_decode(sensor_id):
    cfg = load_config(SAMPLE / "site.toml")
    sensor = cfg.sensor(sensor_id)
    df = pl.concat([pl.read_parquet(p) for p in sorted((SAMPLE / "feeds").glob("*.parquet"))])
    df = df.filter((pl.col("transport") == "serial") & (pl.col("channel") == sensor_id))
    df = df.sort("t_rx_ns", maintain_order=True)
    dec = PowerSerialDecoder(sensor, sensor_id)
    records = []
    for t_rx, payload in zip(df["t_rx_ns"].to_list(), df["payload"].to_list(), strict=True):
        records.extend(dec.feed(payload, t_rx))
    frames, rejects = frames_of(records), rejects_of(records)
    delimiters = sum(p.count(0) for p in df["payload"].to_list())
    assert len(frames) + len(rejects) == delimiters  # every terminated segment accounted for
    assert len(frames) > 1000  # 30 s at 50 frames/s
    assert sum(r.reason == "partial" for r in rejects) <= 1
    # Gaps in seq only where something was rejected.
    since = 0
    for r in records:
        if isinstance(r, Rejected):
            since += 1
        else:
            assert r.lost_frames <= since
            since = 0
    assert all(f.board == sensor.board for f in frames)
    assert {f.counts.shape[1] for f in frames} == {3}
    assert all(f.fs_hz > 0 for f in frames)
    assert {f.fs_hz for f in frames if not f.burst} == {12800}
    assert all(
        b.t_ns - a.t_ns == 20_000_000 for a, b in itertools.pairwise(frames) if b.seq == a.seq + 1
    )
    values = np.concatenate([f.values() for f in frames if not f.burst])
    rms = np.sqrt((values**2).mean(axis=0))
    assert np.all(np.abs(rms / sensor.nominal_v - 1.0) < 0.05), rms


def test_simulated_front_ends_decode_without_a_rejection():
    from drivers.simulated.base import PowerEvent, SimContext
    from drivers.simulated.power import simulate_power
    from drivers.simulated.site import SIM_T0_NS, sim_site

    site = sim_site()
    power = [s for s in site.sensors if s.kind == "power"]
    out = simulate_power(
        SimContext(site, SIM_T0_NS, 4.0, seed=3),
        power,
        [],
        [PowerEvent("e", "emp", 2.0, ("A", "B"))],
    )
    for s in power:
        dec = PowerSerialDecoder(s, s.id)
        records = [
            r
            for row in out.feeds
            if row.channel == s.id
            for r in dec.feed(row.payload, row.t_rx_ns)
        ]
        assert not rejects_of(records)
        frames = frames_of(records)
        assert [f.seq for f in frames] == list(range(len(frames)))
        assert [f.fs_hz for f in frames if f.burst] == [1_000_000]
        assert sum(f.clipped for f in frames if not f.burst) >= 1
        assert all(f.t_rx_ns >= f.t_end_ns for f in frames)


def test_flush_reports_a_frame_cut_off_at_end_of_stream():
    from cobs import cobs as _cobs

    from drivers.power_frame import encode_frame
    from drivers.power_stream import PowerSerialDecoder
    from fusion.config import Sensor
    from fusion.records import PowerFrame, Rejected

    sensor = Sensor("pq-a", "power", "serial", port="/dev/null", board=1)
    counts = np.zeros((8, 3), np.int16)
    frame = _cobs.encode(encode_frame(1, 0, 0, 12800, np.ones(3, np.float32), counts)) + b"\x00"
    nxt = _cobs.encode(encode_frame(1, 1, 625_000, 12800, np.ones(3, np.float32), counts))
    dec = PowerSerialDecoder(sensor, "pq-a")
    out = dec.feed(b"\x00" + frame + nxt[:10], 1)
    assert [type(r) for r in out] == [PowerFrame]
    (rej,) = dec.flush(2)
    assert isinstance(rej, Rejected) and rej.reason == "truncated"
    assert dec.flush(3) == []
