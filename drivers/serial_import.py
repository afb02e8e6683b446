"""``rampart import serial``: a raw serial capture becomes a recording (contract §3, §6).

A capture is the byte stream a device sent (e.g. a GNSS receiver log) with no
receive timestamps. The import cuts it into chunks as serial reads would
return them and gives each chunk a receive time:

- From the device's own time messages where present (``device``): NMEA RMC
  and ZDA (date and time), GGA/GLL/GNS (time of day, dated by the nearest
  dated message), UBX NAV-PVT (with validDate and validTime), NAV-TIMEUTC
  (validUTC), NAV-TIMEGPS and NAV-SOL (GPS week and time of week, leap
  seconds from the message or from the IERS table below), and the iTOW of
  any other UBX NAV message once a message pairing iTOW with UTC is known.
  The first message of each new epoch anchors the byte clock: its first byte
  goes out at the epoch time and later bytes follow at the baud rate (10 bits
  per byte: start, 8 data, stop). Bytes before the first anchor are paced
  backwards from it. A chunk is stamped with the arrival of its last byte, and
  times never go backwards (a slow baud that overruns the next epoch is
  clamped, not reordered).
- Otherwise (``baud``): pacing at the configured baud (``sensor.baud``, else
  9600) from ``start_ns`` (default 2000-01-01T00:00:00Z: a file's mtime is not
  reproducible).

Chunks hold at most ``chunk_bytes`` and a new chunk starts at every epoch
anchor (a serial read returns when the line goes idle between epochs).

gpsd regression logs carry '#' comment lines between packets;
``strip_gpsd_comments`` removes them (the import does so by default).
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pynmeagps import NMEAReader
from pyubx2 import UBXReader

from drivers.gnss_stream import FrameScanner
from drivers.recording import RecordingWriter
from drivers.site_text import keep_sensors
from fusion.config import Sensor

NS = 1_000_000_000
DEFAULT_START_NS = 946_684_800 * NS  # 2000-01-01T00:00:00Z
DEFAULT_BAUD = 9600
BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit
GPS_EPOCH_NS = 315_964_800 * NS  # 1980-01-06T00:00:00Z
WEEK_NS = 604_800 * NS
DAY_NS = 86_400 * NS

# GPS - UTC in seconds, from the date each value took effect (IERS Bulletin C).
_LEAP_TABLE = (
    (dt.date(1999, 1, 1), 13),
    (dt.date(2006, 1, 1), 14),
    (dt.date(2009, 1, 1), 15),
    (dt.date(2012, 7, 1), 16),
    (dt.date(2015, 7, 1), 17),
    (dt.date(2017, 1, 1), 18),
)

_NMEA_DATED = (b"RMC", b"ZDA")
_NMEA_TOD = (b"GGA", b"GLL", b"GNS")
_UBX_NAV = 0x01
_UBX_NAV_PVT, _UBX_NAV_TIMEUTC, _UBX_NAV_TIMEGPS, _UBX_NAV_SOL = 0x07, 0x21, 0x20, 0x06


@dataclass(frozen=True, slots=True)
class ImportSummary:
    rows: int
    bytes: int
    messages: int  # complete frames that passed their checksum
    t_first_ns: int
    t_last_ns: int
    time_source: str  # "device" | "baud"


def strip_gpsd_comments(data: bytes) -> bytes:
    """Remove gpsd test-log comments: a '#' at a packet boundary up to and including '\\n'.

    A packet boundary is the start of the data or the end of a complete frame
    or comment; a '#' inside a frame (UBX payloads contain any byte) or in
    the middle of garbage is data and stays.
    """
    scanner = FrameScanner(max_buffer=max(len(data), 65536) + 16, comments=True)
    events = scanner.push(data) + scanner.finish()
    parts = []
    last = 0
    for ev in events:
        if ev.kind == "comment":
            parts.append(data[last : ev.start])
            last = ev.end
    parts.append(data[last:])
    return b"".join(parts)


def gps_leap_seconds(day: dt.date) -> int:
    """GPS - UTC (s) on a date, from the table; 13 before 1999 (older logs are not expected)."""
    leap = 13
    for since, value in _LEAP_TABLE:
        if day >= since:
            leap = value
    return leap


def _utc_ns(
    year: int, month: int, day: int, hour: int, minute: int, sec: int, nano: int = 0
) -> int:
    t = dt.datetime(year, month, day, tzinfo=dt.UTC) + dt.timedelta(
        hours=hour, minutes=minute, seconds=sec
    )
    return int(t.timestamp()) * NS + nano


def _tod_ns(t: dt.time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * NS + t.microsecond * 1000


@dataclass(slots=True)
class _TimeMark:
    offset: int  # stream offset of the message's first byte
    utc_ns: int | None = None  # full UTC when the message says it
    tod_ns: int | None = None  # NMEA time of day without a date
    itow_ms: int | None = None  # UBX GPS time of week


def _nmea_mark(raw: bytes, offset: int) -> _TimeMark | None:
    kind = raw[3:6]
    if raw[1:2] == b"P" or (kind not in _NMEA_DATED and kind not in _NMEA_TOD):
        return None
    msg = NMEAReader.parse(raw, validate=1)
    if msg is None:
        return None
    tod = getattr(msg, "time", "")
    if not isinstance(tod, dt.time):
        return None
    if kind == b"RMC":
        day = getattr(msg, "date", "")
        if isinstance(day, dt.date):
            return _TimeMark(
                offset, utc_ns=_utc_ns(day.year, day.month, day.day, 0, 0, 0) + _tod_ns(tod)
            )
        return _TimeMark(offset, tod_ns=_tod_ns(tod))
    if kind == b"ZDA":
        y, m, d = (getattr(msg, k, "") for k in ("year", "month", "day"))
        if all(isinstance(v, int) for v in (y, m, d)) and y > 1980:
            return _TimeMark(offset, utc_ns=_utc_ns(y, m, d, 0, 0, 0) + _tod_ns(tod))
    return _TimeMark(offset, tod_ns=_tod_ns(tod))


def _ubx_mark(raw: bytes, offset: int, leap_s: list[int | None]) -> _TimeMark | None:
    if raw[2] != _UBX_NAV or len(raw) < 12:
        return None
    msg_id = raw[3]
    # Most NAV messages start with iTOW, but not all (NAV-ODO, NAV-HPPOSLLH: version
    # first), so the parser names it.
    msg = UBXReader.parse(raw, validate=1)
    get = msg.__dict__.get
    itow_ms = get("iTOW")
    if not isinstance(itow_ms, int):
        return None
    if msg_id not in (_UBX_NAV_PVT, _UBX_NAV_TIMEUTC, _UBX_NAV_TIMEGPS, _UBX_NAV_SOL):
        return _TimeMark(offset, itow_ms=itow_ms)
    if msg_id in (_UBX_NAV_PVT, _UBX_NAV_TIMEUTC):
        valid = (
            (get("validDate") and get("validTime")) if msg_id == _UBX_NAV_PVT else get("validUTC")
        )
        if valid and get("year", 0) > 1980:
            sec = get("second") if msg_id == _UBX_NAV_PVT else get("sec")
            utc = _utc_ns(get("year"), get("month"), get("day"), get("hour"), get("min"), sec)
            return _TimeMark(offset, utc_ns=utc + int(get("nano", 0)), itow_ms=itow_ms)
        return _TimeMark(offset, itow_ms=itow_ms)
    if msg_id == _UBX_NAV_TIMEGPS:
        if get("leapSValid"):
            leap_s[0] = int(get("leapS"))
        ok = get("towValid") and get("weekValid")
    else:  # NAV-SOL
        ok = get("wknSet") and get("towSet")
    week = int(get("week", 0) or 0)
    if not ok or week <= 0:
        return _TimeMark(offset, itow_ms=itow_ms)
    gps_ns = GPS_EPOCH_NS + week * WEEK_NS + itow_ms * 1_000_000 + int(get("fTOW", 0))
    leap = leap_s[0]
    if leap is None:
        leap = gps_leap_seconds(dt.datetime.fromtimestamp(gps_ns // NS, dt.UTC).date())
    return _TimeMark(offset, utc_ns=gps_ns - leap * NS, itow_ms=itow_ms)


def device_time_marks(data: bytes) -> list[tuple[int, int]]:
    """(stream offset of first byte, UTC ns) of every message that states its epoch time.

    Times of day are dated by the nearest message that has a date (the day
    that puts them closest to it); iTOWs are placed by the nearest message
    that pairs an iTOW with UTC (week rollover and leap seconds then cancel).
    Messages that the parsers reject are skipped: this is a time source, not
    a decoder.
    """
    scanner = FrameScanner(max_buffer=65536)
    leap_s: list[int | None] = [None]
    marks: list[_TimeMark] = []
    for ev in scanner.push(data) + scanner.finish():
        try:
            if ev.kind == "NMEA":
                mark = _nmea_mark(ev.raw, ev.start)
            elif ev.kind == "UBX":
                mark = _ubx_mark(ev.raw, ev.start, leap_s)
            else:
                mark = None
        except Exception:  # a frame the parser cannot decode carries no usable time
            mark = None
        if mark is not None:
            marks.append(mark)

    dated = [i for i, m in enumerate(marks) if m.utc_ns is not None]
    paired = [i for i in dated if marks[i].itow_ms is not None]
    out: list[tuple[int, int]] = []
    for i, m in enumerate(marks):
        if m.utc_ns is not None:
            out.append((m.offset, m.utc_ns))
        elif m.tod_ns is not None and dated:
            ref = marks[_nearest(dated, i)].utc_ns
            day0 = ref - ref % DAY_NS
            t = day0 + m.tod_ns
            t += DAY_NS * round((ref - t) / DAY_NS)
            out.append((m.offset, t))
        elif m.itow_ms is not None and paired:
            ref = marks[_nearest(paired, i)]
            d_ms = (m.itow_ms - ref.itow_ms + 302_400_000) % 604_800_000 - 302_400_000
            out.append((m.offset, ref.utc_ns + d_ms * 1_000_000))
    return out


def _nearest(indices: list[int], i: int) -> int:
    """The index in sorted ``indices`` at or before ``i``, else the first after it."""
    k = bisect.bisect_right(indices, i)
    return indices[k - 1] if k else indices[0]


def epoch_anchors(marks: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The first message of each new (later) epoch; repeats and older times do not re-anchor."""
    anchors: list[tuple[int, int]] = []
    for offset, t in marks:
        if not anchors or t > anchors[-1][1]:
            anchors.append((offset, t))
    return anchors


