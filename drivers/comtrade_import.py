"""COMTRADE (IEEE C37.111 1991/1999/2013, ASCII/BINARY/BINARY32/FLOAT32, .cfg+.dat or .cff)
to a Rampart recording of power frames (contract §2.5, §3, ``rampart import comtrade``).

The ``comtrade`` package parses the record; this module feeds it text it can
read, because real relay files break it in known ways (see
``tests/data/shared/power/README.md``):

- cfg text in CP1251, GBK or UTF-8: decoded here (UTF-8, then GBK, then CP1251)
  and handed over as text;
- a ``.hdr`` beside the cfg in another encoding: never read (only cfg and dat
  are passed to the parser);
- upper-case ``.CFG``/``.DAT`` and ``.cff`` single files: located/split here;
- blank lines between ASCII ``.dat`` records: dropped;
- 2-digit years (``09/17/15`` reads as year 15): mapped to 1970-2069;
- ``samp = 0`` (times are in the dat's timestamp column): the cfg is told so
  (``nrates = 0``), the first row is placed at the start time and the others
  at their timestamp offsets from it, and frames are cut wherever the sample
  interval changes by more than 1 %;
- a start time before 1980 (relays with an unset clock), or one that is not a
  date at all: replaced with ``FALLBACK_EPOCH_NS`` (2000-01-01T00:00:00Z);
  relative sample times are kept exact;
- the dat holding another number of rows than the cfg's last ``endsamp``
  (the Sepam record declares 2399 of its 2400): the rows present are imported,
  extra ones at the last rate (the parser would drop them, or pad with zeros);
- sample numbers in the dat that start at 0 (the RITM record): times come from
  the row index and the rates, per C37.111, not from the device's numbering.

Times: the cfg's start timestamp is the time of the first sample. A 2013
record's ``time_code`` (e.g. ``-5h30``) converts it to UTC; older revisions do
not say which zone they use and are taken as UTC. The contract's ``fs_hz`` is
an integer, so a fractional rate (frequency-tracking samplers: 2401.51 Hz) is
rounded in the frame; each frame's ``t0_ns`` is still the exact time of its
first sample, so the error stays inside one frame (< 2 us for 256 samples at
2.4 kHz) and never accumulates.

Channels: the record's phase/line voltage channels (unit V/kV and a name such
as UA, Ub1, U21, VA) map in order to the sensor's ``channels``. Residual and
neutral voltages (3U0, Vo, VN) are not phases and are left out. A record with
fewer such channels than the sensor has imports those it has; a record with
none imports its first analog channels (currents, say) and says so. Because
the power decoder rejects frames whose channel count differs from the
sensor's configuration, the recording's ``site.toml`` is the given site with
that sensor's ``channels`` cut to the channels imported.

Scale: per channel, the record's peak maps to 30000 counts, so nothing the
relay recorded clips (flag bit 0 stays clear). Values come in physical units
(kV and mV converted to V, kA to A), primary or secondary as the cfg states.

Nominal voltage and frequency: a relay records secondary volts (57.7 V
phase-to-neutral behind a 100 V VT, say) or primary kilovolts, never the
site's 230 V, so the detectors' per-unit thresholds need the record's own
nominal. ``nominal_hz`` is the cfg's line frequency. ``nominal_v`` is the RMS
of the first whole cycles of the record (the relay's pre-trigger stretch,
normally healthy), median over the imported channels, snapped to the nearest
standard nominal (IEC 60038 system voltages, VT secondaries of IEC 61869-3, and
their phase-to-neutral values) when within 7 % of one. Both are written into
the recording's ``site.toml`` for the imported sensor. A record whose voltage
channels hold no voltage (a relay's self-test, a test-set injection into
currents only) keeps the site's nominal, and the notes say so.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import comtrade
import numpy as np
from cobs import cobs

from drivers.power_frame import encode_frame
from drivers.recording import RecordingWriter
from drivers.site_text import keep_sensors, set_sensor_list, set_sensor_scalar
from drivers.topics import stream_topic
from fusion.config import Sensor, parse_config

log = logging.getLogger("rampart.comtrade")

FALLBACK_EPOCH_NS = 946_684_800 * 1_000_000_000  # 2000-01-01T00:00:00Z
OLDEST_PLAUSIBLE_NS = 315_532_800 * 1_000_000_000  # 1980-01-01T00:00:00Z
PEAK_COUNTS = 30000
RX_DELAY_NS = 1_000_000  # receive time = end of the frame + 1 ms
CFG_ENCODINGS = ("utf-8", "gbk", "cp1251")
PRE_TRIGGER_CYCLES = 5  # cycles at the start of a record whose RMS sets the nominal voltage
NOMINAL_SNAP = 0.07  # snap to a standard nominal within this fraction
NO_VOLTAGE_V = 1.0  # a channel whose peak stays below this holds no voltage
_SQRT3 = math.sqrt(3.0)
# IEC 60038 system voltages (V, line-to-line), VT secondaries (IEC 61869-3); and each / sqrt(3).
_LINE_VOLTAGES = (
    100.0, 110.0, 115.0, 120.0, 200.0, 208.0, 220.0, 230.0, 240.0, 380.0, 400.0, 415.0, 440.0,
    480.0, 600.0, 690.0, 1000.0, 3300.0, 6000.0, 6600.0, 10000.0, 11000.0, 13200.0, 13800.0,
    15000.0, 20000.0, 22000.0, 33000.0, 35000.0, 66000.0, 110000.0, 132000.0, 220000.0,
    230000.0, 380000.0, 400000.0,
)  # fmt: skip
STANDARD_NOMINALS_V = tuple(
    sorted({*_LINE_VOLTAGES, *(round(v / _SQRT3, 1) for v in _LINE_VOLTAGES)})
)

_NS = 1_000_000_000
# Unit as written in the cfg -> (factor to SI, SI unit). "mV"/"MV" differ by case only.
_UNITS = {"V": (1.0, "V"), "kV": (1e3, "V"), "KV": (1e3, "V"), "mV": (1e-3, "V"), "MV": (1e6, "V")}
_UNITS |= {"A": (1.0, "A"), "kA": (1e3, "A"), "KA": (1e3, "A"), "mA": (1e-3, "A")}
# A phase or line voltage: U/V, then a phase designator, then no further letter
# (so U_Adj_section, Un, Ux, Vo and 3U0 are not phases).
_PHASE_VOLTAGE = re.compile(
    r"^[uv][\s_.-]?(?:an|bn|cn|ab|bc|ca|ba|cb|ac|l[123]|12|23|31|21|32|13|[abc123])(?![a-z])",
    re.IGNORECASE,
)
_TIMESTAMP = re.compile(
    r"^\s*(\d{1,2})/(\d{1,2})/(\d{1,4})\s*,\s*(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?\s*$"
)
_TIME_CODE = re.compile(r"^\s*([+-]?)(\d{1,2})(?:h(\d{1,2}))?\s*$", re.IGNORECASE)
_CFF_SECTION = re.compile(
    rb"(?im)^--- *file type: *([a-z]+)(?: +([a-z0-9]+))?(?: *: *(\d+))? *---\s*?\r?\n"
)


class ComtradeImportError(ValueError):
    """A record that cannot be imported; the message names the file and why."""


@dataclass(frozen=True, slots=True)
class ImportSummary:
    frames: int
    samples: int  # per channel
    rate_blocks: int  # sample-rate segments imported (a frame never straddles two)
    channels_used: tuple[str, ...]  # record channel names, in the sensor's channel order
    t_first_ns: int  # first sample
    t_last_ns: int  # last sample
    sensor_channels: tuple[str, ...] = ()  # the sensor's channels these map to
    nominal_v: float = 0.0  # written to the recording's site.toml for the sensor
    nominal_hz: float = 0.0
    scales: tuple[float, ...] = ()  # units per count, per channel
    units: tuple[str, ...] = ()  # V or A per channel
    site_toml: str = ""  # as written to the recording
    notes: tuple[str, ...] = ()  # quirks met and what was done about them


@dataclass(frozen=True, slots=True)
class _Loaded:
    rec: comtrade.Comtrade
    rows: int  # samples present in the dat (and declared by the cfg)
    start_extra_ns: int  # nanosecond digits of the start time below the microsecond
    two_digit_year: bool  # the start date's year was written with 1 or 2 digits


@dataclass(frozen=True, slots=True)
class _Block:
    start: int  # first row
    stop: int  # one past the last row
    fs_hz: float


def import_comtrade(
    cfg_path: Path,
    sensor: Sensor,
    site_toml: str,
    out_dir: Path,
    samples_per_frame: int = 256,
    encoding: str | None = None,
) -> ImportSummary:
    """Write a recording of ``sensor``'s power frames from one COMTRADE record.

    ``cfg_path`` is the ``.cfg`` (its ``.dat`` beside it, any case) or a
    ``.cff``. ``site_toml`` must define ``sensor``. Raises
    ComtradeImportError when the record cannot be read.
    """
    cfg_path = Path(cfg_path)
    if not 1 <= samples_per_frame <= 0xFFFF:
        raise ValueError(f"samples_per_frame must be 1..65535, got {samples_per_frame}")
    config = parse_config(site_toml, source="<site for import>")
    if config.sensor(sensor.id) is None:
        raise ComtradeImportError(f"sensor {sensor.id!r} is not defined in the site configuration")
    notes: list[str] = []
    loaded = _load(cfg_path, encoding, notes)
    rec, rows = loaded.rec, loaded.rows

    chosen = _pick_channels(rec, len(sensor.channels), notes)
    names = tuple(rec.analog_channel_ids[i].strip() for i in chosen)
    sensor_channels = tuple(sensor.channels[: len(chosen)])
    units: list[str] = []
    columns = []
    for i in chosen:
        factor, unit = _unit_factor(rec.cfg.analog_channels[i].uu)
        units.append(unit)
        columns.append(np.asarray(rec.analog[i][:rows], dtype=np.float64) * factor)
    values = np.stack(columns, axis=1)
    missing = ~np.isfinite(values)
    if missing.any():
        notes.append(f"{int(missing.sum())} missing/non-finite values written as 0")
        values[missing] = 0.0
    peak = np.abs(values).max(axis=0)
    scale = np.where(peak > 0, peak / PEAK_COUNTS, 1.0).astype(np.float32)
    counts_all = np.rint(values / scale.astype(np.float64)).astype(np.int16)

    start_ns = _start_time_ns(rec, loaded, notes)
    blocks, t_rel_ns = _blocks_and_times(rec, rows)
    nominal_hz, nominal_v = _nominals(rec, values, blocks, sensor, units, notes)

    # The recording holds this sensor only: the site's other sensors were not recorded.
    site_toml = keep_sensors(site_toml, {sensor.id})
    if len(chosen) != len(sensor.channels):
        site_toml = set_sensor_list(site_toml, sensor.id, "channels", sensor_channels)
        notes.append(
            f"record has {len(chosen)} usable channels for {len(sensor.channels)} configured: "
            f"site.toml channels of {sensor.id} set to {list(sensor_channels)}"
        )
    if sensor.kind == "power":
        site_toml = set_sensor_scalar(site_toml, sensor.id, "nominal_hz", nominal_hz)
        site_toml = set_sensor_scalar(site_toml, sensor.id, "nominal_v", nominal_v)
    if sensor.transport == "serial":
        transport, channel = "serial", sensor.id
    else:
        transport, channel = "mqtt", stream_topic(config.site.id, sensor, "waveform")
    board = sensor.board if sensor.board is not None else 0

    frames = 0
    t_last_ns = start_ns
    with RecordingWriter(out_dir, site_toml) as writer:
        for block in blocks:
            fs_int = max(1, round(block.fs_hz))
            for i0 in range(block.start, block.stop, samples_per_frame):
                i1 = min(i0 + samples_per_frame, block.stop)
                t0 = start_ns + int(t_rel_ns[i0])
                frame = encode_frame(board, frames, t0, fs_int, scale, counts_all[i0:i1])
                duration_ns = ((i1 - i0) * _NS) // fs_int
                payload = cobs.encode(frame) + b"\x00" if transport == "serial" else frame
                writer.append(t0 + duration_ns + RX_DELAY_NS, transport, channel, payload)
                frames += 1
        t_last_ns = start_ns + int(t_rel_ns[rows - 1])
    return ImportSummary(
        frames=frames,
        samples=rows,
        rate_blocks=len(blocks),
        channels_used=names,
        t_first_ns=start_ns + int(t_rel_ns[0]),
        t_last_ns=t_last_ns,
        sensor_channels=sensor_channels,
        nominal_v=nominal_v,
        nominal_hz=nominal_hz,
        scales=tuple(float(s) for s in scale),
        units=tuple(units),
        site_toml=site_toml,
        notes=tuple(notes),
    )


# --- reading -----------------------------------------------------------------


def _load(cfg_path: Path, encoding: str | None, notes: list[str]) -> _Loaded:
    if not cfg_path.is_file():
        raise ComtradeImportError(f"{cfg_path}: no such file")
    raw = cfg_path.read_bytes()
    if cfg_path.suffix.lower() == ".cff":
        cfg_bytes, dat = _split_cff(cfg_path, raw)
    else:
        dat_path = _sibling(cfg_path, ".dat")
        if dat_path is None:
            raise ComtradeImportError(f"{cfg_path}: no .dat file beside it")
        cfg_bytes, dat = raw, dat_path.read_bytes()
    lines = _decode_text(cfg_bytes, encoding, notes).splitlines()
    lay = _layout(lines, cfg_path)

    if lay.ft == "ASCII":
        text = dat.decode("latin-1").replace("\x1a", "").splitlines()
        kept = [ln for ln in text if ln.strip()]
        if len(kept) != len(text):
            notes.append(f"dropped {len(text) - len(kept)} blank lines from the ASCII .dat")
        dat_arg: str | bytes = "\n".join(kept)
        present = len(kept)
    else:
        width = 2 if lay.ft == "BINARY" else 4
        row = 8 + width * lay.n_analog + 2 * math.ceil(lay.n_status / 16)
        present = len(dat) // row
        if len(dat) % row:
            notes.append(f".dat has {len(dat) % row} bytes after its last whole record")
        dat_arg = dat[: present * row]
    if present == 0:
        raise ComtradeImportError(f"{cfg_path}: the .dat holds no samples")
    if present != lay.last_endsamp:
        # The parser reads exactly the cfg's last endsamp rows (padding with
        # zeros); what the dat holds is the record. Extra rows continue at the
        # last rate, as C37.111 readers treat them.
        notes.append(
            f".dat holds {present} samples, cfg declares {lay.last_endsamp}: imported {present}"
        )
    rates = list(lay.rates)
    if lay.nrates == 0 or any(r <= 0 for r, _ in rates):
        # samp = 0: times come from the dat's timestamp column. The parser only
        # knows that from nrates = 0 (and raises on samp = 0 otherwise).
        notes.append("samp = 0: sample times taken from the .dat timestamps")
        rate_lines = ["0", f"0,{present}"]
    else:
        rates[-1] = (rates[-1][0], present)
        rate_lines = [str(lay.nrates)] + [
            f"{lay.rate_text[k]},{e}" for k, (_, e) in enumerate(rates)
        ]
    lines[lay.rates_at : lay.rates_at + 1 + max(lay.nrates, 1)] = rate_lines
    ts_at = lay.rates_at + len(rate_lines)
    extra_ns, two_digit_year = 0, False
    for k in (ts_at, ts_at + 1):
        # A timestamp the parser cannot make a datetime of would abort the read;
        # it becomes the fallback epoch (noted when the start time is checked).
        if k < len(lines) and not _valid_timestamp(lines[k]):
            notes.append(f"cfg line {k + 1} {lines[k].strip()!r} is not a valid timestamp")
            lines[k] = "01/01/1900,00:00:00.000000"
        elif k < len(lines) and _TIMESTAMP.match(lines[k]).group(7) is None:
            lines[k] = lines[k].rstrip() + ".000000"  # the parser needs a fraction
    m = _TIMESTAMP.match(lines[ts_at]) if ts_at < len(lines) else None
    if m and m.group(7) and len(m.group(7)) > 6:  # datetime keeps microseconds only
        extra_ns = int(m.group(7)[6:9].ljust(3, "0"))
    two_digit_year = bool(m) and len(m.group(3)) <= 2

    rec = comtrade.Comtrade(use_numpy_arrays=True, use_double_precision=True, ignore_warnings=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec.read("\n".join(lines) + "\n", dat_arg)
    except Exception as exc:  # the parser raises ValueError, IndexError, ComtradeError...
        raise ComtradeImportError(
            f"{cfg_path}: not a readable COMTRADE record: {type(exc).__name__}: {exc}"
        ) from exc
    return _Loaded(rec, present, extra_ns, two_digit_year)


@dataclass(frozen=True, slots=True)
class _Layout:
    n_analog: int
    n_status: int
    rates_at: int  # index of the nrates line
    nrates: int
    rates: tuple[tuple[float, int], ...]  # (samp, endsamp)
    rate_text: tuple[str, ...]  # samp as written
    ft: str  # ASCII | BINARY | BINARY32 | FLOAT32

    @property
    def last_endsamp(self) -> int:
        return self.rates[-1][1]


def _layout(lines: list[str], path: Path) -> _Layout:
    """Where the cfg keeps what the quirk fixes need (C37.111 line order)."""
    try:
        parts = [p.strip() for p in lines[1].split(",")]
        n_a = int(parts[1].rstrip("Aa"))
        n_d = int(parts[2].rstrip("Dd"))
        at = 2 + n_a + n_d + 1
        nrates = int(lines[at].strip())
        rate_lines = lines[at + 1 : at + 1 + max(nrates, 1)]
        rates = tuple((float(r.split(",")[0]), int(r.split(",")[1])) for r in rate_lines)
        rate_text = tuple(r.split(",")[0].strip() for r in rate_lines)
        ft = lines[at + 1 + max(nrates, 1) + 2].strip().upper()
    except (IndexError, ValueError) as exc:
        raise ComtradeImportError(
            f"{path}: cfg channel, rate or format lines unreadable ({exc})"
        ) from exc
    if ft not in ("ASCII", "BINARY", "BINARY32", "FLOAT32"):
        raise ComtradeImportError(f"{path}: unknown data file type {ft!r}")
    return _Layout(n_a, n_d, at, nrates, rates, rate_text, ft)


def _sibling(path: Path, ext: str) -> Path | None:
    for cand in (path.with_suffix(ext), path.with_suffix(ext.upper())):
        if cand.is_file():
            return cand
    for cand in sorted(path.parent.glob(path.stem + ".*")):
        if cand.suffix.lower() == ext:
            return cand
    return None


def _split_cff(path: Path, raw: bytes) -> tuple[bytes, bytes]:
    sections = list(_CFF_SECTION.finditer(raw))
    cfg = dat = None
    for k, m in enumerate(sections):
        kind = m.group(1).decode("ascii").upper()
        end = sections[k + 1].start() if k + 1 < len(sections) else len(raw)
        body = raw[m.end() : end]
        if kind == "CFG":
            cfg = body
        elif kind == "DAT":
            ft = (m.group(2) or b"ASCII").decode("ascii").upper()
            if m.group(3) is not None and ft != "ASCII":
                body = raw[m.end() : m.end() + int(m.group(3))]
            dat = body
    if cfg is None or dat is None:
        raise ComtradeImportError(f"{path}: .cff without a CFG and a DAT section")
    return cfg, dat


def _decode_text(data: bytes, encoding: str | None, notes: list[str]) -> str:
    for enc in (encoding,) if encoding else CFG_ENCODINGS:
        try:
            text = data.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
        if enc != "utf-8":
            notes.append(f"cfg decoded as {enc}")
        return text.lstrip("\ufeff")
    notes.append("cfg decoded as latin-1 (no candidate encoding fitted)")
    return data.decode("latin-1")


def _valid_timestamp(line: str) -> bool:
    m = _TIMESTAMP.match(line)
    if not m:
        return False
    a, b, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
    hh, mm, ss = int(m.group(4)), int(m.group(5)), int(m.group(6))
    # day/month order differs between revisions; either reading must be a date
    try:
        dt.date(max(year, 1), b, a)
    except ValueError:
        try:
            dt.date(max(year, 1), a, b)
        except ValueError:
            return False
    return hh < 24 and mm < 60 and ss < 60


# --- channels, time ----------------------------------------------------------


def _nominals(
    rec: comtrade.Comtrade,
    values: np.ndarray,
    blocks: list[_Block],
    sensor: Sensor,
    units: list[str],
    notes: list[str],
) -> tuple[float, float]:
    """(nominal_hz, nominal_v) of the record: its line frequency and pre-trigger voltage."""
    f = float(getattr(rec.cfg, "frequency", 0.0) or 0.0)
    nominal_hz = f if 10.0 <= f <= 1000.0 else sensor.nominal_hz
    if nominal_hz != f:
        notes.append(f"cfg line frequency {f:g} Hz unusable: nominal_hz {nominal_hz:g} kept")
    volts = [
        k
        for k in range(values.shape[1])
        if units[k] == "V" and np.abs(values[:, k]).max() >= NO_VOLTAGE_V
    ]
    if not volts or not blocks:
        notes.append(f"no voltage on the imported channels: nominal_v {sensor.nominal_v:g} kept")
        return nominal_hz, sensor.nominal_v
    first = blocks[0]
    per_cycle = first.fs_hz / nominal_hz
    whole = int(min(PRE_TRIGGER_CYCLES, (first.stop - first.start) // max(per_cycle, 1.0)))
    n = round(whole * per_cycle) if whole >= 1 else first.stop - first.start
    head = values[first.start : first.start + n][:, volts]
    measured = float(np.median(np.sqrt(np.mean(head * head, axis=0))))
    if measured < NO_VOLTAGE_V:
        notes.append(f"no voltage at the start of the record: nominal_v {sensor.nominal_v:g} kept")
        return nominal_hz, sensor.nominal_v
    best = min(STANDARD_NOMINALS_V, key=lambda v: abs(v - measured) / v)
    if abs(best - measured) <= NOMINAL_SNAP * best:
        nominal_v = best
        notes.append(
            f"nominal_v {nominal_v:g} V (the record starts at {measured:.4g} V rms), "
            f"nominal_hz {nominal_hz:g}"
        )
    else:
        nominal_v = float(f"{measured:.3g}")
        notes.append(
            f"nominal_v {nominal_v:g} V: the record's starting level (no standard nominal "
            f"within {NOMINAL_SNAP:.0%}), nominal_hz {nominal_hz:g}"
        )
    return nominal_hz, nominal_v


def _unit_factor(unit: str) -> tuple[float, str]:
    unit = unit.strip()
    if unit in _UNITS:
        return _UNITS[unit]
    for name, value in _UNITS.items():
        if unit.lower() == name.lower():
            return value
    return 1.0, unit


def _pick_channels(rec: comtrade.Comtrade, wanted: int, notes: list[str]) -> list[int]:
    chans = rec.cfg.analog_channels

    def is_volt(i: int) -> bool:
        return chans[i].uu.strip().lower() in ("v", "kv", "mv", "")

    phases = [
        i for i in range(len(chans)) if is_volt(i) and _PHASE_VOLTAGE.match(chans[i].name.strip())
    ]
    if not phases:
        phases = [i for i in range(len(chans)) if chans[i].uu.strip().lower() in ("v", "kv", "mv")]
        if phases:
            notes.append("no channel named as a phase voltage: using the channels in volts")
    if not phases:
        phases = list(range(len(chans)))
        if phases:
            notes.append("no voltage channels: imported the first analog channels as they are")
    if not phases:
        raise ComtradeImportError("record has no analog channels")
    chosen = phases[:wanted]
    if len(chosen) < wanted:
        notes.append(f"only {len(chosen)} usable channels for {wanted} configured")
    return chosen


def _start_time_ns(rec: comtrade.Comtrade, loaded: _Loaded, notes: list[str]) -> int:
    start: dt.datetime = rec.start_timestamp
    year = start.year
    if loaded.two_digit_year:  # POSIX %y pivot
        year += 2000 if year < 70 else 1900
        notes.append(f"2-digit year {start.year:02d} read as {year}")
    try:
        start = start.replace(year=year)
    except ValueError:  # 29 February of a year that is not leap
        start = start.replace(year=year, day=28)
    epoch = dt.datetime(1970, 1, 1)
    delta = start - epoch
    ns = (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000
    ns += loaded.start_extra_ns  # the sub-microsecond digits a datetime cannot hold
    code = str(getattr(rec.cfg, "_time_code", "") or "").strip()
    m = _TIME_CODE.match(code) if code else None
    if m and code not in ("0", "+0", "-0"):
        offset_s = (int(m.group(2)) * 3600 + int(m.group(3) or 0) * 60) * (
            -1 if m.group(1) == "-" else 1
        )
        ns -= offset_s * _NS
        notes.append(f"time_code {code}: start converted to UTC")
    elif rec.rev_year != comtrade.REV_2013:
        notes.append(f"revision {rec.rev_year} has no time zone: start taken as UTC")
    if ns < OLDEST_PLAUSIBLE_NS:
        notes.append(
            f"start time {start.isoformat()} is before 1980: replaced with 2000-01-01T00:00:00Z"
        )
        ns = FALLBACK_EPOCH_NS
    return ns


def _blocks_and_times(rec: comtrade.Comtrade, rows: int) -> tuple[list[_Block], np.ndarray]:
    """Rate blocks and each row's time after the first sample, in ns."""
    if rec.cfg.timestamp_critical:
        t = np.asarray(rec.time[:rows], dtype=np.float64)
        t_ns = np.rint((t - t[0]) * 1e9).astype(np.int64)
        return _timestamp_blocks(t_ns), t_ns
    # C37.111 sample numbering, as the parser does it: the first row is at
    # t = 0 and a segment's first row comes 1/samp after the previous row.
    # Row indices are used, not the dat's sample numbers (some devices start
    # those at 0).
    rates = [(float(samp), int(endsamp)) for samp, endsamp in rec.cfg.sample_rates]
    if rates[-1][1] < rows:  # rows past the last endsamp continue at the last rate
        rates.append((rates[-1][0], rows))
    blocks: list[_Block] = []
    t_ns = np.empty(rows, dtype=np.int64)
    t_prev = -1.0 / rates[0][0]  # time of the (virtual) row before the first
    start = 0
    for samp, endsamp in rates:
        stop = min(endsamp, rows)
        if stop > start:
            t = t_prev + np.arange(1, stop - start + 1, dtype=np.float64) / samp
            t_ns[start:stop] = np.rint(t * 1e9).astype(np.int64)
            blocks.append(_Block(start, stop, samp))
            t_prev = float(t[-1])
            start = stop
        if start >= rows:
            break
    return blocks, t_ns


def _timestamp_blocks(t_ns: np.ndarray) -> list[_Block]:
    """Cut a timestamped record where its sample interval changes by more than 1 %.

    As with C37.111 rate segments, a row belongs to the block of the interval
    that leads to it: a block's first row comes one new interval after the
    previous block's last.
    """
    n = len(t_ns)
    dt_ns = np.diff(t_ns).astype(np.float64)
    blocks: list[_Block] = []
    start = 0
    while start < n:
        ref_at = start - 1 if start > 0 else 0
        if ref_at >= len(dt_ns):  # a lone row
            blocks.append(_Block(start, n, blocks[-1].fs_hz if blocks else 1.0))
            break
        ref = dt_ns[ref_at]
        stop = start + 1
        while stop < n and abs(dt_ns[stop - 1] - ref) <= 0.01 * ref:
            stop += 1
        med = float(np.median(dt_ns[ref_at : max(stop - 1, ref_at + 1)]))
        blocks.append(_Block(start, stop, 1e9 / med if med > 0 else 1.0))
        start = stop
    return blocks
