"""Raw NAV-SAT / NAV-SVINFO / MON-RF decoding against pyubx2 on every real log that has them."""

from __future__ import annotations

import math

import pytest
from pyubx2 import UBXReader

from drivers.gnss_stream import FrameScanner
from drivers.serial_import import strip_gpsd_comments
from fusion.gnss.ubx_blocks import mon_rf, nav_sat, nav_svinfo, ubx_payload
from tests.conftest import DATA

LOGS = sorted(p for p in (DATA / "gnss").rglob("*") if p.suffix in (".log", ".ubx"))


WANTED = (b"\x01\x35", b"\x01\x30", b"\x0a\x38")  # NAV-SAT, NAV-SVINFO, MON-RF


def collect() -> dict[bytes, list[tuple[str, bytes]]]:
    """Every frame of the wanted ids in the shared logs, one scan per file."""
    out: dict[bytes, list[tuple[str, bytes]]] = {k: [] for k in WANTED}
    for path in LOGS:
        data = path.read_bytes()
        if path.parent.name == "gpsd":
            data = strip_gpsd_comments(data)
        scanner = FrameScanner(max_buffer=1 << 20)
        for e in scanner.push(data) + scanner.finish():
            if e.kind == "UBX" and e.raw[2:4] in out:
                out[e.raw[2:4]].append((path.name, e.raw))
    return out


FRAMES = collect()
NAV_SAT = FRAMES[b"\x01\x35"]
NAV_SVINFO = FRAMES[b"\x01\x30"]
MON_RF = FRAMES[b"\x0a\x38"]


def sample(items: list, every: int) -> list:
    """Every n-th item and the last: pyubx2 takes milliseconds per NAV-SAT."""
    return items[::every] + items[-1:]


def test_the_shared_data_has_these_messages():
    assert len(NAV_SAT) > 500 and len(NAV_SVINFO) > 30 and len(MON_RF) >= 10


def test_nav_sat_matches_pyubx2():
    for _, raw in NAV_SAT:  # every frame decodes; pyubx2 checks a sample of them
        nav_sat(ubx_payload(raw))
    for name, raw in sample(NAV_SAT, 8):
        rep = nav_sat(ubx_payload(raw))
        f = UBXReader.parse(raw).__dict__
        assert rep.itow_ms == f["iTOW"], name
        assert len(rep.sv) == f["numSvs"], name
        for i in range(len(rep.sv)):
            k = f"{i + 1:02d}"
            assert (rep.system[i], rep.sv[i], rep.cno[i]) == (
                f[f"gnssId_{k}"],
                f[f"svId_{k}"],
                f[f"cno_{k}"],
            )
            elev = f[f"elev_{k}"]
            assert (math.isnan(rep.elev[i]) and abs(elev) > 90) or rep.elev[i] == elev, name
            assert rep.used[i] == bool(f[f"svUsed_{k}"]), name


def test_nav_svinfo_matches_pyubx2():
    for name, raw in NAV_SVINFO:
        rep = nav_svinfo(ubx_payload(raw))
        f = UBXReader.parse(raw).__dict__
        assert len(rep.sv) == f["numCh"], name
        for i in range(len(rep.sv)):
            k = f"{i + 1:02d}"
            assert (rep.sv[i], rep.cno[i]) == (f[f"svid_{k}"], f[f"cno_{k}"]), name
            assert rep.used[i] == bool(f[f"svUsed_{k}"]), name


def test_standard_mon_rf_matches_pyubx2_and_compact_is_read_with_its_own_layout():
    compact_seen = 0
    for name, raw in MON_RF:
        blocks, compact = mon_rf(ubx_payload(raw))
        f = UBXReader.parse(raw).__dict__
        assert len(blocks) == f["nBlocks"]
        if compact:
            compact_seen += 1
            assert name == "ublox-zed-f9r.log"
            assert [b.block_id for b in blocks] == [0, 1]
            for b in blocks:
                assert b.jam_ind is None  # the compact block has no CW jamming indicator
                assert 0 <= b.agc_cnt <= 8191 and b.ant_status == 2 and b.jamming_state == 1
            # pyubx2 1.4.0 reads 24-byte blocks here: an impossible AGC count in block 2.
            assert f["agcCnt_02"] > 8191
            continue
        for i, b in enumerate(blocks):
            k = f"{i + 1:02d}"
            assert b.block_id == f[f"blockId_{k}"]
            assert b.agc_cnt == f[f"agcCnt_{k}"] and b.jam_ind == f[f"jamInd_{k}"]
            assert b.jamming_state == f[f"jammingState_{k}"] and b.ant_status == f[f"antStatus_{k}"]
            assert b.noise_per_ms == f[f"noisePerMS_{k}"]
    assert compact_seen == 7  # every MON-RF of the ZED-F9R capture


def test_bad_lengths_are_refused():
    good = ubx_payload(MON_RF[0][1])
    for bad in (good[:-1], good + b"\0", b"\0"):
        with pytest.raises(ValueError):
            mon_rf(bad)
    sat = ubx_payload(NAV_SAT[0][1])
    with pytest.raises(ValueError):
        nav_sat(sat[:-3])
    with pytest.raises(ValueError):
        nav_sat(b"\0" * 4)
    with pytest.raises(ValueError):
        nav_svinfo(ubx_payload(NAV_SVINFO[0][1])[:-1])
