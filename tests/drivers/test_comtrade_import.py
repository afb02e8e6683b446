"""COMTRADE import on the real relay records and the format fixtures.

Every check compares against an independent reading of the files written
here (struct and plain text parsing per C37.111), not against the ``comtrade``
package the importer wraps.
"""

from __future__ import annotations

import itertools
import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from cobs import cobs

from drivers.comtrade_import import (
    FALLBACK_EPOCH_NS,
    PEAK_COUNTS,
    ComtradeImportError,
    import_comtrade,
)
from drivers.power_frame import decode_frame
from drivers.power_stream import PowerMqttDecoder, PowerSerialDecoder
from drivers.recording import RecordingReader
from fusion.config import parse_config
from fusion.records import PowerFrame

POWER = Path(__file__).resolve().parents[1] / "data" / "shared" / "power"
SITE = (
    Path(__file__).resolve().parents[1] / "data" / "shared" / "recording-sample" / "site.toml"
).read_text()
MQTT_SITE = SITE.replace(
    'id = "pq-b"\nkind = "power"\ntransport = "serial"\nport = "/dev/ttyUSB1"\nbaud = 921600',
    'id = "pq-b"\nkind = "power"\ntransport = "mqtt"',
)

RECORDS = [
    # file, encoding of the cfg, UTC start ns, nrates
    ("ru_terminal_mv_intermittent_earth_fault.cfg", "cp1251", 1_495_699_996_587_000_000, 83),
    ("sac_psl603_demotest_ascii1991.cfg", "gbk", 1_442_487_172_987_545_000, 8),
    ("sepam_s40_mv_earth_fault_trip.CFG", "utf-8", 1_417_676_508_813_000_000, 1),
    ("ritm_vc4_powerup_binary32.cfg", "utf-8", 1_266_874_889_659_551_000, 1),
    ("comtrade_fixtures/sample_ascii.cfg", "utf-8", 1_294_831_530_075_011_000, 1),  # -5h30 -> UTC
    ("comtrade_fixtures/sample_bin.cfg", "utf-8", 1_483_803_341_958_268_000, 1),
    ("comtrade_fixtures/sample_ascii.cff", "utf-8", 1_294_831_530_075_011_000, 1),
    ("comtrade_fixtures/sample_float32.cff", "utf-8", 1_613_583_432_422_969_065, 1),
]

_UNIT = {"v": 1.0, "kv": 1e3, "a": 1.0, "ka": 1e3}


class Independent:
    """A plain C37.111 reading of one record: enough to check the importer."""

    def __init__(self, path: Path, encoding: str):
        raw = path.read_bytes()
        if path.suffix.lower() == ".cff":
            parts = re.split(rb"(?im)^--- *file type: *([a-z]+)[^\n]*---\s*?\n", raw)
            sections = {parts[i].decode().upper(): parts[i + 1] for i in range(1, len(parts), 2)}
            cfg_bytes, self.dat = sections["CFG"], sections["DAT"]
        else:
            cfg_bytes = raw
            dat = [
                p
                for p in path.parent.iterdir()
                if p.stem == path.stem and p.suffix.lower() == ".dat"
            ]
            self.dat = dat[0].read_bytes()
        lines = cfg_bytes.decode(encoding).splitlines()
        counts = lines[1].split(",")
        self.n_a, self.n_d = int(counts[1].strip()[:-1]), int(counts[2].strip()[:-1])
        self.analog = []
        for ln in lines[2 : 2 + self.n_a]:
            f = [c.strip() for c in ln.split(",")]
            self.analog.append(
                {"name": f[1], "unit": f[4], "a": float(f[5]), "b": float(f[6] or 0)}
            )
        at = 2 + self.n_a + self.n_d + 1
        self.nrates = int(lines[at])
        self.rates = [
            (float(r.split(",")[0]), int(r.split(",")[1]))
            for r in lines[at + 1 : at + 1 + self.nrates]
        ]
        self.ft = lines[at + 1 + self.nrates + 2].strip().upper()

    def rows(self) -> int:
        if self.ft == "ASCII":
            return sum(1 for ln in self.dat.decode("latin-1").splitlines() if ln.strip())
        width = 2 if self.ft == "BINARY" else 4
        return len(self.dat) // (8 + width * self.n_a + 2 * math.ceil(self.n_d / 16))

    def values(self, name: str) -> np.ndarray:
        k = next(i for i, ch in enumerate(self.analog) if ch["name"] == name)
        ch = self.analog[k]
        if self.ft == "ASCII":
            rows = [ln.split(",") for ln in self.dat.decode("latin-1").splitlines() if ln.strip()]
            raw = np.array([float(r[2 + k]) for r in rows])
        else:
            width = 2 if self.ft == "BINARY" else 4
            size = 8 + width * self.n_a + 2 * math.ceil(self.n_d / 16)
            code = {"BINARY": "<h", "BINARY32": "<i", "FLOAT32": "<f"}[self.ft]
            raw = np.array(
                [
                    struct.unpack_from(code, self.dat, r * size + 8 + width * k)[0]
                    for r in range(self.rows())
                ]
            )
        return (ch["a"] * raw + ch["b"]) * _UNIT.get(ch["unit"].lower(), 1.0)


