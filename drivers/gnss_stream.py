"""GNSS receiver byte streams (contract §2.4): framing, resync and decoding.

A receiver's serial port (or an MQTT ``raw`` payload) carries NMEA 0183
sentences, u-blox UBX frames and RTCM3 frames interleaved. Chunk boundaries
are arbitrary, so ``GnssStreamDecoder`` keeps the unfinished tail between
``feed`` calls. Framing and resync are done here (frame starts are located
with ``re``/``bytes`` searches, never byte by byte); each complete frame is
decoded by the maintained parsers: ``pyubx2.UBXReader.parse`` for UBX and
``pynmeagps.NMEAReader.parse`` for NMEA, both with checksum validation. RTCM3
frames are checked (CRC-24Q, RTCM 10403.3 transport layer) and identified by message
number only, because nothing downstream reads their contents.

Frame formats:

- NMEA: ``$`` or ``!``, printable ASCII, ``*hh`` (XOR of the bytes between
  the start and ``*``), ``\\r\\n`` (a bare ``\\n`` is accepted, as pyubx2 does).
- UBX: ``B5 62``, class, id, u16 little-endian payload length, payload,
  8-bit Fletcher checksum over class..payload (u-blox interface description).
- RTCM3: ``D3``, 6 zero bits, 10-bit length, payload, CRC-24Q.

Bad-input policy (each case is one ``Rejected`` with a stable reason token):

- ``garbage``: bytes that start no frame. One reject per contiguous run,
  whatever the chunking: a run is reported when the next frame (or reject)
  begins, at ``flush``, or every ``GARBAGE_REPORT_BYTES`` bytes, so that a
  sensor sending only noise is still seen.
- ``bad_checksum`` (NMEA, UBX) / ``bad_crc`` (RTCM3): a complete frame whose
  check fails. The decoder resyncs at the byte after the frame start, so a
  valid frame hidden inside (a cut-off frame followed by a whole one) is
  still found; bytes of the bad frame are not reported a second time. A
  ``D3`` byte whose frame fails its CRC and carries no plausible message
  number (1001-4095) is data, not a frame (``D3 00`` is common in binary).
- ``bad_length``: a UBX length above ``UBX_MAX_PAYLOAD``, or an NMEA sentence
  with no terminator within ``NMEA_MAX_LEN`` bytes; resync after the start.
- ``truncated``: an NMEA sentence cut off by a byte that cannot belong to it,
  or (from ``flush``) a frame still incomplete at the end of the stream.
- ``undecodable``: a frame whose check passes but which the parser cannot
  decode (e.g. a UBX input message of a layout pyubx2 does not know as
  output); decoding goes on after the frame.
- ``overflow``: an unfinished frame larger than ``max_buffer``; its oldest
  bytes are dropped and the scan resumes after them.
- ``internal_error``: an unexpected exception (a parser bug); the buffer is
  dropped so that the same bytes cannot fail again. ``feed`` never raises.

Valid messages of a type the parsers do not know (proprietary ``$P...``
sentences, new UBX ids) are still returned, with the fields the parser could
give (pynmeagps' ``field_NN``, or the UBX ``payload`` bytes).

Known parser limit: pyubx2 1.4.0 decodes the "compact" UBX-MON-RF of the
ZED-F9R (HPS 1.30, 20-byte RF blocks) with the wrong block layout, so the
second block and ``jamInd`` come out wrong. The frame still checksums and is
returned as a ``MON-RF`` message with pyubx2's values; consumers of MON-RF
must sanity-check block contents rather than trust them blindly.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
from pynmeagps import NMEAReader
from pyubx2 import UBXReader
from pyubx2.ubxtypes_core import UBX_MSGIDS

from fusion.records import GnssMessage, Record, Rejected

NMEA_MAX_LEN = (
    1024  # bytes from '$' to '*hh': NMEA says 82 in all, but u-blox $PUBX,03 runs to ~600
)
NMEA_MIN_BODY = 5  # shorter than an address field ("GPGGA"): not a sentence, just a '$' byte
UBX_MAX_PAYLOAD = 8192  # RXM-RAWX with 255 measurements is 8176; anything longer is a false sync
GARBAGE_REPORT_BYTES = 1024

# Frame starts; '#' only when scanning gpsd test logs for comments.
_START = re.compile(rb"[$!\xb5\xd3]")
_START_WITH_COMMENTS = re.compile(rb"[$!#\xb5\xd3]")
_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e]*")
_HEX2 = re.compile(rb"[0-9A-Fa-f]{2}")

# Fletcher weights: ck_b = sum((n - i) * d[i]).
_FLETCHER_W = np.arange(UBX_MAX_PAYLOAD + 16, 0, -1, dtype=np.int64)


def _crc24q_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
        table.append(crc & 0xFFFFFF)
    return table


_CRC24Q = _crc24q_table()


def crc24q(data: bytes) -> int:
    """CRC-24Q (Qualcomm) as used by RTCM 10403.3 §4.2 (polynomial 0x1864CFB, init 0)."""
    crc = 0
    table = _CRC24Q
    for b in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ table[(crc >> 16) ^ b]
    return crc


def ubx_checksum(body: bytes) -> int:
    """8-bit Fletcher checksum of UBX class..payload, as ``ck_a | ck_b << 8``."""
    a = np.frombuffer(body, dtype=np.uint8).astype(np.int64)
    ck_a = int(a.sum()) & 0xFF
    ck_b = int(a @ _FLETCHER_W[-len(body) :]) & 0xFF if len(body) else 0
    return ck_a | ck_b << 8


def nmea_checksum(body: bytes) -> int:
    """XOR of the bytes between the start character and '*', folded as a big integer."""
    n = len(body)
    v = int.from_bytes(body, "little")
    while n > 1:
        half = n // 2
        v = (v & ((1 << (8 * half)) - 1)) ^ (v >> (8 * half))
        n -= half
    return v


# Outcomes of trying a frame at a start byte.
_NEED_MORE = 0
_NOT_A_FRAME = 1
_FRAME = 2
_BAD = 3


@dataclass(frozen=True, slots=True)
class ScanEvent:
    """One result of framing: a good frame, a comment, or a rejected span.

    ``kind`` is ``NMEA``/``UBX``/``RTCM3`` for a frame that passed its check,
    ``comment`` for a gpsd test-log comment, or ``reject``; offsets are
    absolute stream offsets, ``end`` exclusive.
    """

    kind: str
    start: int
    end: int
    raw: bytes
    reason: str = ""
    detail: str = ""


class FrameScanner:
    """Chunk-fed framer for mixed NMEA/UBX/RTCM3 streams; no decoding (see module docstring).

    ``push`` returns the events the new bytes complete; ``finish`` reports
    what is left at the end of the stream. With ``comments=True`` a '#' at a
    packet boundary (stream start, or right after a frame or comment) starts
    a comment up to and including the next '\\n', the gpsd test-log convention.
    """

    def __init__(self, max_buffer: int = 65536, comments: bool = False):
        self.max_buffer = max(int(max_buffer), 16)
        self._start_re = _START_WITH_COMMENTS if comments else _START
        self._buf = b""
        self._base = 0  # stream offset of _buf[0]
        self._garbage_start = -1  # stream offset of the open garbage run, -1: none
        self._garbage_end = -1
        self._quiet_until = 0  # bytes before this were already reported inside a bad frame
        self._boundary = 0  # stream offset where the last frame or comment ended

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet framed."""
        return self._base

    def push(self, data: bytes) -> list[ScanEvent]:
        self._buf = self._buf + bytes(data) if self._buf else bytes(data)
        return self._scan(final=False)

    def finish(self) -> list[ScanEvent]:
        events = self._scan(final=True)
        self._close_garbage(events)
        self._buf = b""
        return events

    def reset(self) -> None:
        self._base += len(self._buf)
        self._buf = b""
        self._garbage_start = self._garbage_end = -1

    # -- scanning ---------------------------------------------------------------

    def _scan(self, final: bool) -> list[ScanEvent]:
        buf = self._buf
        n = len(buf)
        base = self._base
        events: list[ScanEvent] = []
        i = 0
        search = self._start_re.search
        while i < n:
            m = search(buf, i)
            if m is None:
                self._garbage(base + i, base + n, events)
                i = n
                break
            j = m.start()
            if j > i:
                self._garbage(base + i, base + j, events)
            status, end, reason, detail = self._try(buf, j, final)
            if status == _NEED_MORE and final:
                # The stream ended inside this frame; frames may still hide in its bytes.
                status, end, reason = _BAD, (j + 1, n), "truncated"
                detail = f"stream ended inside a frame ({n - j} bytes)"
            if status == _NEED_MORE:
                if n - j > self.max_buffer:
                    # A frame that cannot fit: drop its oldest bytes and rescan after them.
                    drop_to = n - self.max_buffer
                    self._close_garbage(events)
                    events.append(
                        ScanEvent(
                            "reject",
                            base + j,
                            base + drop_to,
                            b"",
                            "overflow",
                            f"unfinished frame of {n - j} bytes exceeds buffer {self.max_buffer}",
                        )
                    )
                    self._quiet_until = max(self._quiet_until, base + drop_to)
                    i = drop_to
                    continue
                i = j
                break
            if status == _NOT_A_FRAME:
                self._garbage(base + j, base + j + 1, events)
                i = j + 1
                continue
            self._close_garbage(events)
            if status == _FRAME:
                kind = reason
                events.append(ScanEvent(kind, base + j, base + end, buf[j:end]))
                self._boundary = base + end
                i = end
                continue
            # _BAD: `end` is where to resume; the reported span runs to the frame's end
            resume, span_end = end
            if base + j >= self._quiet_until:
                events.append(ScanEvent("reject", base + j, base + span_end, b"", reason, detail))
                self._quiet_until = base + span_end
            i = resume
        self._buf = buf[i:]
        self._base = base + i
        return events

    def _try(self, buf: bytes, j: int, final: bool):
        c = buf[j]
        if c == 0x24 or c == 0x21:  # '$' '!'
            return self._try_nmea(buf, j)
        if c == 0xB5:
            return self._try_ubx(buf, j)
        if c == 0xD3:
            return self._try_rtcm(buf, j)
        return self._try_comment(buf, j, final)

    def _try_comment(self, buf: bytes, j: int, final: bool):
        if self._base + j != self._boundary:
            return _NOT_A_FRAME, 0, "", ""
        nl = buf.find(b"\n", j)
        if nl < 0:
            if not final:
                return _NEED_MORE, 0, "", ""
            nl = len(buf) - 1
        return _FRAME, nl + 1, "comment", ""

    def _try_nmea(self, buf: bytes, j: int):
        n = len(buf)
        run_end = _PRINTABLE_RUN.match(buf, j + 1, min(n, j + 1 + NMEA_MAX_LEN + 1)).end()
        body_len = run_end - j - 1
        if body_len > NMEA_MAX_LEN:
            return (
                _BAD,
                (j + 1, run_end),
                "bad_length",
                f"NMEA sentence without terminator in {NMEA_MAX_LEN} bytes",
            )
        if run_end >= n:
            return _NEED_MORE, 0, "", ""
        term = buf[run_end]
        if term == 0x0A:
            end = run_end + 1
        elif term == 0x0D:
            if run_end + 1 >= n:
                return _NEED_MORE, 0, "", ""
            if buf[run_end + 1] != 0x0A:
                if body_len < NMEA_MIN_BODY:
                    return _NOT_A_FRAME, 0, "", ""
                # Every '$' inside the run ends at the same CR: none can be whole.
                return (
                    _BAD,
                    (run_end + 1, run_end + 1),
                    "truncated",
                    "NMEA sentence with CR but no LF",
                )
            end = run_end + 2
        else:
            if body_len < NMEA_MIN_BODY:
                return _NOT_A_FRAME, 0, "", ""
            return (
                _BAD,
                (run_end, run_end),
                "truncated",
                f"NMEA sentence cut off by byte 0x{term:02x}",
            )
        if body_len < NMEA_MIN_BODY:
            return _NOT_A_FRAME, 0, "", ""
        star = run_end - 3
        if buf[star] != 0x2A or not _HEX2.fullmatch(buf, star + 1, run_end):
            return _BAD, (end, end), "bad_checksum", "NMEA sentence without *hh checksum"
        want = int(buf[star + 1 : run_end], 16)
        got = nmea_checksum(buf[j + 1 : star])
        if want != got:
            return (
                _BAD,
                (j + 1, end),
                "bad_checksum",
                f"NMEA checksum *{want:02X}, computed {got:02X}",
            )
        return _FRAME, end, "NMEA", ""

    def _try_ubx(self, buf: bytes, j: int):
        n = len(buf)
        if j + 1 >= n:
            return _NEED_MORE, 0, "", ""
        if buf[j + 1] != 0x62:
            return _NOT_A_FRAME, 0, "", ""
        if j + 6 > n:
            return _NEED_MORE, 0, "", ""
        length = buf[j + 4] | buf[j + 5] << 8
        if length > UBX_MAX_PAYLOAD:
            return (
                _BAD,
                (j + 1, j + 6),
                "bad_length",
                f"UBX 0x{buf[j + 2]:02x}{buf[j + 3]:02x} length {length} > {UBX_MAX_PAYLOAD}",
            )
        end = j + 8 + length
        if end > n:
            return _NEED_MORE, 0, "", ""
        want = buf[end - 2] | buf[end - 1] << 8
        got = ubx_checksum(buf[j + 2 : end - 2])
        if want != got:
            return (
                _BAD,
                (j + 1, end),
                "bad_checksum",
                f"UBX 0x{buf[j + 2]:02x}{buf[j + 3]:02x} checksum {want:04x}, computed {got:04x}",
            )
        return _FRAME, end, "UBX", ""

    def _try_rtcm(self, buf: bytes, j: int):
        n = len(buf)
        if j + 1 >= n:
            return _NEED_MORE, 0, "", ""
        if buf[j + 1] & 0xFC:
            return _NOT_A_FRAME, 0, "", ""
        if j + 3 > n:
            return _NEED_MORE, 0, "", ""
        length = (buf[j + 1] & 0x03) << 8 | buf[j + 2]
        end = j + 6 + length
        if end > n:
            return _NEED_MORE, 0, "", ""
        want = int.from_bytes(buf[end - 3 : end], "big")
        got = crc24q(buf[j : end - 3])
        if want != got:
            msgtype = rtcm_msgtype(buf[j:end])
            if length < 2 or not 1001 <= msgtype <= 4095:
                # D3 0x is frequent in binary data; only a plausible RTCM header is worth a reject.
                return _NOT_A_FRAME, 0, "", ""
            return (
                _BAD,
                (j + 1, end),
                "bad_crc",
                f"RTCM3 {msgtype} CRC {want:06x}, computed {got:06x}",
            )
        return _FRAME, end, "RTCM3", ""

    # -- garbage runs -----------------------------------------------------------

    def _garbage(self, start: int, end: int, events: list[ScanEvent]) -> None:
        if self._garbage_start < 0:
            self._garbage_start = start
        self._garbage_end = end
        while self._garbage_end - self._garbage_start >= GARBAGE_REPORT_BYTES:
            cut = self._garbage_start + GARBAGE_REPORT_BYTES
            self._emit_garbage(self._garbage_start, cut, events)
            self._garbage_start = cut

    def _close_garbage(self, events: list[ScanEvent]) -> None:
        if self._garbage_start >= 0 and self._garbage_end > self._garbage_start:
            self._emit_garbage(self._garbage_start, self._garbage_end, events)
        self._garbage_start = self._garbage_end = -1

    def _emit_garbage(self, start: int, end: int, events: list[ScanEvent]) -> None:
        start = max(start, self._quiet_until)
        if end > start:
            events.append(
                ScanEvent(
                    "reject", start, end, b"", "garbage", f"{end - start} bytes start no frame"
                )
            )


