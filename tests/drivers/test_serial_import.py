"""import_serial: raw receiver captures become recordings with device-derived receive times."""

from __future__ import annotations

import datetime as dt
import struct
from pathlib import Path

import pytest
from pyubx2.ubxhelpers import calc_checksum

from drivers.recording import RecordingReader
from drivers.serial_import import (
    DEFAULT_START_NS,
    NS,
    device_time_marks,
    import_serial,
    strip_gpsd_comments,
)
from fusion.config import Sensor

GNSS = Path(__file__).resolve().parents[1] / "data" / "shared" / "gnss"
LOGS = sorted(
    [*GNSS.glob("gpsd/*.log"), *GNSS.glob("pyubx2/*.log"), *GNSS.glob("pyubx2/*.ubx")],
    key=lambda p: p.name,
)
SITE_TOML = (
    '[site]\nid = "lab"\nlat = 52.0\nlon = 4.0\nalt_m = 10.0\n\n'
    '[[sensors]]\nid = "gnss-1"\nkind = "gnss"\ntransport = "serial"\nport = "/dev/ttyACM0"\n'
)


def sensor(baud: int | None = 9600) -> Sensor:
    return Sensor(id="gnss-1", kind="gnss", transport="serial", port="/dev/ttyACM0", baud=baud)


def nmea(body: str) -> bytes:
    x = 0
    for c in body.encode():
        x ^= c
    return f"${body}*{x:02X}\r\n".encode()


