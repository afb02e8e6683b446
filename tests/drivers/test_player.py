"""The live player's re-timing: data times move, checksums stay right, garbage stays garbage."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
from cobs import cobs

from drivers.player import _CobsRetimer, shift_json, shift_power_frame
from drivers.power_frame import decode_frame, encode_frame

OFFSET = 123_456_789_000


def frame(seq: int, t0: int) -> bytes:
    return encode_frame(
        1, seq, t0, 12800, np.ones(3, np.float32), np.arange(30, dtype=np.int16).reshape(10, 3)
    )


def test_shift_json_moves_t_only():
    out = json.loads(
        shift_json(b'{"sensor": "r", "t": 1767686400.25, "scan": 3, "plots": []}', OFFSET)
    )
    assert out == {
        "sensor": "r",
        "t": round(1767686400.25 + OFFSET / 1e9, 6),
        "scan": 3,
        "plots": [],
    }
    assert shift_json(b'{"sensor": "r", "t": 17', OFFSET) == b'{"sensor": "r", "t": 17'
    assert shift_json(b"[1]", OFFSET) == b"[1]"


def test_shift_power_frame_keeps_it_valid():
    f = frame(7, 1_000)
    moved = shift_power_frame(f, OFFSET)
    fields, reason, _ = decode_frame(moved)
    assert reason is None and fields.t0_ns == 1_000 + OFFSET and fields.seq == 7
    assert struct.unpack_from("<I", moved, len(moved) - 4)[0] == zlib.crc32(moved[:-4])
    broken = bytearray(f)
    broken[20] ^= 0xFF
    assert shift_power_frame(bytes(broken), OFFSET) == bytes(broken)  # damage passes as recorded


def test_cobs_retimer_over_arbitrary_chunks():
    stream = b"".join(cobs.encode(frame(i, i * 1000)) + b"\x00" for i in range(20))
    cut = stream.index(b"\x00", 100) + 1  # a frame boundary
    stream = stream[:cut] + b"\x01\x02junk\x00" + stream[cut:]
    rng = np.random.default_rng(0)
    cuts = sorted(set(rng.integers(1, len(stream), 15).tolist()))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    rt = _CobsRetimer(OFFSET)
    out = b"".join(rt.feed(c) for c in chunks)
    segments = out.split(b"\x00")[:-1]
    good = []
    for seg in segments:
        try:
            fields, reason, _ = decode_frame(cobs.decode(seg))
        except cobs.DecodeError:
            continue
        if reason is None:
            good.append((fields.seq, fields.t0_ns))
    assert good == [(i, i * 1000 + OFFSET) for i in range(20)]
    assert b"\x01\x02junk\x00" in out  # garbage goes through as recorded