def rtcm_msgtype(frame: bytes) -> int:
    """The 12-bit message number at the start of an RTCM3 payload (0 when too short)."""
    if len(frame) < 5:
        return 0
    return (frame[3] << 4) | (frame[4] >> 4)


def _public_fields(msg: object) -> dict:
    return {k: v for k, v in vars(msg).items() if k[:1] != "_"}


def frame_identity(protocol: str, raw: bytes) -> str:
    """A checked frame's identity without parsing its payload (cheap).

    Agrees with ``decode_frame`` for standard messages and ``$PUBX``; for other
    proprietary NMEA sentences it is the address field, for UBX ids pyubx2
    does not know it is ``UBX-cc-ii`` in hex.
    """
    if protocol == "UBX":
        return UBX_MSGIDS.get(raw[2:4]) or f"UBX-{raw[2]:02X}-{raw[3]:02X}"
    if protocol == "NMEA":
        end = raw.find(b",")
        if end < 0:
            end = raw.rfind(b"*")
        header = raw[1:end].decode("ascii", "replace")
        if header == "PUBX":  # u-blox proprietary: the message id is the first field
            return header + raw[end + 1 : end + 3].decode("ascii", "replace")
        return header if header[:1] == "P" else header[2:]
    return f"RTCM3-{rtcm_msgtype(raw)}"