def chunk_times(
    n_bytes: int,
    anchors: list[tuple[int, int]],
    baud: int,
    chunk_bytes: int,
    start_ns: int = DEFAULT_START_NS,
) -> tuple[np.ndarray, np.ndarray]:
    """Chunk end offsets (exclusive) and their receive times (arrival of the last byte), monotone."""
    byte_ns = BITS_PER_BYTE * NS / baud
    anchor_off = np.array([a[0] for a in anchors] or [0], dtype=np.int64)
    anchor_t = np.array([a[1] for a in anchors] or [start_ns], dtype=np.int64)
    # A read returns at each epoch's first byte (the line was idle before it); between
    # epochs reads are full, counted from the epoch start.
    bounds = sorted({0, n_bytes, *(int(o) for o in anchor_off if 0 < o < n_bytes)})
    pieces = [np.arange(lo + chunk_bytes, hi, chunk_bytes) for lo, hi in itertools.pairwise(bounds)]
    ends = np.unique(np.concatenate([*pieces, np.array(bounds[1:], dtype=np.int64)])).astype(
        np.int64
    )
    last = ends - 1
    k = np.searchsorted(anchor_off, last, side="right") - 1
    k = np.clip(k, 0, len(anchor_off) - 1)  # bytes before the first anchor pace backwards from it
    t = anchor_t[k] + np.round((last - anchor_off[k] + 1) * byte_ns).astype(np.int64)
    t = np.maximum.accumulate(t) if len(t) else t
    return ends, t