def read_back(out: Path):
    """Frames of the written recording, decoded with decode_frame only."""
    rec = RecordingReader(out)
    frames = []
    for m in rec.messages():
        data = cobs.decode(m.payload[:-1]) if m.transport == "serial" else m.payload
        assert m.transport != "serial" or m.payload.endswith(b"\x00")
        f, reason, detail = decode_frame(data)
        assert reason is None, detail
        frames.append((m, f))
    return rec, frames


@pytest.mark.parametrize("name, encoding, start_ns, nrates", RECORDS, ids=[r[0] for r in RECORDS])
def test_real_records_import(tmp_path, name, encoding, start_ns, nrates):
    cfg = parse_config(SITE)
    sensor = cfg.sensor("pq-a")
    ref = Independent(POWER / name, encoding)
    out = tmp_path / "rec"
    summary = import_comtrade(POWER / name, sensor, SITE, out)

    assert summary.samples == ref.rows()
    assert summary.rate_blocks == nrates == len(ref.rates)
    assert summary.t_first_ns == start_ns
    assert 1 <= len(summary.channels_used) <= 3

    rec, frames = read_back(out)
    assert summary.frames == len(frames)
    assert [f.seq for _, f in frames] == list(range(len(frames)))
    assert all(f.board == sensor.board and not f.clipped and not f.burst for _, f in frames)
    assert sum(f.n_samp for _, f in frames) == summary.samples
    assert frames[0][1].t0_ns == summary.t_first_ns

    # Frames never straddle a rate block: each block is a whole number of frames at its rate.
    bounds = [0] + [min(e, ref.rows()) for _, e in ref.rates]
    bounds[-1] = ref.rows()  # rows past the last endsamp continue at the last rate
    expect_frames = sum(math.ceil((b - a) / 256) for a, b in itertools.pairwise(bounds) if b > a)
    assert summary.frames == expect_frames
    i = 0
    for (samp, _), a, b in zip(ref.rates, bounds, bounds[1:], strict=False):
        block = []
        n = 0
        while n < b - a:
            block.append(frames[i][1])
            n += frames[i][1].n_samp
            i += 1
        assert n == b - a
        assert {f.fs_hz for f in block} == {max(1, round(samp))}
        for x, y in itertools.pairwise(block):  # exact spacing inside a block
            assert abs((y.t0_ns - x.t0_ns) - x.n_samp * 1e9 / samp) <= 1
    # Receive time: end of the frame + 1 ms.
    for m, f in frames:
        assert m.t_rx_ns == f.t0_ns + f.n_samp * 1_000_000_000 // f.fs_hz + 1_000_000
    last = frames[-1][1]
    span = summary.t_last_ns - last.t0_ns  # the last frame ends at the last sample
    assert span == pytest.approx((last.n_samp - 1) * 1e9 / last.fs_hz, rel=1e-3, abs=1000)

    # Sample values: within one count of the record's own values.
    counts = np.concatenate([f.counts for _, f in frames]).astype(np.float64)
    scale = frames[0][1].scale.astype(np.float64)
    for k, ch in enumerate(summary.channels_used):
        want = ref.values(ch)
        got = counts[:, k] * scale[k]
        assert np.max(np.abs(got - want)) <= scale[k]
        if np.abs(want).max() > 0:
            assert np.abs(counts[:, k]).max() == pytest.approx(PEAK_COUNTS, abs=1)

    # The recording replays through the real decoder without a single rejection.
    site = parse_config(rec.site_toml())
    dec = PowerSerialDecoder(site.sensor("pq-a"), "pq-a")
    records = [r for m in rec.messages() for r in dec.feed(m.payload, m.t_rx_ns)]
    assert all(isinstance(r, PowerFrame) for r in records) and len(records) == summary.frames
    assert site.sensor("pq-a").channels == summary.sensor_channels