def decode_frame(protocol: str, raw: bytes) -> tuple[str, dict]:
    """Identity and fields of one checked frame, via pyubx2 / pynmeagps; raises if undecodable."""
    if protocol == "UBX":
        msg = UBXReader.parse(raw, validate=1)
        fields = _public_fields(msg)
        if not fields and len(raw) > 8:
            fields = {"payload": raw[6:-2]}
        return msg.identity, fields
    if protocol == "NMEA":
        msg = NMEAReader.parse(raw, validate=1) if raw[:1] == b"$" else None
        if msg is None:
            # pynmeagps parses '$' sentences only (not '!' ones such as AIS) and
            # returns None for some it cannot split; keep their raw fields.
            header = raw[1 : raw.rfind(b"*")].split(b",")[0].decode("ascii")
            talker = "P" if header[:1] == "P" else header[:2]
            ident = header if talker == "P" else header[2:]
            payload = raw[1 : raw.rfind(b"*")].decode("ascii").split(",")[1:]
            return ident, {"talker": talker, "payload": payload}
        fields = _public_fields(msg)
        talker = msg.talker
        ident = msg.identity if talker == "P" else msg.identity[len(talker) :]
        fields["talker"] = talker
        return ident, fields
    msgtype = rtcm_msgtype(raw)
    return f"RTCM3-{msgtype}", {"msgtype": msgtype, "length": len(raw) - 6}


