"""Repeated-block UBX payloads read straight from a message's raw bytes.

Three messages are read here rather than from pyubx2's flattened fields:

- NAV-SAT and NAV-SVINFO: one 12-byte block per satellite, every epoch. A
  fixed-layout NumPy view costs microseconds where pyubx2's generic parse
  costs about 3 ms per NAV-SAT, the largest single cost of a GNSS replay.
- MON-RF: pyubx2 1.4.0 assumes 24-byte RF blocks, but the ZED-F9R (HPS 1.30)
  sends a "compact" MON-RF with 20-byte blocks, and pyubx2 then reports a
  wrong second block and a wrong ``jamInd``. The block size is taken from the
  payload length (4 + 24·nBlocks or 4 + 20·nBlocks); anything else is
  refused rather than guessed.

Layouts (u-blox interface descriptions: M8 UBX-13003221 §32.17.18 NAV-SAT,
§32.17.27 NAV-SVINFO; F9 HPG 1.32 UBX-22008968 §3.14.7 MON-RF):

- NAV-SAT: iTOW u4, version u1, numSvs u1, reserved 2; per satellite gnssId
  u1, svId u1, cno u1, elev i1, azim i2, prRes i2 (0.1 m), flags x4 (bits 0-2
  qualityInd, bit 3 svUsed). ``elev`` outside ±90 means unknown.
- NAV-SVINFO: iTOW u4, numCh u1, globalFlags x1, reserved 2; per channel chn
  u1, svid u1, flags x1 (bit 0 svUsed), quality x1, cno u1, elev i1, azim i2,
  prRes i4 (cm).
- MON-RF: version u1, nBlocks u1, reserved 2; per block blockId u1, flags x1
  (bits 0-1 jammingState: 0 unknown/disabled, 1 ok, 2 warning, 3 critical),
  antStatus u1 (0 init, 1 don't know, 2 ok, 3 short, 4 open), antPower u1,
  postStatus u4, reserved 4, noisePerMS u2, agcCnt u2, jamInd u1, ofsI i1,
  magI u1, ofsQ i1, magQ u1, reserved 3. The compact 20-byte block has no
  ``jamInd`` (nor the tail): after agcCnt come ofsI, magI, ofsQ, magQ. That
  reading was inferred from the ZED-F9R capture in the shared data, where it
  gives I/Q magnitudes of about 150 and offsets near 0 in both blocks, as
  the standard blocks of other F9 units do; the 24-byte reading there gives
  offsets of -107 and magnitudes of 22, and a second block with an agcCnt
  beyond the 0-8191 range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_NAV_SAT_BLOCK = np.dtype(
    [
        ("gnssId", "u1"),
        ("svId", "u1"),
        ("cno", "u1"),
        ("elev", "i1"),
        ("azim", "<i2"),
        ("prRes", "<i2"),
        ("flags", "<u4"),
    ]
)
_NAV_SVINFO_BLOCK = np.dtype(
    [
        ("chn", "u1"),
        ("svid", "u1"),
        ("flags", "u1"),
        ("quality", "u1"),
        ("cno", "u1"),
        ("elev", "i1"),
        ("azim", "<i2"),
        ("prRes", "<i4"),
    ]
)
_RF_BLOCK_STD = np.dtype(
    [
        ("blockId", "u1"),
        ("flags", "u1"),
        ("antStatus", "u1"),
        ("antPower", "u1"),
        ("postStatus", "<u4"),
        ("reserved1", "V4"),
        ("noisePerMS", "<u2"),
        ("agcCnt", "<u2"),
        ("jamInd", "u1"),
        ("ofsI", "i1"),
        ("magI", "u1"),
        ("ofsQ", "i1"),
        ("magQ", "u1"),
        ("reserved2", "V3"),
    ]
)
_RF_BLOCK_COMPACT = np.dtype(
    [
        ("blockId", "u1"),
        ("flags", "u1"),
        ("antStatus", "u1"),
        ("antPower", "u1"),
        ("postStatus", "<u4"),
        ("reserved1", "V4"),
        ("noisePerMS", "<u2"),
        ("agcCnt", "<u2"),
        ("ofsI", "i1"),
        ("magI", "u1"),
        ("ofsQ", "i1"),
        ("magQ", "u1"),
    ]
)
assert _NAV_SAT_BLOCK.itemsize == 12 and _NAV_SVINFO_BLOCK.itemsize == 12
assert _RF_BLOCK_STD.itemsize == 24 and _RF_BLOCK_COMPACT.itemsize == 20


def ubx_payload(raw: bytes) -> bytes:
    """The payload of one whole UBX frame (sync, class, id, length, payload, checksum)."""
    return raw[6:-2]


@dataclass(frozen=True, slots=True)
class SatReport:
    """Satellites of one NAV-SAT / NAV-SVINFO; arrays of one length."""

    itow_ms: int
    system: np.ndarray  # int: UBX gnssId (NAV-SAT) or -1 (NAV-SVINFO numbers all systems)
    sv: np.ndarray  # int
    cno: np.ndarray  # float dB-Hz, 0 = untracked
    elev: np.ndarray  # float degrees, NaN = unknown
    used: np.ndarray  # bool


def _sat_blocks(payload: bytes, name: str, count_at: int, dtype, what: str):
    """The 12-byte repeated blocks after an 8-byte header, and their elevations (NaN when
    beyond ±90°); raises ValueError when the length disagrees with the count byte."""
    if len(payload) < 8:
        raise ValueError(f"{name} payload of {len(payload)} bytes")
    n = payload[count_at]
    if len(payload) != 8 + 12 * n:
        raise ValueError(f"{name} payload of {len(payload)} bytes for {n} {what}")
    b = np.frombuffer(payload, dtype=dtype, count=n, offset=8)
    elev = b["elev"].astype(np.float64)
    elev[np.abs(elev) > 90] = np.nan
    return b, elev


def nav_sat(payload: bytes) -> SatReport:
    """Decodes a NAV-SAT payload; raises ValueError when its length disagrees with numSvs."""
    b, elev = _sat_blocks(payload, "NAV-SAT", 5, _NAV_SAT_BLOCK, "satellites")
    return SatReport(
        int.from_bytes(payload[0:4], "little"),
        b["gnssId"].astype(np.int64),
        b["svId"].astype(np.int64),
        b["cno"].astype(np.float64),
        elev,
        (b["flags"] & 0x08) != 0,
    )


def nav_svinfo(payload: bytes) -> SatReport:
    """Decodes a NAV-SVINFO payload (u-blox 6/7/8); raises ValueError on a bad length."""
    b, elev = _sat_blocks(payload, "NAV-SVINFO", 4, _NAV_SVINFO_BLOCK, "channels")
    return SatReport(
        int.from_bytes(payload[0:4], "little"),
        np.full(len(b), -1, dtype=np.int64),
        b["svid"].astype(np.int64),
        b["cno"].astype(np.float64),
        elev,
        (b["flags"] & 0x01) != 0,
    )


@dataclass(frozen=True, slots=True)
class RfBlock:
    block_id: int
    jamming_state: int  # 0 unknown/disabled, 1 ok, 2 warning, 3 critical
    ant_status: int  # 0 init, 1 don't know, 2 ok, 3 short, 4 open
    noise_per_ms: int
    agc_cnt: int
    jam_ind: int | None  # None: a compact block does not carry it


def mon_rf(payload: bytes) -> tuple[list[RfBlock], bool]:
    """RF blocks of a MON-RF payload and whether it was the compact layout.

    Raises ValueError when the length fits neither block size.
    """
    if len(payload) < 4:
        raise ValueError(f"MON-RF payload of {len(payload)} bytes")
    n = payload[1]
    if len(payload) == 4 + 24 * n:
        dtype, compact = _RF_BLOCK_STD, False
    elif len(payload) == 4 + 20 * n:
        dtype, compact = _RF_BLOCK_COMPACT, True
    else:
        raise ValueError(f"MON-RF payload of {len(payload)} bytes for {n} blocks")
    b = np.frombuffer(payload, dtype=dtype, count=n, offset=4)
    blocks = [
        RfBlock(
            int(b["blockId"][i]),
            int(b["flags"][i]) & 0x03,
            int(b["antStatus"][i]),
            int(b["noisePerMS"][i]),
            int(b["agcCnt"][i]),
            None if compact else int(b["jamInd"][i]),
        )
        for i in range(n)
    ]
    return blocks, compact
