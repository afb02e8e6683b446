"""No input can stop the pipeline (issue #12): hostile nesting, oversized payloads, made-up
topics, decoders and detectors that raise. Each bad message is one counted rejection
naming its source; the messages after it still get through."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers import json_feeds
from drivers.json_feeds import (
    RadarPlotsDecoder,
    RfDetectionsDecoder,
    RfSpectrumDecoder,
    SwitchgearEventsDecoder,
)
from drivers.limits import Limits, json_depth
from drivers.router import Router
from fusion.cli.intake import Intake, Received
from fusion.cli.pipeline import Pipeline
from fusion.config import ConfigError, parse_config
from fusion.records import RadarScan, Rejected, RfDetections, RfSpectrum, SwitchgearEvent
from tests.conftest import DATA

S = 1_000_000_000
T0_S = 1_767_686_400
T0 = T0_S * S
SITE_TEXT = (DATA / "recording-sample" / "site.toml").read_text()
SITE = parse_config(SITE_TEXT)
IDS = {s.id for s in SITE.sensors}
RADAR = "rampart/dc-east-1/radar/radar-1/plots"
RF_DET = "rampart/dc-east-1/rf/rf-1/detections"
RF_SPEC = "rampart/dc-east-1/rf/rf-1/spectrum"
ATS = "rampart/dc-east-1/switchgear/ats-1/events"


def deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


def good_scan(n: int = 1, t_s: float = 0.5) -> bytes:
    plot = {"range_m": 800.0, "az_deg": 30.0, "el_deg": 2.0, "vr_mps": -5.0}
    return json.dumps({"sensor": "radar-1", "t": T0_S + t_s, "scan": n, "plots": [plot]}).encode()


GOOD = {
    RADAR: (good_scan(), RadarScan),
    RF_DET: (
        json.dumps(
            {
                "sensor": "rf-1",
                "t": T0_S + 0.5,
                "detections": [{"freq_hz": 2.44e9, "rssi_dbm": -60.0}],
            }
        ).encode(),
        RfDetections,
    ),
    RF_SPEC: (
        json.dumps(
            {
                "sensor": "rf-1",
                "t": T0_S + 0.5,
                "f_start_hz": 2.4e9,
                "bin_hz": 1e6,
                "power_dbm": [-90.0] * 8,
            }
        ).encode(),
        RfSpectrum,
    ),
    ATS: (
        json.dumps(
            {"sensor": "ats-1", "t": T0_S + 0.5, "event": "ats_transfer", "detail": {"to": "B"}}
        ).encode(),
        SwitchgearEvent,
    ),
}
DECODERS = {
    RADAR: lambda lim=None: RadarPlotsDecoder("radar-1", f"topic {RADAR}", lim),
    RF_DET: lambda lim=None: RfDetectionsDecoder("rf-1", f"topic {RF_DET}", lim),
    RF_SPEC: lambda lim=None: RfSpectrumDecoder("rf-1", f"topic {RF_SPEC}", lim),
    ATS: lambda lim=None: SwitchgearEventsDecoder("ats-1", f"topic {ATS}", lim),
}


def hostile_deep(topic: str, n: int = 100_000) -> bytes:
    """The red team's message: the topic's own fields, plus ``n`` levels in one of them."""
    good = json.loads(GOOD[topic][0])
    good["x"] = "HOLE"
    if topic == ATS:
        good["detail"] = {"a": "HOLE"}
    return json.dumps(good).encode().replace(b'"HOLE"', deep(n))


# --- finding 1: nesting ------------------------------------------------------------------
@pytest.mark.parametrize("topic", list(GOOD))
def test_100000_deep_message_is_rejected_as_too_deep_and_the_next_one_decodes(topic):
    router = Router(SITE)
    payload = hostile_deep(topic)
    assert len(payload) > 200_000
    (rej,) = router.decode(T0, "mqtt", topic, payload)
    assert isinstance(rej, Rejected) and rej.reason == "too_deep"
    assert rej.sensor in IDS and topic in rej.detail and "max_json_depth = 32" in rej.detail
    good, cls = GOOD[topic]
    assert [type(r) for r in router.decode(T0 + S, "mqtt", topic, good)] == [cls]


def test_recursion_error_is_caught_even_if_the_depth_scan_misses(monkeypatch):
    monkeypatch.setattr(json_feeds, "json_depth", lambda payload, stop_above=0: 0)
    dec = DECODERS[RADAR]()
    (rej,) = dec.feed(hostile_deep(RADAR), T0)
    assert rej.reason == "too_deep" and "too deep to parse" in rej.detail
    (rej,) = dec.feed(deep(5000), T0)  # the schema does not fit either: no RecursionError
    assert rej.reason in ("too_deep", "invalid")


def test_depth_just_at_the_limit_is_decoded():
    ok = json.loads(GOOD[ATS][0])
    ok["detail"] = {"a": [[{"b": 1}]]}
    payload = json.dumps(ok).encode()
    depth = json_depth(payload)
    assert depth == 5
    dec = DECODERS[ATS](Limits(max_json_depth=depth))
    assert [type(r) for r in dec.feed(payload, T0)] == [SwitchgearEvent]
    (rej,) = DECODERS[ATS](Limits(max_json_depth=depth - 1)).feed(payload, T0)
    assert rej.reason == "too_deep"


# --- the depth kernel and its slow twin -------------------------------------------------
def naive_json_depth(payload: bytes) -> int:
    """Obvious twin of drivers.limits._depth: a character-by-character state machine."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in payload:
        c = chr(ch)
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}" and depth > 0:
            depth -= 1
    return deepest