def test_voltage_channels_are_picked_by_name_and_unit(tmp_path):
    sensor = parse_config(SITE).sensor("pq-a")
    got = {}
    for name in (
        "ru_terminal_mv_intermittent_earth_fault.cfg",
        "sepam_s40_mv_earth_fault_trip.CFG",
        "ritm_vc4_powerup_binary32.cfg",
    ):
        got[name] = import_comtrade(POWER / name, sensor, SITE, tmp_path / name).channels_used
    assert got["ru_terminal_mv_intermittent_earth_fault.cfg"] == ("UA", "UB", "UC")  # not 3U0
    assert got["sepam_s40_mv_earth_fault_trip.CFG"] == ("U21", "U32")  # not Vo, not currents
    assert got["ritm_vc4_powerup_binary32.cfg"] == (
        "Ua",
        "Ub",
        "Uc",
    )  # not Un or binary inputs in V


def test_recording_site_holds_only_the_imported_sensor_with_its_channels(tmp_path):
    sensor = parse_config(SITE).sensor("pq-a")
    s = import_comtrade(POWER / "sepam_s40_mv_earth_fault_trip.CFG", sensor, SITE, tmp_path / "r")
    assert s.sensor_channels == ("va", "vb")
    assert any("channels" in n for n in s.notes)
    site = parse_config((tmp_path / "r" / "site.toml").read_text())
    assert site.sensor("pq-a").channels == ("va", "vb")
    assert [x.id for x in site.sensors] == ["pq-a"]  # pq-b was not recorded, so it is not there
    assert s.units == ("V", "V")


def test_kv_channels_are_converted_to_volts(tmp_path):
    sensor = parse_config(SITE).sensor("pq-a")
    import_comtrade(POWER / "comtrade_fixtures" / "sample_bin.cfg", sensor, SITE, tmp_path / "r")
    ref = Independent(POWER / "comtrade_fixtures" / "sample_bin.cfg", "utf-8")
    _, frames = read_back(tmp_path / "r")
    f = frames[0][1]
    np.testing.assert_allclose(
        f.counts[:, 0] * f.scale[0], ref.values("VA"), atol=float(f.scale[0])
    )
    assert np.abs(ref.values("VA")).max() > 100  # kV * 1000


def test_mqtt_sensor_gets_raw_frames_on_its_waveform_topic(tmp_path):
    site = parse_config(MQTT_SITE)
    sensor = site.sensor("pq-b")
    assert sensor.transport == "mqtt"
    s = import_comtrade(
        POWER / "ru_terminal_mv_intermittent_earth_fault.cfg", sensor, MQTT_SITE, tmp_path / "r"
    )
    rec = RecordingReader(tmp_path / "r")
    msgs = list(rec.messages())
    assert {m.transport for m in msgs} == {"mqtt"}
    assert {m.channel for m in msgs} == {"rampart/dc-east-1/power/pq-b/waveform"}
    dec = PowerMqttDecoder(
        parse_config(rec.site_toml()).sensor("pq-b"), "rampart/dc-east-1/power/pq-b/waveform"
    )
    records = [r for m in msgs for r in dec.feed(m.payload, m.t_rx_ns)]
    assert len(records) == s.frames and all(
        isinstance(r, PowerFrame) and r.board == 2 for r in records
    )
    t_rx = [m.t_rx_ns for m in msgs]
    assert t_rx == sorted(t_rx)


def _variant(tmp_path: Path, src: str, edit) -> Path:
    """A copy of a fixture record with its cfg text edited."""
    base = POWER / "comtrade_fixtures"
    cfg = (base / f"{src}.cfg").read_text()
    (tmp_path / f"{src}.cfg").write_text(edit(cfg))
    (tmp_path / f"{src}.dat").write_bytes((base / f"{src}.dat").read_bytes())
    return tmp_path / f"{src}.cfg"


def test_ancient_start_time_is_replaced_and_relative_times_kept(tmp_path):
    cfg = _variant(
        tmp_path,
        "sample_bin",
        lambda t: t.replace("07/01/2017,15:35:41.958268", "01/01/1970,00:00:00.000000"),
    )
    s = import_comtrade(cfg, parse_config(SITE).sensor("pq-a"), SITE, tmp_path / "r")
    assert s.t_first_ns == FALLBACK_EPOCH_NS
    assert s.t_last_ns - s.t_first_ns == round(4 / 15360 * 1e9)
    assert any("before 1980" in n for n in s.notes)