class GnssStreamDecoder:
    """Decoder (drivers.decoder) for one GNSS receiver's byte stream.

    ``source`` names the stream in reject details (serial port or MQTT topic).
    ``counts`` tallies decoded messages by protocol and rejects by reason.

    ``parse`` selects which identities are parsed into ``fields``: ``None``
    parses every message; a set parses only those (``"GGA"``, ``"NAV-SAT"``,
    ...), and other checked frames pass with their identity, their raw bytes
    and empty ``fields``. Parsing with pyubx2/pynmeagps costs about 0.1-0.7 ms
    a message, which dominates replay time, so the pipeline parses only what
    its detectors read. A parsed identity that fails to parse is rejected as
    ``undecodable``; an unparsed one is never parsed, so never rejected so.
    """

    def __init__(
        self,
        sensor: str,
        source: str = "",
        max_buffer: int = 65536,
        parse: frozenset[str] | None = None,
    ):
        self.sensor = sensor
        self.parse = parse
        self.source = source or sensor
        self.counts: Counter[str] = Counter()
        self._scanner = FrameScanner(max_buffer=max_buffer)

    def feed(self, payload: bytes, t_rx_ns: int) -> list[Record]:
        try:
            return self._records(self._scanner.push(payload), t_rx_ns)
        except Exception as exc:  # a parser bug must not stop the pipeline
            return self._internal_error(exc, t_rx_ns)

    def flush(self, t_rx_ns: int) -> list[Record]:
        """End of stream: report an unfinished frame (``truncated``) and a trailing garbage run."""
        try:
            return self._records(self._scanner.finish(), t_rx_ns)
        except Exception as exc:
            return self._internal_error(exc, t_rx_ns)

    def _internal_error(self, exc: Exception, t_rx_ns: int) -> list[Record]:
        offset = self._scanner.offset
        self._scanner.reset()
        self.counts["internal_error"] += 1
        detail = f"{self.source}: offset {offset}: {type(exc).__name__}: {exc}"
        return [Rejected(self.sensor, t_rx_ns, t_rx_ns, "internal_error", detail)]

    def _records(self, events: list[ScanEvent], t_rx_ns: int) -> list[Record]:
        out: list[Record] = []
        for ev in events:
            if ev.kind == "reject":
                self.counts[ev.reason] += 1
                detail = f"{self.source}: offset {ev.start}: {ev.detail}"
                out.append(Rejected(self.sensor, t_rx_ns, t_rx_ns, ev.reason, detail))
                continue
            if self.parse is not None:
                identity = frame_identity(ev.kind, ev.raw)
                if identity not in self.parse:
                    self.counts[ev.kind] += 1
                    out.append(
                        GnssMessage(self.sensor, t_rx_ns, t_rx_ns, ev.kind, identity, {}, ev.raw)
                    )
                    continue
            try:
                identity, fields = decode_frame(ev.kind, ev.raw)
            except Exception as exc:  # pyubx2/pynmeagps raise many types on odd payloads
                self.counts["undecodable"] += 1
                detail = f"{self.source}: offset {ev.start}: {ev.kind} frame: {type(exc).__name__}: {exc}"
                out.append(Rejected(self.sensor, t_rx_ns, t_rx_ns, "undecodable", detail[:300]))
                continue
            self.counts[ev.kind] += 1
            out.append(
                GnssMessage(self.sensor, t_rx_ns, t_rx_ns, ev.kind, identity, fields, ev.raw)
            )
        return out
