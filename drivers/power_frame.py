"""The power waveform frame of contract §2.5: encode and decode one frame.

Layout, little-endian: a 26-byte header (magic ``PW``, version, flags, board,
seq, t0_ns, fs_hz, n_ch, reserved, n_samp), ``n_ch`` float32 scales,
``n_samp * n_ch`` interleaved int16 samples, and a zlib CRC-32 of every byte
before it. Framing on the wire (COBS on serial, one payload per MQTT message)
is the stream decoders' job, not this module's.

Replay decodes about a hundred frames a second per feed and must run far
faster than real time, so ``decode_frame`` does a handful of ``struct`` reads,
one CRC and returns the samples as a zero-copy view of the input bytes.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

MAGIC = 0x5750  # bytes "P", "W"
VERSION = 1
FLAG_CLIPPED = 0x01  # some sample in the frame sits at full scale
FLAG_BURST = 0x02  # triggered high-rate capture beside the continuous stream

FULL_SCALE_POS = 32767
FULL_SCALE_NEG = -32768

_HEADER = struct.Struct("<HBBHIqIBBH")
HEADER_SIZE = _HEADER.size  # 26
CRC_SIZE = 4
_CRC = struct.Struct("<I")
_I16 = np.dtype("<i2")
_F32 = np.dtype("<f4")


@dataclass(frozen=True, slots=True)
class FrameFields:
    """One decoded frame. ``counts`` is a read-only view into the decoded bytes."""

    flags: int
    board: int
    seq: int
    t0_ns: int
    fs_hz: int
    scale: np.ndarray  # float32, shape (n_ch,)
    counts: np.ndarray  # int16, shape (n_samp, n_ch)

    @property
    def clipped(self) -> bool:
        return bool(self.flags & FLAG_CLIPPED)

    @property
    def burst(self) -> bool:
        return bool(self.flags & FLAG_BURST)

    @property
    def n_ch(self) -> int:
        return int(self.counts.shape[1])

    @property
    def n_samp(self) -> int:
        return int(self.counts.shape[0])


def frame_size(n_ch: int, n_samp: int) -> int:
    """Bytes of a frame with ``n_ch`` channels of ``n_samp`` samples."""
    return HEADER_SIZE + 4 * n_ch + 2 * n_ch * n_samp + CRC_SIZE


def encode_frame(
    board: int,
    seq: int,
    t0_ns: int,
    fs_hz: int,
    scale: np.ndarray,
    counts: np.ndarray,
    clipped: bool | None = None,
    burst: bool = False,
) -> bytes:
    """Encode one frame (not COBS-framed).

    ``counts`` is int16 of shape (n_samp, n_ch); ``scale`` has n_ch entries.
    ``clipped=None`` sets flag bit 0 when a sample sits at -32768 or +32767,
    the contract's definition of a clipped sample. Raises ValueError on
    arguments that cannot make a valid frame: this is our own encoder, so a bad
    call is a bug, not bad input.
    """
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.dtype != np.int16:
        raise ValueError(
            f"counts must be int16 of shape (n_samp, n_ch), got {counts.dtype} {counts.shape}"
        )
    n_samp, n_ch = counts.shape
    scale = np.asarray(scale, dtype=_F32)
    if scale.shape != (n_ch,):
        raise ValueError(f"scale must have {n_ch} entries, got shape {scale.shape}")
    if not 1 <= n_ch <= 255 or not 1 <= n_samp <= 0xFFFF:
        raise ValueError(f"n_ch must be 1..255 and n_samp 1..65535, got {n_ch}, {n_samp}")
    if not 0 < fs_hz <= 0xFFFFFFFF:
        raise ValueError(f"fs_hz must be a positive u32, got {fs_hz}")
    if not all(math.isfinite(x) and x > 0 for x in scale.tolist()):
        raise ValueError("scale must be finite and positive")
    if clipped is None:
        clipped = bool(counts.max() >= FULL_SCALE_POS or counts.min() <= FULL_SCALE_NEG)
    flags = (FLAG_CLIPPED if clipped else 0) | (FLAG_BURST if burst else 0)
    body = b"".join(
        (
            _HEADER.pack(
                MAGIC, VERSION, flags, board, seq & 0xFFFFFFFF, t0_ns, fs_hz, n_ch, 0, n_samp
            ),
            scale.tobytes(),
            np.ascontiguousarray(counts, dtype=_I16).tobytes(),
        )
    )
    return body + _CRC.pack(zlib.crc32(body))


def decode_frame(data: bytes) -> tuple[FrameFields | None, str | None, str]:
    """Decode one frame: ``(fields, None, "")`` or ``(None, reason, detail)``.

    Reasons, checked in this order: ``bad_magic`` (does not start with ``PW``),
    ``truncated`` (shorter than the header or than its declared length),
    ``bad_version``, ``bad_length`` (n_ch or n_samp is 0, or bytes trail the
    declared length), ``bad_crc``, ``invalid`` (fs_hz 0, a non-finite or
    non-positive scale). Never raises for any ``bytes`` input.
    """
    size = len(data)
    if size >= 2 and data[0] | (data[1] << 8) != MAGIC:
        return None, "bad_magic", f"starts {bytes(data[:2]).hex()}, not 5057"
    if size < HEADER_SIZE + CRC_SIZE:
        return None, "truncated", f"{size} bytes, shorter than a header"
    _magic, version, flags, board, seq, t0_ns, fs_hz, n_ch, _res, n_samp = _HEADER.unpack_from(data)
    if version != VERSION:
        return None, "bad_version", f"version {version}"
    if n_ch == 0 or n_samp == 0:
        return None, "bad_length", f"n_ch={n_ch} n_samp={n_samp}"
    want = HEADER_SIZE + 4 * n_ch + 2 * n_ch * n_samp + CRC_SIZE
    if size < want:
        return None, "truncated", f"{size} of {want} bytes (n_ch={n_ch} n_samp={n_samp})"
    if size > want:
        return None, "bad_length", f"{size - want} bytes after the {want}-byte frame"
    crc_at = want - CRC_SIZE
    sent = _CRC.unpack_from(data, crc_at)[0]
    got = zlib.crc32(memoryview(data)[:crc_at])
    if sent != got:
        return None, "bad_crc", f"crc {sent:08x}, computed {got:08x} (seq {seq})"
    if fs_hz == 0:
        return None, "invalid", f"fs_hz 0 (seq {seq})"
    scale = np.frombuffer(data, dtype=_F32, count=n_ch, offset=HEADER_SIZE).astype(np.float32)
    if n_ch == 1:
        bad_scale = not (math.isfinite(scale[0]) and scale[0] > 0)
    else:
        bad_scale = not (np.isfinite(scale).all() and (scale > 0).all())
    if bad_scale:
        return None, "invalid", f"scale {scale.tolist()} (seq {seq})"
    counts = np.frombuffer(
        data, dtype=_I16, count=n_ch * n_samp, offset=HEADER_SIZE + 4 * n_ch
    ).reshape(n_samp, n_ch)
    return FrameFields(flags, board, seq, t0_ns, fs_hz, scale, counts), None, ""
