"""SOC formats: CEF and RFC 5424 parsed back field by field, OCSF, Standard Webhooks signatures."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from drivers.sinks.acks import AckError, ack_from_webhook_reply, parse_mqtt_ack
from drivers.sinks.base import OutboxItem
from drivers.sinks.cef import details_json, to_cef
from drivers.sinks.ocsf import to_detection_finding
from drivers.sinks.syslog import SyslogSettings, octet_frame, rfc5424
from drivers.sinks.webhook import SecretError, body_of, load_secret, sign
from fusion.alerts import Alert, encode_alert
from tests.sinks.soc_parse import parse_cef, parse_rfc5424

NS = 1_000_000_000


def alert(**kw) -> Alert:
    base = dict(
        alert_id="01JDAAAAAAAAAAAAAAAAAAAAAA",
        incident_id="01JDBBBBBBBBBBBBBBBBBBBBBB",
        seq=2,
        state="update",
        kind="power_transient",
        severity="critical",
        confidence=0.97,
        site="dc-east-1",
        sensors=["pq-a", "pq-b"],
        t_event_ns=1_767_225_612_123_456_789,
        t_detect_ns=1_767_225_614_250_000_001,
        summary="EMP-like impulse on feeds A and B",
        details={"subtype": "emp_like", "feeds": ["A", "B"], "peak_v": 1840.5},
    )
    base.update(kw)
    return Alert(**base)


def check_cef_fields(a: Alert, cef: dict) -> None:
    """Every contract field, as the SOC reads it back from CEF."""
    h, ext = cef["header"], cef["ext"]
    assert cef["version"] == "0"
    assert h[0:2] == ["Rampart", "Rampart"]
    assert h[3] == a.kind
    assert h[4] == " ".join(a.summary.split())[:512]
    assert int(h[5]) == {"info": 1, "low": 3, "medium": 5, "high": 8, "critical": 10}[a.severity]
    labels = {ext[k]: k[: -len("Label")] for k in ext if k.endswith("Label")}
    custom = {name: ext[key] for name, key in labels.items()}
    assert ext["externalId"] == a.alert_id
    assert ext["act"] == a.state
    assert int(ext["rt"]) == a.t_detect_ns // 1_000_000
    assert int(ext["start"]) == a.t_event_ns // 1_000_000
    # CRs become newlines; cefevent trims surrounding whitespace of values
    assert ext["msg"] == a.summary.replace("\r\n", "\n").replace("\r", "\n")[:1023].strip()
    assert ext["deviceExternalId"] == a.site
    assert custom["incidentId"] == a.incident_id
    assert int(custom["seq"]) == a.seq
    assert int(custom["tEventNs"]) == a.t_event_ns
    assert int(custom["tDetectNs"]) == a.t_detect_ns
    assert float(custom["confidence"]) == pytest.approx(a.confidence)
    assert custom.get("sensors", "") == ",".join(a.sensors)
    details = json.loads(custom["details"])
    if "_truncated" not in details:
        assert details == a.details
    if a.kind == "power_transient" and "subtype" in a.details:
        assert custom["subtype"] == a.details["subtype"]
    if "incident_ids" in a.details:
        assert custom["relatedIncidents"].split(",") == a.details["incident_ids"]


def test_cef_maps_every_field():
    a = alert()
    cef = parse_cef(to_cef(a))
    check_cef_fields(a, cef)
    assert cef["ext"]["cat"] == "attack"
    assert parse_cef(to_cef(alert(kind="sensor_fault", details={})))["ext"]["cat"] == "operational"
    coord = alert(kind="coordinated_attack", details={"incident_ids": ["01A", "01B", "01C"]})
    check_cef_fields(coord, parse_cef(to_cef(coord)))


NASTY = st.text(
    alphabet=st.sampled_from(list('ab =|\\\n\r\t"]é€😀{}:,')) | st.characters(codec="utf-8"),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(summary=NASTY, detail=NASTY, site=st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True))
def test_cef_and_syslog_escaping_round_trips(summary, detail, site):
    a = alert(summary=summary, site=site, details={"note": detail, "k=v": "a|b"})
    line = rfc5424(a, SyslogSettings("127.0.0.1", hostname="edge-1")).decode("utf-8")
    assert "\n" not in line and "\r" not in line  # one message, one line
    parsed = parse_rfc5424(line)
    assert parsed["sd"]["alertId"] == a.alert_id and parsed["sd"]["site"] == site
    check_cef_fields(a, parse_cef(parsed["msg"]))


def test_rfc5424_header_and_framing():
    a = alert(severity="high", kind="drone_approach", details={})
    s = SyslogSettings("127.0.0.1", facility="local4", hostname="edge-1")
    msg = rfc5424(a, s)
    p = parse_rfc5424(msg.decode())
    assert (p["facility"], p["severity"]) == (20, 3)  # local4, err
    assert p["timestamp"] == "2026-01-01T00:00:14.250000Z"
    assert (p["hostname"], p["app_name"], p["procid"], p["msgid"]) == (
        "edge-1",
        "rampart",
        "-",
        "drone_approach",
    )
    assert p["sd_id"] == "rampart@32473"
    assert p["sd"] == {
        "alertId": a.alert_id,
        "incidentId": a.incident_id,
        "seq": "2",
        "state": "update",
        "site": "dc-east-1",
    }
    assert p["msg"].startswith("CEF:0|Rampart|Rampart|")
    assert octet_frame(msg) == str(len(msg)).encode() + b" " + msg
    sev = {
        x: parse_rfc5424(rfc5424(alert(severity=x), s).decode())["severity"]
        for x in ("critical", "high", "medium", "low", "info")
    }
    assert sev == {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}


def test_long_details_are_trimmed_by_whole_keys():
    details = {"small": 1, "big": "x" * 5000, "mid": "y" * 300}
    text = details_json(details, 4000)
    assert len(text) <= 4000
    assert json.loads(text) == {"small": 1, "mid": "y" * 300, "_truncated": ["big"]}
    a = alert(details=details)
    cef = parse_cef(to_cef(a))
    assert json.loads(cef["ext"]["cs3"])["_truncated"] == ["big"]


def test_ocsf_detection_finding():
    a = alert()
    f = to_detection_finding(a)
    assert (f["class_uid"], f["category_uid"], f["type_uid"]) == (2004, 2, 200402)
    assert (f["activity_id"], f["activity_name"]) == (2, "Update")
    assert (f["status_id"], f["status"]) == (2, "In Progress")
    assert (f["severity_id"], f["severity"]) == (5, "Critical")
    assert f["time"] == a.t_detect_ns // 1_000_000
    assert f["start_time"] == a.t_event_ns // 1_000_000
    assert f["confidence_score"] == 97 and f["confidence_id"] == 3
    assert f["is_alert"] is True
    assert f["metadata"]["uid"] == a.alert_id
    assert f["metadata"]["correlation_uid"] == a.incident_id
    assert f["metadata"]["sequence"] == 2
    assert f["metadata"]["version"] == "1.4.0"
    assert f["finding_info"]["uid"] == a.incident_id
    assert f["finding_info"]["types"] == ["power_transient"]
    assert json.loads(f["raw_data"]) == json.loads(encode_alert(a))
    opened = to_detection_finding(alert(state="open", seq=1))
    closed = to_detection_finding(alert(state="closed", seq=3))
    assert (opened["activity_id"], opened["status_id"], opened["type_uid"]) == (1, 1, 200401)
    assert (closed["activity_id"], closed["status_id"], closed["is_alert"]) == (3, 4, False)
    coord = to_detection_finding(
        alert(kind="coordinated_attack", details={"incident_ids": ["a", "b"]})
    )
    assert coord["finding_info"]["related_events"] == [{"uid": "a"}, {"uid": "b"}]
    fault = to_detection_finding(alert(kind="sensor_fault", severity="medium", details={}))
    assert fault["is_alert"] is False and fault["severity_id"] == 3


def test_webhook_signature_verifies_with_the_reference_library():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks spec's example secret
    key = load_secret(secret)
    a = alert()
    body = body_of(OutboxItem(1, a.alert_id, a.incident_id, a.severity, encode_alert(a)))
    ts = int(time.time())
    headers = {
        "webhook-id": a.alert_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(key, a.alert_id, ts, body),
    }
    assert Webhook(secret).verify(body, headers)["metadata"]["uid"] == a.alert_id
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(body + b" ", headers)
    for bad in ("whsec_", "whsec_!!!not-base64", "whsec_c2hvcnQ="):
        with pytest.raises(SecretError):
            load_secret(bad)


def test_acknowledgement_messages():
    ack = parse_mqtt_ack(
        b'{"incident_id": "01JD", "by": "analyst-7", "note": "team sent", "t": 1767225700.5}', 5
    )
    assert (ack.incident_id, ack.by, ack.via, ack.note) == (
        "01JD",
        "analyst-7",
        "mqtt",
        "team sent",
    )
    assert ack.t_ns == 1_767_225_700_500_000_000
    assert parse_mqtt_ack(b'{"incident_id": "01JD", "by": "x"}', 42).t_ns == 42
    for bad in (
        b"not json",
        b'{"by": "x"}',
        b'{"incident_id": "", "by": "x"}',
        b'{"incident_id": "a", "by": "x", "t": 5}',
    ):
        with pytest.raises(AckError):
            parse_mqtt_ack(bad, 0)
    assert ack_from_webhook_reply(None, "i", "a", 1) is None
    assert ack_from_webhook_reply({"ok": True}, "i", "a", 1) is None
    w = ack_from_webhook_reply({"ack": True, "by": "ticket-9"}, "i", "a", 1)
    assert (w.incident_id, w.alert_id, w.by, w.via) == ("i", "a", "ticket-9", "webhook")