def utc_date(t_ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(t_ns // NS, dt.UTC).date()


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.name)
def test_every_log_imports_byte_exact_and_monotone(path: Path, tmp_path: Path) -> None:
    summary = import_serial(path, sensor(), SITE_TOML, tmp_path / "rec", chunk_bytes=200)
    rec = RecordingReader(tmp_path / "rec")
    df = rec.frame()
    payload = b"".join(df["payload"].to_list())
    assert payload == strip_gpsd_comments(path.read_bytes())
    assert summary.bytes == len(payload) and summary.rows == df.height
    assert df["t_rx_ns"].is_sorted()
    assert set(df["channel"].to_list()) == {"gnss-1"} and set(df["transport"].to_list()) == {
        "serial"
    }
    assert max(len(p) for p in df["payload"].to_list()) <= 200
    assert (summary.t_first_ns, summary.t_last_ns) == (df["t_rx_ns"][0], df["t_rx_ns"][-1])
    assert rec.site_toml() == SITE_TOML


# Dates from the log headers where they agree with the receiver's UTC date.
HEADER_DATES = {
    "gpsd/ublox-neo-m9n-nmea.log": dt.date(2020, 7, 11),  # RMC, ZDA
    "gpsd/navisys-gr8013.log": dt.date(2024, 3, 28),  # NAV-PVT, NAV-TIMEGPS
    "gpsd/bu353s4.log": dt.date(2014, 12, 31),  # RMC
    "gpsd/quectel-L70.log": dt.date(2022, 3, 9),  # RMC, ZDA
    "gpsd/ublox-zed-f9p-nmea.log": dt.date(2019, 4, 12),
    "gpsd/ublox-glo.log": dt.date(2023, 6, 28),  # NAV-PVT
    "gpsd/u-blox-m8t-time.log": dt.date(2021, 2, 23),  # NAV-TIMEUTC
    "gpsd/ublox-aek-4t.log": dt.date(2007, 12, 23),  # NAV-TIMEUTC (Antaris 4)
}


@pytest.mark.parametrize("name", sorted(HEADER_DATES))
def test_device_times_fall_on_the_logs_date(name: str, tmp_path: Path) -> None:
    summary = import_serial(GNSS / name, sensor(), SITE_TOML, tmp_path / "rec")
    assert summary.time_source == "device"
    df = RecordingReader(tmp_path / "rec").frame()
    assert {utc_date(t) for t in df["t_rx_ns"].to_list()} == {HEADER_DATES[name]}


def test_chunks_are_paced_from_each_epochs_first_message(tmp_path: Path) -> None:
    # NEO-M9N NMEA (1.3 kB an epoch, so 115200 baud): every epoch starts with RMC; a
    # chunk that begins with it arrives len(chunk) * 10 / baud after the RMC's own time.
    import_serial(GNSS / "gpsd/ublox-neo-m9n-nmea.log", sensor(115200), SITE_TOML, tmp_path / "rec")
    df = RecordingReader(tmp_path / "rec").frame()
    checked = 0
    for t_rx, chunk in zip(df["t_rx_ns"].to_list(), df["payload"].to_list(), strict=True):
        if chunk.startswith(b"$GNRMC,"):
            f = chunk.split(b"\r\n")[0].split(b",")
            hh, mm, ss = int(f[1][:2]), int(f[1][2:4]), float(f[1][4:])
            day = dt.datetime.strptime(f[9].decode(), "%d%m%y").replace(tzinfo=dt.UTC)
            t_msg = int((day.timestamp() + hh * 3600 + mm * 60) * NS + round(ss * NS))
            assert t_rx - t_msg == pytest.approx(len(chunk) * 10 * NS / 115200, abs=2)
            checked += 1
    assert checked == 61


def test_slow_baud_never_goes_back_in_time(tmp_path: Path) -> None:
    # The same log at 9600 baud cannot fit an epoch (1.3 kB) into a second. Each epoch
    # re-anchors on the device time, and the overrun of the previous one is clamped
    # (times stay on the device clock and never go backwards).
    summary = import_serial(
        GNSS / "gpsd/ublox-neo-m9n-nmea.log", sensor(9600), SITE_TOML, tmp_path / "rec"
    )
    df = RecordingReader(tmp_path / "rec").frame()
    t = df["t_rx_ns"].to_list()
    assert df["t_rx_ns"].is_sorted() and len(set(t)) < len(t)  # some reads clamped
    device_span = 60 * NS  # 61 epochs at 1 Hz
    assert device_span < summary.t_last_ns - summary.t_first_ns < device_span + 2 * NS


def test_log_without_time_messages_is_paced_at_baud(tmp_path: Path) -> None:
    path = GNSS / "pyubx2/pygpsdata-MON.log"
    n = len(path.read_bytes())
    summary = import_serial(path, sensor(baud=None), SITE_TOML, tmp_path / "a", chunk_bytes=100)
    assert summary.time_source == "baud"
    byte_ns = 10 * NS / 9600  # sensor without baud: 9600
    assert summary.t_last_ns - DEFAULT_START_NS == pytest.approx(n * byte_ns, abs=1)
    assert summary.t_first_ns - DEFAULT_START_NS == pytest.approx(100 * byte_ns, abs=1)
    start = 1_700_000_000 * NS
    again = import_serial(path, sensor(115200), SITE_TOML, tmp_path / "b", start_ns=start)
    assert again.t_last_ns - start == pytest.approx(n * 10 * NS / 115200, abs=1)


def test_bytes_before_first_time_message_are_paced_backwards(tmp_path: Path) -> None:
    cap = tmp_path / "cap.log"
    gsv = nmea("GPGSV,1,1,01,05,40,120,44")
    rmc = nmea("GPRMC,101500.00,A,5200.000,N,00400.000,E,0.0,,050324,,,A")
    cap.write_bytes(gsv * 4 + rmc)
    summary = import_serial(cap, sensor(9600), SITE_TOML, tmp_path / "rec", chunk_bytes=len(gsv))
    t_rmc = int(dt.datetime(2024, 3, 5, 10, 15, tzinfo=dt.UTC).timestamp()) * NS
    byte_ns = 10 * NS / 9600
    df = RecordingReader(tmp_path / "rec").frame()
    expected = [t_rmc - round((3 - k) * len(gsv) * byte_ns) for k in range(4)]
    assert df["t_rx_ns"].to_list()[:4] == pytest.approx(expected, abs=1)
    assert summary.t_last_ns == pytest.approx(t_rmc + len(rmc) * byte_ns, abs=1)


def test_time_of_day_is_dated_across_midnight() -> None:
    rmc = nmea("GPRMC,235959.00,A,5200.000,N,00400.000,E,0.0,,311224,,,A")
    gga = nmea("GPGGA,000000.00,5200.000,N,00400.000,E,1,08,0.9,5.0,M,46.0,M,,")
    marks = device_time_marks(rmc + gga)
    assert [t for _, t in marks] == [
        int(dt.datetime(2024, 12, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp()) * NS,
        int(dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp()) * NS,
    ]
    assert marks[1][0] == len(rmc)


def test_itow_is_placed_by_a_paired_utc_message() -> None:
    def ubx(cls: int, msg_id: int, payload: bytes) -> bytes:
        body = struct.pack("<BBH", cls, msg_id, len(payload)) + payload
        return b"\xb5\x62" + body + calc_checksum(body)

    itow = 3 * 86_400_000 + 18_000  # Wednesday 00:00:00 UTC (+18 s GPS-UTC)
    pvt = bytearray(92)
    struct.pack_into("<IHBBBBBB", pvt, 0, itow, 2024, 3, 6, 0, 0, 0, 0b011)
    dop = ubx(0x01, 0x04, struct.pack("<IHHHHHHH", itow + 2000, 1, 1, 1, 1, 1, 1, 1))
    marks = device_time_marks(ubx(0x01, 0x07, bytes(pvt)) + dop)
    t0 = int(dt.datetime(2024, 3, 6, tzinfo=dt.UTC).timestamp()) * NS
    assert [t for _, t in marks] == [t0, t0 + 2 * NS]


def test_strip_gpsd_comments_only_at_packet_boundaries() -> None:
    ubx_with_hash = b"\xb5\x62\x0a\x04\x03\x00\n#x"
    body = ubx_with_hash[2:]
    frame = ubx_with_hash + calc_checksum(body)
    gga = nmea("GPGGA,000000.00,5200.000,N,00400.000,E,1,08,0.9,5.0,M,46.0,M,,")
    data = b"# header\n#\n" + gga + b"# between\n" + frame + b"#after ubx\n" + b"\x01\x02#x\n" + gga
    assert strip_gpsd_comments(data) == gga + frame + b"\x01\x02#x\n" + gga
    # A real log: a '#' after '\n' inside a UBX payload (navisys-gr8013 offset 13141) stays.
    raw = (GNSS / "gpsd/navisys-gr8013.log").read_bytes()
    stripped = strip_gpsd_comments(raw)
    assert b"\n#\xb5\x00u" in stripped and not stripped.startswith(b"#")
