"""Antenna faults are sensor faults, not jamming; NMEA-only receivers still detect jamming.

Antenna faults are made by rebuilding one simulated receiver's epochs with a
failing antenna after ``FAULT_AT_S``: its satellites lose C/N0 (or are lost),
its AGC gain rises (less power reaches it), and in one case its MON-RF antenna
status says "open". The other receiver and the RF sensor see nothing.
"""

from __future__ import annotations

import dataclasses

import pytest
from pyubx2.ubxhelpers import calc_checksum

from drivers.gnss_stream import FrameScanner
from drivers.simulated import gnss as simgnss
from drivers.simulated.base import FeedRow, SimContext
from drivers.simulated.site import SIM_T0_NS
from tests.gnss.helpers import GNSS_KINDS, gnss_only_site, gnss_rf_scenario, run_rows

NS = 1_000_000_000
DURATION_S = 150.0
FAULT_AT_S = 70.0
RECOVER_AT_S = 110.0


def with_mon_rf_antenna_status(epoch_bytes: bytes, status: int) -> bytes:
    """The epoch's bytes with every MON-RF block's antStatus set to ``status``."""
    out = []
    scanner = FrameScanner()
    for ev in scanner.push(epoch_bytes):
        raw = ev.raw
        if ev.kind == "UBX" and raw[2:4] == b"\x0a\x38":
            body = bytearray(raw[2:-2])
            n = body[4 + 1]
            for b in range(n):
                body[4 + 4 + 24 * b + 2] = status
            raw = b"\xb5\x62" + bytes(body) + calc_checksum(bytes(body))
        out.append(raw)
    return b"".join(out)


def faulty_receiver_rows(site, seed: int, mode: str) -> list[FeedRow]:
    """gnss-1's feed rebuilt with an antenna fault of kind ``mode`` ('open' or 'attenuation')."""
    ctx = SimContext(site, SIM_T0_NS, DURATION_S, seed)
    sensor = site.sensor("gnss-1")
    rng = ctx.rng("gnss:" + sensor.id)
    epochs = simgnss._receiver_epochs(
        ctx, sensor, simgnss._constellation(), simgnss._epoch_times(ctx), [], [], rng
    )
    rows = []
    for ep in epochs:
        t_s = (ep.utc_ns - SIM_T0_NS) / NS
        faulty = FAULT_AT_S <= t_s < RECOVER_AT_S
        status = 2
        if faulty:
            loss = 40.0 if mode == "open" else 10.0
            sats = []
            for g, sv, cno, el, az, pr, used in ep.sats:
                c = cno - loss
                sats.append(
                    (
                        g,
                        sv,
                        int(c) if c >= simgnss.TRACK_CN0 else 0,
                        el,
                        az,
                        pr,
                        used and c >= simgnss.USE_CN0,
                    )
                )
            n_used = sum(s[6] for s in sats)
            gain = 1.6 if mode == "open" else 1.25  # less input power: the AGC turns its gain up
            rf = [(st, noise, min(int(agc * gain), 8191), ji) for st, noise, agc, ji in ep.rf]
            ep = dataclasses.replace(ep, sats=sats, rf=rf, fix_type=3 if n_used >= 4 else 0)
            status = 4 if mode == "open" else 2
        data = with_mon_rf_antenna_status(simgnss._epoch_bytes(ep), status)
        rows.append(FeedRow(ep.utc_ns + 150_000_000, "serial", "gnss-1", data))
    return rows


@pytest.mark.parametrize("mode", ["open", "attenuation"])
def test_one_receivers_antenna_fault_is_a_sensor_fault_not_jamming(mode):
    site, out = gnss_rf_scenario("quiet_hour", 11, DURATION_S)
    rows = [r for r in out.feeds if r.channel != "gnss-1"] + faulty_receiver_rows(site, 11, mode)
    rows.sort(key=lambda r: r.t_rx_ns)
    run = run_rows(gnss_only_site(site), rows)
    assert not run.of_kind(*GNSS_KINDS), [a.summary for a in run.of_kind(*GNSS_KINDS)]
    faults = [a for a in run.of_kind("sensor_fault") if a.details.get("reason") == "antenna"]
    assert len({a.incident_id for a in faults}) == 1
    first, last = faults[0], faults[-1]
    assert first.sensors == ["gnss-1"] and first.state == "open"
    assert abs(first.t_event_ns - (SIM_T0_NS + int(FAULT_AT_S * NS))) <= 3 * NS
    assert first.t_detect_ns - first.t_event_ns <= 8 * NS
    if mode == "open":
        assert first.details["cause"] == "antenna open"
    else:
        assert "attenuation" in first.details["cause"]
        assert first.details["cn0_drop_db"] >= 5.0
    assert any(e["feature"] == "agc" and e["change_pct"] > 10 for e in first.details["evidence"])
    # The antenna is fixed: the incident closes.
    assert last.state == "closed"
    assert last.t_detect_ns >= SIM_T0_NS + int(RECOVER_AT_S * NS)


def nmea_only(rows: list[FeedRow], channel: str) -> list[FeedRow]:
    """A receiver's rows with its UBX frames removed: what an NMEA-only receiver sends."""
    mine = [r for r in rows if r.channel == channel]
    data = b"".join(r.payload for r in mine)
    ends, total = [], 0
    for r in mine:
        total += len(r.payload)
        ends.append(total)
    scanner = FrameScanner()
    per_row: dict[int, list[bytes]] = {}
    k = 0
    for ev in scanner.push(data) + scanner.finish():
        while ends[k] < ev.end:
            k += 1
        if ev.kind == "NMEA":
            per_row.setdefault(k, []).append(ev.raw)
    out = [r for r in rows if r.channel != channel]
    out += [
        FeedRow(mine[k].t_rx_ns, mine[k].transport, channel, b"".join(v))
        for k, v in per_row.items()
    ]
    return sorted(out, key=lambda r: r.t_rx_ns)


def test_nmea_only_receivers_still_detect_jamming_within_5_s():
    site, out = gnss_rf_scenario("jamming", 4, 200.0)
    rows = nmea_only(nmea_only(out.feeds, "gnss-1"), "rampart/sim-site/gnss/gnss-2/raw")
    run = run_rows(gnss_only_site(site), rows, out.truth)
    (row,) = [r for r in run.score()["truth_rows"] if r["kind"] == "gnss_jamming"]
    assert row["detected"] and row["latency_raw_s"] <= 5.0, row
    assert not run.of_kind("gnss_spoofing")
    for m in run.detector.receivers.values():
        assert m.cn0_source == "GSV" and not m.blocks  # judged from NMEA alone


def test_nmea_only_single_receiver_without_rf_still_alerts_jamming_with_low_confidence():
    site, out = gnss_rf_scenario("jamming", 4, 200.0)
    rows = nmea_only([r for r in out.feeds if r.channel == "gnss-1"], "gnss-1")
    text = gnss_only_site(site).text
    from drivers.site_text import keep_sensors
    from fusion.config import parse_config

    lone = parse_config(keep_sensors(text, {"gnss-1"}))
    run = run_rows(lone, rows, out.truth)
    (row,) = [r for r in run.score()["truth_rows"] if r["kind"] == "gnss_jamming"]
    assert row["detected"] and row["latency_raw_s"] <= 5.0, row
    first = run.of_kind("gnss_jamming")[0]
    assert first.confidence <= 0.5
    assert first.details["per_receiver"]["gnss-1"]["cause"].startswith("undetermined")