def test_samp_zero_uses_the_dat_timestamps(tmp_path):
    cfg = _variant(tmp_path, "sample_ascii", lambda t: t.replace("\n1\n1200,40\n", "\n1\n0,40\n"))
    s = import_comtrade(cfg, parse_config(SITE).sensor("pq-a"), SITE, tmp_path / "r")
    assert s.samples == 40 and s.rate_blocks == 1
    _, frames = read_back(tmp_path / "r")
    assert frames[0][1].fs_hz == 1200  # 1 / median interval of the timestamps (833-834 us)
    # last timestamp 105000 us, first 72500 us: the span is kept exactly
    assert s.t_last_ns - s.t_first_ns == 32_500_000
    assert any("samp = 0" in n for n in s.notes)


def test_timestamp_blocks_split_where_the_interval_changes(tmp_path):
    def edit(text: str) -> str:
        return text.replace("\n1\n1200,40\n", "\n0\n0,40\n")

    cfg = _variant(tmp_path, "sample_ascii", edit)
    dat = (tmp_path / "sample_ascii.dat").read_text().splitlines()
    # second half at a quarter of the rate: timestamps 4x further apart
    rows = []
    for i, ln in enumerate(dat):
        f = ln.split(",")
        f[1] = str(i * 833 if i < 20 else 19 * 833 + (i - 19) * 3333)
        rows.append(",".join(f))
    (tmp_path / "sample_ascii.dat").write_text("\n".join(rows) + "\n")
    s = import_comtrade(cfg, parse_config(SITE).sensor("pq-a"), SITE, tmp_path / "r")
    _, frames = read_back(tmp_path / "r")
    assert s.rate_blocks == 2
    assert [f.fs_hz for _, f in frames] == [1200, 300]
    assert [f.n_samp for _, f in frames] == [20, 20]


def test_unreadable_input_raises_a_named_error(tmp_path):
    bad = tmp_path / "x.cfg"
    bad.write_text("not,a\ncomtrade\n")
    (tmp_path / "x.dat").write_text("")
    with pytest.raises(ComtradeImportError, match=r"x\.cfg"):
        import_comtrade(bad, parse_config(SITE).sensor("pq-a"), SITE, tmp_path / "r")
    with pytest.raises(ComtradeImportError, match="no such file"):
        import_comtrade(
            tmp_path / "missing.cfg", parse_config(SITE).sensor("pq-a"), SITE, tmp_path / "r"
        )


def test_nominal_voltage_and_frequency_of_the_record_go_into_the_site(tmp_path):
    sensor = parse_config(SITE).sensor("pq-a")
    s = import_comtrade(
        POWER / "ru_terminal_mv_intermittent_earth_fault.cfg", sensor, SITE, tmp_path / "r"
    )
    # 100 V / sqrt(3) secondary: the record starts at ~59 V rms, within 7 % of 57.7 V
    assert (s.nominal_v, s.nominal_hz) == (57.7, 50.0)
    assert any("nominal_v 57.7 V" in n for n in s.notes)
    text = (tmp_path / "r" / "site.toml").read_text()
    site = parse_config(text)
    assert site.sensor("pq-a").nominal_v == 57.7 and site.sensor("pq-a").nominal_hz == 50.0
    assert text.count("nominal_v = 57.7") == 1 and "nominal_v = 230.0" not in text
    assert text.startswith("# Interoperability sample")  # comments and layout kept


def test_a_record_without_voltage_keeps_the_site_nominal(tmp_path):
    sensor = parse_config(SITE).sensor("pq-a")
    s = import_comtrade(POWER / "ritm_vc4_powerup_binary32.cfg", sensor, SITE, tmp_path / "r")
    assert s.nominal_v == 230.0
    assert any("no voltage" in n for n in s.notes)
    cur = import_comtrade(
        POWER / "comtrade_fixtures" / "sample_ascii.cfg", sensor, SITE, tmp_path / "c"
    )
    assert cur.units == ("A", "A", "A") and cur.nominal_v == 230.0  # currents are no voltage
    assert cur.nominal_hz == 60.0


def test_set_sensor_scalar_replaces_or_inserts_one_line():
    from drivers.site_text import set_sensor_scalar

    text = set_sensor_scalar(SITE, "pq-b", "nominal_v", 63.5)
    assert parse_config(text).sensor("pq-b").nominal_v == 63.5
    assert parse_config(text).sensor("pq-a").nominal_v == 230.0
    assert len(text.splitlines()) == len(SITE.splitlines())
    no_key = SITE.replace("nominal_hz = 50.0\n", "", 1)
    text = set_sensor_scalar(no_key, "pq-a", "nominal_hz", 60.0)
    assert parse_config(text).sensor("pq-a").nominal_hz == 60.0
    with pytest.raises(ValueError, match="no \\[\\[sensors\\]\\] table"):
        set_sensor_scalar(SITE, "nope", "nominal_v", 1.0)
