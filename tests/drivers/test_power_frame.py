"""The §2.5 frame codec: round trips, every rejection reason, zero-copy samples."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.power_frame import HEADER_SIZE, decode_frame, encode_frame, frame_size

SCALE = np.array([0.02, 0.021, 0.019], dtype=np.float32)


def _counts(n_samp: int = 256, n_ch: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-20000, 20000, (n_samp, n_ch)).astype(np.int16)


def _recrc(body: bytes) -> bytes:
    """A frame whose CRC is made right again after a deliberate edit of ``body``."""
    return body + struct.pack("<I", zlib.crc32(body))


def test_layout_matches_the_contract_byte_for_byte():
    counts = np.array([[1, -2], [3, -4]], dtype=np.int16)
    scale = np.array([0.5, 2.0], dtype=np.float32)
    data = encode_frame(7, 42, 1_767_225_600_000_000_000, 12800, scale, counts)
    expect = (
        b"PW"
        + bytes([1, 0])
        + struct.pack("<HIqIBBH", 7, 42, 1_767_225_600_000_000_000, 12800, 2, 0, 2)
        + struct.pack("<2f", 0.5, 2.0)
        + struct.pack("<4h", 1, -2, 3, -4)
    )
    assert data == expect + struct.pack("<I", zlib.crc32(expect))
    assert len(data) == frame_size(2, 2) == HEADER_SIZE + 8 + 8 + 4


def test_round_trip_and_zero_copy_view():
    counts = _counts()
    data = encode_frame(1, 9, 123_456_789, 12800, SCALE, counts, burst=True)
    f, reason, detail = decode_frame(data)
    assert reason is None and detail == ""
    assert (f.board, f.seq, f.t0_ns, f.fs_hz) == (1, 9, 123_456_789, 12800)
    assert f.burst and not f.clipped
    assert f.counts.shape == (256, 3) and f.counts.dtype == np.int16
    np.testing.assert_array_equal(f.counts, counts)
    np.testing.assert_array_equal(f.scale, SCALE)
    # a view into the frame's bytes, not a copy
    assert f.counts.base is not None and not f.counts.flags.owndata


def test_clipped_flag_is_derived_from_full_scale_counts():
    counts = _counts()
    f, _, _ = decode_frame(encode_frame(1, 0, 0, 12800, SCALE, counts))
    assert not f.clipped
    for value in (32767, -32768):
        c = counts.copy()
        c[100, 2] = value
        f, _, _ = decode_frame(encode_frame(1, 0, 0, 12800, SCALE, c))
        assert f.clipped
    f, _, _ = decode_frame(encode_frame(1, 0, 0, 12800, SCALE, counts, clipped=True))
    assert f.clipped  # explicit flag wins


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda d: d[:10], "truncated"),
        (lambda d: d[:-1], "truncated"),
        (lambda d: b"XW" + d[2:], "bad_magic"),
        (lambda d: _recrc(d[:2] + b"\x02" + d[3:-4]), "bad_version"),
        (lambda d: d + b"\x00", "bad_length"),
        (lambda d: d[:-5] + bytes([d[-5] ^ 0x40]) + d[-4:], "bad_crc"),
        (lambda d: d[:-4] + bytes([d[-4] ^ 1]) + d[-3:], "bad_crc"),
        (lambda d: _recrc(d[:18] + struct.pack("<I", 0) + d[22:-4]), "invalid"),
        (lambda d: _recrc(d[:26] + struct.pack("<f", float("nan")) + d[30:-4]), "invalid"),
        (lambda d: _recrc(d[:26] + struct.pack("<f", -1.0) + d[30:-4]), "invalid"),
        (lambda d: _recrc(d[:26] + struct.pack("<f", 0.0) + d[30:-4]), "invalid"),
        (lambda d: _recrc(d[:22] + b"\x00" + d[23:-4]), "bad_length"),
        (lambda d: _recrc(d[:24] + b"\x00\x00" + d[26:-4]), "bad_length"),
        (lambda d: _recrc(d[:24] + struct.pack("<H", 257) + d[26:-4]), "truncated"),
        (lambda d: b"", "truncated"),
        (lambda d: b"P", "truncated"),
    ],
)
def test_each_rejection_reason(mutate, reason):
    good = encode_frame(1, 5, 10, 12800, SCALE, _counts())
    f, got, detail = decode_frame(mutate(good))
    assert f is None
    assert got == reason, detail
    assert detail


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(data):
    f, reason, _detail = decode_frame(data)
    assert (f is None) == (reason is not None)


@settings(max_examples=200, deadline=None)
@given(
    board=st.integers(0, 0xFFFF),
    seq=st.integers(0, 0xFFFFFFFF),
    t0=st.integers(-(1 << 63), (1 << 63) - 1),
    fs=st.integers(1, 0xFFFFFFFF),
    n_samp=st.integers(1, 300),
    n_ch=st.integers(1, 8),
    seed=st.integers(0, 1000),
)
def test_round_trip_any_header(board, seq, t0, fs, n_samp, n_ch, seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(-32768, 32768, (n_samp, n_ch)).astype(np.int16)
    scale = rng.uniform(1e-6, 10.0, n_ch).astype(np.float32)
    f, reason, _ = decode_frame(encode_frame(board, seq, t0, fs, scale, counts))
    assert reason is None
    assert (f.board, f.seq, f.t0_ns, f.fs_hz, f.n_ch, f.n_samp) == (
        board,
        seq,
        t0,
        fs,
        n_ch,
        n_samp,
    )
    np.testing.assert_array_equal(f.counts, counts)
    np.testing.assert_array_equal(f.scale, scale)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 1000), st.data())
def test_any_single_byte_change_is_caught(seed, data):
    good = encode_frame(3, 77, 5, 12800, SCALE, _counts(32, seed=seed))
    pos = data.draw(st.integers(0, len(good) - 1))
    flip = data.draw(st.integers(1, 255))
    bad = good[:pos] + bytes([good[pos] ^ flip]) + good[pos + 1 :]
    f, reason, _ = decode_frame(bad)
    assert f is None
    assert reason in {"bad_magic", "bad_version", "bad_length", "truncated", "bad_crc"}


def test_encoder_refuses_impossible_frames():
    with pytest.raises(ValueError):
        encode_frame(1, 0, 0, 12800, SCALE, _counts().astype(np.int32))
    with pytest.raises(ValueError):
        encode_frame(1, 0, 0, 12800, SCALE[:2], _counts())
    with pytest.raises(ValueError):
        encode_frame(1, 0, 0, 0, SCALE, _counts())
    with pytest.raises(ValueError):
        encode_frame(1, 0, 0, 12800, -SCALE, _counts())
    with pytest.raises(ValueError):
        encode_frame(1, 0, 0, 12800, SCALE, np.zeros((0, 3), np.int16))