EDGE_CASES = [
    b"",
    b"1",
    b"[]",
    b"[[[]]]",
    b'"[[["',
    b'["\\"[", [1]]',
    b'["\\\\", [[1]]]',
    b"]]]][[",
    b'{"a": "}}}", "b": {"c": ["\\u005b"]}}',
    b'"unterminated [[[',
    deep(100_000),
]


@pytest.mark.parametrize("payload", EDGE_CASES)
def test_depth_kernel_matches_naive_on_edge_cases(payload):
    assert json_depth(payload) == naive_json_depth(payload)


def test_depth_kernel_matches_naive_on_random_bytes():
    rng = np.random.default_rng(12)
    alphabet = np.frombuffer(b'[]{}"\\ a1,:', dtype=np.uint8)
    for _ in range(300):
        payload = rng.choice(alphabet, size=int(rng.integers(0, 400))).tobytes()
        assert json_depth(payload) == naive_json_depth(payload)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_depth_kernel_matches_naive_on_hypothesis_bytes(payload):
    assert json_depth(payload) == naive_json_depth(payload)


def test_depth_kernel_stops_early_but_still_says_too_deep():
    assert json_depth(deep(100_000), stop_above=32) == 33


# --- finding 2: size and item limits ------------------------------------------------------
def test_10_mb_radar_payload_is_rejected_before_decoding():
    plots = [{"range_m": 800.0, "az_deg": 30.0}] * 330_000
    payload = json.dumps({"sensor": "radar-1", "t": T0_S, "scan": 1, "plots": plots}).encode()
    assert len(payload) > 10_000_000
    router = Router(SITE)
    (rej,) = router.decode(T0, "mqtt", RADAR, payload)
    assert rej.reason == "over_limit" and rej.sensor == "radar-1"
    assert RADAR in rej.detail and f"{len(payload)} bytes" in rej.detail
    assert "limits.max_payload_bytes = 1048576" in rej.detail
    # An intake marker (payload already dropped, only its size kept) is rejected the same way.
    (rej2,) = router.decode(T0, "mqtt", RADAR, b"", size=len(payload))
    assert rej2.reason == "over_limit" and rej2.detail == rej.detail
    assert isinstance(router.decode(T0 + S, "mqtt", RADAR, good_scan(2))[0], RadarScan)


