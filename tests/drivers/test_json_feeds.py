"""JSON stream decoders: valid payloads, the bad-input policy, and fuzzing."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.json_feeds import (
    RadarPlotsDecoder,
    RfDetectionsDecoder,
    RfSpectrumDecoder,
    SwitchgearEventsDecoder,
)
from fusion.records import RadarScan, Rejected, RfDetections, RfSpectrum, SwitchgearEvent

T_RX = 1_767_225_600_400_000_000
RADAR_MSG = {
    "sensor": "radar-1",
    "t": 1767225600.250,
    "scan": 1042,
    "plots": [
        {
            "range_m": 1830.5,
            "az_deg": 47.2,
            "el_deg": 3.1,
            "vr_mps": -12.4,
            "rcs_dbsm": -18.0,
            "snr_db": 14.2,
        },
        {"range_m": 900.0, "az_deg": 370.0 - 20.0},
    ],
}


def radar(msg) -> list:
    return RadarPlotsDecoder("radar-1", "topic rampart/x/radar/radar-1/plots").feed(
        json.dumps(msg).encode(), T_RX
    )


def test_radar_scan_decodes_with_optional_fields_as_nan():
    (scan,) = radar(RADAR_MSG)
    assert isinstance(scan, RadarScan)
    assert scan.t_ns == 1767225600250000000 and scan.scan == 1042 and scan.t_rx_ns == T_RX
    assert scan.plots.shape == (2, 6)
    assert scan.plots[0].tolist() == [1830.5, 47.2, 3.1, -12.4, -18.0, 14.2]
    assert scan.plots[1, 1] == 350.0  # azimuth normalised to [0, 360)
    assert all(math.isnan(v) for v in scan.plots[1, 2:])


def test_empty_scan_is_valid_and_unknown_fields_ignored():
    (scan,) = radar(
        {"sensor": "radar-1", "t": 1767225600.0, "scan": 1, "plots": [], "vendor": {"x": 1}}
    )
    assert scan.plots.shape == (0, 6)


def test_absurd_plot_dropped_alone():
    msg = dict(
        RADAR_MSG,
        plots=RADAR_MSG["plots"]
        + [{"range_m": -5.0, "az_deg": 10.0}, {"range_m": 10.0, "az_deg": 10.0, "el_deg": 95.0}],
    )
    out = radar(msg)
    rejects = [r for r in out if isinstance(r, Rejected)]
    (scan,) = [r for r in out if isinstance(r, RadarScan)]
    assert [r.reason for r in rejects] == ["invalid_plot", "invalid_plot"]
    assert scan.plots.shape == (2, 6)
    assert rejects[0].sensor == "radar-1" and "plots" in rejects[0].detail


def test_bad_json_and_schema_and_sensor_mismatch():
    dec = RadarPlotsDecoder("radar-1", "topic T")
    cases = {
        b'{"sensor": "radar-1", "t": 1767225600.0, "scan": 1, "plots": [': "bad_json",
        b"\xff\xfe": "bad_json",
        b'{"sensor": "radar-1", "t": "noon", "scan": 1, "plots": []}': "invalid",
        b'{"sensor": "radar-1", "t": 1767225600.0, "plots": []}': "invalid",
        b"[1, 2]": "invalid",
        b'{"sensor": "radar-2", "t": 1767225600.0, "scan": 1, "plots": []}': "sensor_mismatch",
        b'{"sensor": "radar-1", "t": 12.0, "scan": 1, "plots": []}': "bad_time",
    }
    for payload, reason in cases.items():
        (rej,) = dec.feed(payload, T_RX)
        assert isinstance(rej, Rejected), payload
        assert rej.reason == reason, (payload, rej)
        assert rej.detail.startswith("topic T")


def test_rf_detections_and_remote_id():
    msg = {
        "sensor": "rf-1",
        "t": 1767225600.5,
        "extra": 1,
        "detections": [
            {
                "freq_hz": 2.44e9,
                "bw_hz": 1.0e7,
                "rssi_dbm": -71.5,
                "bearing_deg": 45.0,
                "protocol": "ocusync",
                "uas_id": "1581F5FJC23A00D",
                "uas_lat": 52.01,
                "uas_lon": 4.01,
                "uas_alt_m": 120.0,
                "operator_lat": 52.02,
                "operator_lon": 4.03,
            },
            {"freq_hz": 5.8e9, "rssi_dbm": -80.0},
            {"freq_hz": -1.0, "rssi_dbm": -80.0},
        ],
    }
    out = RfDetectionsDecoder("rf-1", "T").feed(json.dumps(msg).encode(), T_RX)
    (dets,) = [r for r in out if isinstance(r, RfDetections)]
    assert len(dets.detections) == 2
    assert (
        dets.detections[0].uas_id == "1581F5FJC23A00D" and dets.detections[0].operator_lon == 4.03
    )
    assert dets.detections[1].bearing_deg is None
    assert [r.reason for r in out if isinstance(r, Rejected)] == ["invalid_detection"]


def test_spectrum_and_switchgear():
    sp = {
        "sensor": "rf-1",
        "t": 1767225600.5,
        "f_start_hz": 1.56e9,
        "bin_hz": 1e6,
        "power_dbm": [-101.2, -100.8, -99.9],
    }
    (rec,) = RfSpectrumDecoder("rf-1", "T").feed(json.dumps(sp).encode(), T_RX)
    assert isinstance(rec, RfSpectrum) and rec.power_dbm.tolist() == [-101.2, -100.8, -99.9]
    (bad,) = RfSpectrumDecoder("rf-1", "T").feed(json.dumps(dict(sp, power_dbm=[])).encode(), T_RX)
    assert bad.reason == "invalid"
    ev = {
        "sensor": "ats-1",
        "t": 1767225601.0,
        "event": "ats_transfer",
        "feed": "A",
        "detail": {"from": "A"},
    }
    (rec,) = SwitchgearEventsDecoder("ats-1", "T").feed(json.dumps(ev).encode(), T_RX)
    assert isinstance(rec, SwitchgearEvent) and rec.event == "ats_transfer" and rec.feed == "A"
    (bad,) = SwitchgearEventsDecoder("ats-1", "T").feed(
        json.dumps(dict(ev, event="explode")).encode(), T_RX
    )
    assert bad.reason == "invalid"


DECODERS = [
    RadarPlotsDecoder("radar-1", "T"),
    RfDetectionsDecoder("rf-1", "T"),
    RfSpectrumDecoder("rf-1", "T"),
    SwitchgearEventsDecoder("ats-1", "T"),
]


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=400))
def test_random_bytes_never_raise(payload):
    for dec in DECODERS:
        out = dec.feed(payload, T_RX)
        assert all(isinstance(r, Rejected) for r in out) or out


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    plots=st.lists(
        st.dictionaries(
            st.sampled_from(["range_m", "az_deg", "el_deg", "vr_mps", "rcs_dbsm", "snr_db", "x"]),
            json_values,
            max_size=7,
        ),
        max_size=6,
    ),
    t=st.one_of(
        st.floats(allow_nan=False, allow_infinity=False), st.integers(), st.text(max_size=4)
    ),
    scan=json_values,
)
def test_structured_garbage_never_raises_and_is_accounted(plots, t, scan):
    msg = {"sensor": "radar-1", "t": t, "scan": scan, "plots": plots}
    out = RadarPlotsDecoder("radar-1", "T").feed(json.dumps(msg).encode(), T_RX)
    scans = [r for r in out if isinstance(r, RadarScan)]
    rejects = [r for r in out if isinstance(r, Rejected)]
    assert len(scans) <= 1
    if scans:  # every plot is either kept or rejected, never silently lost
        assert scans[0].plots.shape[0] + len(rejects) == len(plots)
        assert all(math.isfinite(v) for v in scans[0].plots[:, 0])
    else:
        assert len(rejects) == 1


def test_invalid_utf8_inside_a_string_is_bad_json():
    """Found by the atheris fuzzer: msgspec raises UnicodeDecodeError, not DecodeError, here."""
    payload = b'{"sensor": "radar-1\xe4\xff", "t": 1767225600.0, "scan": 1, "plots": []}'
    for dec in DECODERS:
        (rej,) = dec.feed(payload, T_RX)
        assert isinstance(rej, Rejected) and rej.reason == "bad_json"
