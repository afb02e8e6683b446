"""Plays a recording live, as the sensors sent it: MQTT messages to a broker, serial
bytes to pseudo-terminals, at the recorded pace (or faster), with data times moved
to now.

For integration tests and site trials: ``rampart run`` on the other side sees
what it would see from real sensors. Data times are shifted by a fixed offset so
the live engine does not find year-old timestamps late: the JSON ``t`` field,
and the power frames' ``t0_ns`` (CRC recomputed; serial frames re-encoded with
COBS). GNSS byte streams are sent unchanged, because their records are stamped
on receipt. Payloads that do not parse (the recording's own garbage) are sent
unchanged, so the live side meets the same bad input as a replay.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from cobs import cobs

from drivers.recording import RecordingReader

_T0 = struct.Struct("<q")
_T0_OFFSET = 10  # magic u16, version u8, flags u8, board u16, seq u32


def shift_json(payload: bytes, offset_ns: int) -> bytes:
    try:
        msg = json.loads(payload)
    except ValueError:
        return payload
    if not isinstance(msg, dict) or not isinstance(msg.get("t"), int | float):
        return payload
    msg["t"] = round(msg["t"] + offset_ns / 1e9, 6)
    return json.dumps(msg, separators=(",", ":")).encode()


def shift_power_frame(frame: bytes, offset_ns: int) -> bytes:
    """The frame with t0_ns moved by ``offset_ns`` and its CRC-32 recomputed."""
    if (
        len(frame) < 32
        or frame[:2] != b"PW"
        or zlib.crc32(frame[:-4]) != struct.unpack_from("<I", frame, len(frame) - 4)[0]
    ):
        return frame  # not a valid frame: leave the damage as recorded
    out = bytearray(frame)
    (t0,) = _T0.unpack_from(out, _T0_OFFSET)
    _T0.pack_into(out, _T0_OFFSET, t0 + offset_ns)
    struct.pack_into("<I", out, len(out) - 4, zlib.crc32(out[:-4]))
    return bytes(out)


@dataclass
class _CobsRetimer:
    """Re-times a COBS-framed power byte stream chunk by chunk, keeping chunk sizes close."""

    offset_ns: int
    buf: bytearray = field(default_factory=bytearray)

    def feed(self, chunk: bytes) -> bytes:
        self.buf += chunk
        out = bytearray()
        while True:
            end = self.buf.find(0)
            if end < 0:
                break
            seg = bytes(self.buf[:end])
            del self.buf[: end + 1]
            try:
                frame = cobs.decode(seg)
            except cobs.DecodeError:
                out += seg + b"\x00"
                continue
            out += cobs.encode(shift_power_frame(frame, self.offset_ns)) + b"\x00"
        return bytes(out)


@dataclass
class PlayStats:
    messages: int = 0
    mqtt: int = 0
    serial_bytes: int = 0
    late_s: float = 0.0  # worst lag behind the recorded pace


def play(
    reader: RecordingReader,
    publish: Callable[[str, bytes], None],
    serial_fds: dict[str, int],
    kinds: dict[str, str],
    speed: float = 1.0,
    offset_ns: int | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> PlayStats:
    """Sends every message of ``reader`` at its recorded pace divided by ``speed``.

    ``publish(topic, payload)`` sends an MQTT message; ``serial_fds`` maps a
    serial channel (sensor id) to a file descriptor to write its bytes to;
    ``kinds`` maps sensor ids to their kind (to know which streams carry power
    frames). ``offset_ns`` (default: now minus the recording's start) is added
    to data times.
    """
    start_ns, _ = reader.time_span_ns()
    if offset_ns is None:
        offset_ns = time.time_ns() - start_ns
    retimers: dict[str, _CobsRetimer] = {}
    stats = PlayStats()
    wall0 = time.monotonic()
    for msg in reader.messages():
        if stop():
            break
        due = wall0 + (msg.t_rx_ns - start_ns) / 1e9 / speed
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, 60.0))
        else:
            stats.late_s = max(stats.late_s, -delay)
        stats.messages += 1
        if msg.transport == "mqtt":
            parts = msg.channel.split("/")
            kind = kinds.get(parts[3], "") if len(parts) > 3 else ""
            if kind == "power":
                payload = shift_power_frame(msg.payload, offset_ns)
            elif kind == "gnss":
                payload = msg.payload
            else:
                payload = shift_json(msg.payload, offset_ns)
            publish(msg.channel, payload)
            stats.mqtt += 1
        else:
            fd = serial_fds.get(msg.channel)
            if fd is None:
                continue
            data = msg.payload
            if kinds.get(msg.channel) == "power":
                data = retimers.setdefault(msg.channel, _CobsRetimer(offset_ns)).feed(data)
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            stats.serial_bytes += len(data)
    return stats