def test_item_limits_reject_the_whole_message():
    lim = Limits(max_plots_per_scan=10, max_detections_per_message=3, max_bins_per_sweep=100)
    scan = json.loads(good_scan())
    scan["plots"] = scan["plots"] * 11
    (rej,) = DECODERS[RADAR](lim).feed(json.dumps(scan).encode(), T0)
    assert rej.reason == "over_limit" and "11 plots exceeds limits.max_plots_per_scan = 10" in (
        rej.detail
    )
    det = json.loads(GOOD[RF_DET][0])
    det["detections"] = det["detections"] * 4
    (rej,) = DECODERS[RF_DET](lim).feed(json.dumps(det).encode(), T0)
    assert rej.reason == "over_limit" and "max_detections_per_message = 3" in rej.detail
    spec = json.loads(GOOD[RF_SPEC][0])
    spec["power_dbm"] = [-90.0] * 101
    (rej,) = DECODERS[RF_SPEC](lim).feed(json.dumps(spec).encode(), T0)
    assert rej.reason == "over_limit" and "max_bins_per_sweep = 100" in rej.detail
    # At the limit, everything is kept.
    scan["plots"] = scan["plots"][:10]
    (ok,) = DECODERS[RADAR](lim).feed(json.dumps(scan).encode(), T0)
    assert isinstance(ok, RadarScan) and ok.plots.shape == (10, 6)


def test_default_spectrum_limit_is_65536_bins():
    spec = json.loads(GOOD[RF_SPEC][0])
    spec["power_dbm"] = [-90.0] * 65_537
    (rej,) = DECODERS[RF_SPEC]().feed(json.dumps(spec).encode(), T0)
    assert rej.reason == "over_limit"


def test_oversized_serial_chunk_is_rejected_and_the_stream_goes_on():
    router = Router(parse_config(SITE_TEXT + "\n[limits]\nmax_chunk_bytes = 4096\n"))
    (rej,) = router.decode(T0, "serial", "gnss-1", b"$" * 5000)
    assert rej.reason == "over_limit" and "serial gnss-1: 5000 bytes" in rej.detail
    nmea = b"$GPGGA,120000.00,5200.0000,N,00400.0000,E,1,08,0.9,15.0,M,46.0,M,,*"
    out = router.decode(T0 + S, "serial", "gnss-1", nmea + b"00\r\n")
    assert all(r.reason != "over_limit" for r in out if isinstance(r, Rejected))


# --- [limits] configuration ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("max_payload_bytes = 0", "limits.max_payload_bytes"),
        ("max_json_depth = 100000", "limits.max_json_depth"),
        ('max_plots_per_scan = "many"', "limits.max_plots_per_scan"),
        ("max_bins_per_sweep = true", "limits.max_bins_per_sweep"),
        ("max_detections = 5", "limits.max_detections"),
        ("max_queue_bytes = 65536\nmax_payload_bytes = 1048576", "limits.max_queue_bytes"),
    ],
)
def test_bad_limits_are_config_errors_naming_the_key(line, key):
    site = parse_config(SITE_TEXT + f"\n[limits]\n{line}\n")
    with pytest.raises(ConfigError) as exc:
        Router(site)
    assert any(p.startswith(key + ":") for p in exc.value.problems)


def test_limits_defaults_and_overrides():
    assert Limits.from_site(SITE) == Limits()
    assert Limits().as_dict() == {
        "max_payload_bytes": 1 << 20,
        "max_chunk_bytes": 1 << 20,
        "max_json_depth": 32,
        "max_plots_per_scan": 4096,
        "max_detections_per_message": 1024,
        "max_bins_per_sweep": 65536,
        "max_queue_bytes": 64 << 20,
    }
    site = parse_config(SITE_TEXT + "\n[limits]\nmax_json_depth = 8\n")
    assert Router(site).limits.max_json_depth == 8