def import_serial(
    capture: Path,
    sensor: Sensor,
    site_toml: str,
    out_dir: Path,
    chunk_bytes: int = 256,
    start_ns: int | None = None,
    strip_comments: bool = True,
) -> ImportSummary:
    """Write ``capture`` as a recording of serial sensor ``sensor`` (see module docstring)."""
    data = Path(capture).read_bytes()
    if strip_comments:
        data = strip_gpsd_comments(data)
    chunk_bytes = max(int(chunk_bytes), 1)
    baud = sensor.baud or DEFAULT_BAUD
    marks = device_time_marks(data)
    anchors = epoch_anchors(marks)
    ends, times = chunk_times(
        len(data), anchors, baud, chunk_bytes, DEFAULT_START_NS if start_ns is None else start_ns
    )
    scanner = FrameScanner(max_buffer=65536)
    messages = sum(
        1 for ev in scanner.push(data) + scanner.finish() if ev.kind in ("NMEA", "UBX", "RTCM3")
    )
    # The recording holds this sensor only: the site's other sensors were not recorded.
    with RecordingWriter(out_dir, keep_sensors(site_toml, {sensor.id})) as writer:
        begin = 0
        for end, t in zip(ends.tolist(), times.tolist(), strict=True):
            writer.append(t, "serial", sensor.id, data[begin:end])
            begin = end
    return ImportSummary(
        rows=len(ends),
        bytes=len(data),
        messages=messages,
        t_first_ns=int(times[0]) if len(times) else 0,
        t_last_ns=int(times[-1]) if len(times) else 0,
        time_source="device" if anchors else "baud",
    )