def test_check_config_reports_bad_limits(tmp_path):
    cfg = tmp_path / "site.toml"
    cfg.write_text(SITE_TEXT + "\n[limits]\nmax_json_depth = 0\n")
    out = subprocess.run(
        [sys.executable, "-m", "fusion", "check-config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert f"{cfg}: limits.max_json_depth: must be an integer in [3, 512], not 0" in out.stdout


# --- the one guard around every decoder ----------------------------------------------------
def test_an_exception_escaping_a_decoder_is_an_internal_error_and_a_fresh_decoder_goes_on(
    monkeypatch, caplog
):
    calls = {"n": 0}
    real = RadarPlotsDecoder._convert

    def flaky(self, msg, t_ns, t_rx_ns):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ZeroDivisionError("found a parser bug")
        return real(self, msg, t_ns, t_rx_ns)

    monkeypatch.setattr(RadarPlotsDecoder, "_convert", flaky)
    router = Router(SITE)
    with caplog.at_level("ERROR", logger="rampart.router"):
        (rej,) = router.decode(T0, "mqtt", RADAR, good_scan(1))
    assert rej.reason == "internal_error" and rej.sensor == "radar-1"
    assert rej.detail == f"topic {RADAR}: ZeroDivisionError: found a parser bug"
    assert "Traceback" in caplog.text and "radar-1" in caplog.text
    assert isinstance(router.decode(T0 + S, "mqtt", RADAR, good_scan(2))[0], RadarScan)
    assert router.internal_errors["radar-1"] == 1


def test_decoder_errors_in_flush_are_guarded(monkeypatch):
    router = Router(SITE)
    router.decode(T0, "serial", "gnss-1", b"$GPGGA,1")

    def boom(self, t):
        raise RuntimeError("flush bug")

    from drivers.gnss_stream import GnssStreamDecoder

    monkeypatch.setattr(GnssStreamDecoder, "flush", boom)
    (rej,) = router.flush(T0 + S)
    assert rej.reason == "internal_error" and rej.sensor == "gnss-1" and "flush bug" in rej.detail


class _Boom:
    """A detector with a bug: raises on every third radar scan, and on every fifth tick."""

    name = "boom"
    consumes = (RadarScan,)

    def __init__(self):
        self.seen = 0
        self.ticks = 0

    def on_record(self, record):
        self.seen += 1
        if self.seen % 3 == 0:
            raise IndexError("detector bug")
        return []

    def on_tick(self, t_ns):
        self.ticks += 1
        if self.ticks % 5 == 0:
            raise KeyError("tick bug")
        return []


class _PromptBoom(_Boom):
    takes_on_arrival = (RadarScan,)  # judged in Engine.push, at the record's arrival


def _scans(pipe, n=30):
    for k in range(n):
        pipe.receive(T0 + k * S // 2, "mqtt", RADAR, good_scan(k, k / 2 - 0.1))
    pipe.finish()


def test_a_detector_that_raises_is_counted_and_the_pipeline_goes_on(caplog):
    boom = _Boom()
    pipe = Pipeline(SITE, lambda a: None, detectors=[boom])
    with caplog.at_level("ERROR", logger="rampart.rejects"):
        _scans(pipe)
    # The engine isolates each detector call: every record still reaches the detector
    # after it raised, and every raise is counted.
    tick_errors = boom.ticks // 5
    assert boom.seen == 30 and tick_errors >= 1
    assert pipe.ledger.total("engine", "internal_error") == 30 // 3 + tick_errors
    assert "Traceback" in caplog.text and "detector bug" in caplog.text


def test_one_detectors_bug_does_not_cost_another_detector_its_records():
    class Healthy:
        name = "healthy"
        consumes = (RadarScan,)
        seen = 0

        def on_record(self, record):
            self.seen += 1
            return []

        def on_tick(self, t_ns):
            return []

    boom, healthy = _Boom(), Healthy()
    pipe = Pipeline(SITE, lambda a: None, detectors=[boom, healthy])
    _scans(pipe)
    assert healthy.seen == boom.seen == 30


def test_a_detector_raising_on_arrival_counts_under_the_sensor_and_alerts():
    from fusion.integrity import InputIntegrity

    alerts = []
    boom = _PromptBoom()
    pipe = Pipeline(SITE, alerts.append, detectors=[boom, InputIntegrity(SITE)])
    _scans(pipe)
    assert boom.seen == 30
    assert pipe.ledger.total("radar-1", "internal_error") == 10
    faults = [a for a in alerts if a.details.get("reason") == "decoder_error"]
    assert faults and faults[0].kind == "sensor_fault" and faults[0].sensors == ["radar-1"]
    assert faults[0].severity == "medium" and "detector bug" in faults[0].details["last_detail"]


def test_repeated_decoder_errors_raise_sensor_fault(monkeypatch):
    def broken(self, msg, t_ns, t_rx_ns):
        raise ValueError("bug")

    monkeypatch.setattr(RadarPlotsDecoder, "_convert", broken)
    alerts = []
    pipe = Pipeline(SITE, alerts.append)
    for k in range(2):
        pipe.receive(T0 + k * S, "mqtt", RADAR, good_scan(k, k))
    assert not [a for a in alerts if a.details.get("reason") == "decoder_error"]
    pipe.receive(T0 + 2 * S, "mqtt", RADAR, good_scan(2, 2))
    (fault,) = [a for a in alerts if a.details.get("reason") == "decoder_error"]
    assert fault.kind == "sensor_fault" and fault.state == "open" and fault.sensors == ["radar-1"]
    assert fault.details["by_reason"] == {"internal_error": 3}


def test_repeated_over_limit_messages_raise_sensor_fault():
    alerts = []
    pipe = Pipeline(SITE, alerts.append)
    for k in range(3):
        pipe.receive(T0 + k * S, "mqtt", RADAR, hostile_deep(RADAR, 1000))
    (fault,) = [a for a in alerts if a.details.get("reason") == "over_limit"]
    assert fault.kind == "sensor_fault" and fault.sensors == ["radar-1"]
    assert pipe.ledger.total("radar-1", "too_deep") == 3


# --- finding 3: bounded labels --------------------------------------------------------------
def test_500_made_up_topics_make_a_bounded_number_of_sources():
    alerts = []
    pipe = Pipeline(SITE, alerts.append)
    intake = Intake()
    rng = random.Random(5)
    for k in range(500):
        kind = rng.choice(["radar", "rf", "x", "gnss"])
        topic = f"rampart/dc-east-1/{kind}/ghost-{k}/plots" if k % 2 else f"evil/{k}/{k * 7}"
        intake.put(pipe.router.source_of("mqtt", topic), Received(T0 + k, "mqtt", topic, b"{}"))
        pipe.receive(T0 + k * S // 100, "mqtt", topic, b"{}")
        pipe.receive(T0 + k * S // 100, "serial", f"ttyFAKE{k}", b"\x00")
    for k in range(5):
        pipe.receive(T0 + 6 * S + k * S, "mqtt", RADAR, good_scan(k, 6 + k - 0.1))
    pipe.finish()
    sources = {s for s, _ in pipe.ledger.counts}
    assert sources == {"unknown"}
    assert pipe.ledger.total("unknown", "unknown_sensor") == 1000
    assert set(intake.received) == {"unknown"} and intake.received["unknown"] == 500
    # One incident for all of them, naming some of the topics.
    opened = [
        a for a in alerts if a.details.get("reason") == "unknown_source" and a.state == "open"
    ]
    assert len(opened) == 1 and opened[0].details["examples"]
    assert (
        "ghost" in " ".join(opened[0].details["examples"])
        or "evil" in opened[0].details["examples"][0]
    )
    assert pipe.engine.delivered_by_sensor["radar-1"] == 5


def test_streams_of_known_sensors_are_ignored_per_sensor():
    router = Router(SITE)
    for k in range(50):
        assert router.decode(T0, "mqtt", f"rampart/dc-east-1/radar/radar-1/status{k}", b"") == []
    assert dict(router.ignored) == {"radar-1": 50}
    assert router.source_of("mqtt", "rampart/dc-east-1/radar/radar-1/status7") == "radar-1"
    assert router.source_of("mqtt", RF_SPEC) == "rf-1"
    assert router.source_of("serial", "pq-a") == "pq-a"
    assert router.source_of("serial", "ttyS9") == "unknown"


def test_the_ledger_caps_distinct_keys(monkeypatch):
    from fusion import rejects

    monkeypatch.setattr(rejects, "MAX_KEYS", 10)
    ledger = rejects.RejectLedger()
    for k in range(100):
        ledger.reject(f"s{k}", "bad_json")
    assert len(ledger.counts) == 11 and ledger.counts[("unknown", "bad_json")] == 90


def test_intake_bounds_bytes_per_source():
    intake = Intake(per_source=1000, max_bytes=10_000)
    for k in range(50):
        intake.put("radar-1", Received(k, "mqtt", RADAR, b"x" * 1000))
    assert intake.depth()["radar-1"] == 10 and intake.dropped["radar-1"] == 40
    taken = intake.take(100, 0.0)
    assert [r.t_rx_ns for r in taken] == list(range(40, 50))
    intake.put("radar-1", Received(99, "mqtt", RADAR, b"y" * 10_000))
    assert intake.depth()["radar-1"] == 1


# --- property tests: nothing raises, nothing good is lost ------------------------------------
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=40,
)
FIELDS = ["sensor", "t", "scan", "plots", "detections", "f_start_hz", "bin_hz", "power_dbm"]
FIELDS += ["event", "feed", "detail", "range_m", "az_deg", "freq_hz", "rssi_dbm"]
# Messages shaped like the contract's, with arbitrary values in its fields (wrong types in
# the right places), plus raw fragments JSON encoders never write.
shaped = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8)
ODD = [b"NaN", b"-Infinity", b"1e400", b"-0", b"1e-400", b"9" * 400, b'"\\ud800"', b'"\\u0000"']


@st.composite
def hostile_payloads(draw) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=300))
    if choice == 1:
        return json.dumps(draw(json_values)).encode()
    value = draw(shaped)
    if draw(st.booleans()):
        value["sensor"] = draw(st.sampled_from(["radar-1", "rf-1", "ats-1", "pq-a"]))
    text = json.dumps(value)
    if choice == 3 and value:
        key = draw(st.sampled_from(sorted(value)))
        odd = draw(st.sampled_from(ODD)).decode()
        text = text.replace(f'"{key}": ', f'"{key}": {odd}, "{key}": ', 1)  # duplicated key
    return text.encode()


@pytest.mark.parametrize("topic", list(GOOD))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=st.lists(hostile_payloads(), min_size=1, max_size=4))
def test_decoders_never_raise_and_lose_nothing(topic, garbage):
    dec = DECODERS[topic]()
    for payload in garbage:
        out = dec.feed(payload, T0)
        assert isinstance(out, list)
        assert all(
            isinstance(r, Rejected | RadarScan | RfDetections | RfSpectrum | SwitchgearEvent)
            for r in out
        )
    good, cls = GOOD[topic]
    assert [type(r) for r in dec.feed(good, T0 + S)] == [cls]


ROUTER = Router(SITE)
TOPICS = [*GOOD, "rampart/dc-east-1/radar/radar-9/plots", "rampart/dc-east-1/radar/radar-1/x"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["mqtt", "serial", "mqtt", "x"]),
            st.sampled_from([*TOPICS, "gnss-1", "pq-a", "ttyS0"]) | st.text(max_size=30),
            hostile_payloads(),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_router_never_raises_and_good_messages_after_garbage_get_through(messages):
    for transport, channel, payload in messages:
        out = ROUTER.decode(T0, transport, channel, payload)
        assert isinstance(out, list)
        for r in out:
            if isinstance(r, Rejected):
                assert r.sensor in IDS | {"unknown"}
    for topic, (good, cls) in GOOD.items():
        assert [type(r) for r in ROUTER.decode(T0 + S, "mqtt", topic, good)] == [cls]
