"""The syslog sink against a real rsyslog with a TLS listener (client certificates required)."""

from __future__ import annotations

import time

from drivers.sinks.config import build_delivery
from fusion.alerts import Alert
from fusion.config import load_config
from tests.sinks.conftest import service_toml
from tests.sinks.servers import wait_for
from tests.sinks.soc_parse import parse_cef, parse_rfc5424
from tests.sinks.test_formats import check_cef_fields
from tests.sinks.test_outbox import NS, T0

KINDS = [
    ("drone_approach", "high", {"track_id": 17, "eta_s": 41.5, "zone": "hall-a"}),
    ("gnss_jamming", "high", {"bands": ["L1", "E1"], "cn0_drop_db": 18.2}),
    ("power_transient", "critical", {"subtype": "emp_like", "feeds": ["A", "B"]}),
    ("power_transient", "low", {"subtype": "switching", "note": 'ATS "A"->B | 3 = ok\\done'}),
    ("sensor_fault", "medium", {"reason": "silent"}),
    ("coordinated_attack", "critical", {"incident_ids": ["01AAA", "01BBB", "01CCC"]}),
    ("delivery_backlog", "info", {"sink": "mqtt:x"}),
]


def varied_alert(i: int) -> Alert:
    kind, sev, details = KINDS[i % len(KINDS)]
    return Alert(
        f"01JDA{i:021d}",
        f"01JDI{i // 3:021d}",
        i % 3 + 1,
        ("open", "update", "closed")[i % 3],
        kind,
        sev,
        round(0.5 + (i % 50) / 100, 2),
        "sim-site",
        ["radar-1", "rf-1"][: i % 3],
        T0 + i * NS,
        T0 + i * NS + 250_000_000 + i,
        f"Alert {i}: {kind} | zone=hall-a \\ ok\nsecond line é",
        details,
    )


def received(rsyslog) -> dict[str, dict]:
    out = {}
    for line in rsyslog.lines():
        p = parse_rfc5424(line)
        out.setdefault(p["sd"]["alertId"], p)
    return out


def test_every_alert_arrives_as_rfc5424_cef_and_parses_back_field_by_field(
    tmp_path, certs, rsyslog
):
    cfg = service_toml(tmp_path, certs, rsyslog=rsyslog)
    delivery = build_delivery(load_config(cfg), tmp_path, outbox_path=tmp_path / "o.sqlite")
    sent = [varied_alert(i) for i in range(140)]
    for a in sent:
        delivery.send(a)
    assert delivery.drain(30)
    wait_for(lambda: len(received(rsyslog)) >= len(sent), 10, "rsyslog wrote every alert")
    got = received(rsyslog)
    assert len(rsyslog.lines()) == len(sent)  # a healthy path sends each exactly once
    for a in sent:
        p = got[a.alert_id]
        assert p["hostname"] == "edge-1" and p["app_name"] == "rampart" and p["msgid"] == a.kind
        assert p["facility"] == 16
        assert (
            p["severity"]
            == {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}[a.severity]
        )
        assert p["sd"]["incidentId"] == a.incident_id and int(p["sd"]["seq"]) == a.seq
        check_cef_fields(a, parse_cef(p["msg"]))
    delivery.close()


def test_a_stopped_syslog_server_loses_nothing(tmp_path, certs, rsyslog):
    cfg = service_toml(tmp_path, certs, rsyslog=rsyslog)
    delivery = build_delivery(load_config(cfg), tmp_path, outbox_path=tmp_path / "o.sqlite")
    sent = [varied_alert(i) for i in range(300)]
    for a in sent[:100]:
        delivery.send(a)
    time.sleep(0.2)
    rsyslog.stop()  # mid-stream
    for a in sent[100:250]:
        delivery.send(a)
    time.sleep(1.5)
    assert delivery.outbox.pending() > 0
    rsyslog.start()
    for a in sent[250:]:
        delivery.send(a)
    assert delivery.drain(30)
    wait_for(lambda: len(received(rsyslog)) >= len(sent), 10, "every alert after the restart")
    assert set(received(rsyslog)) == {a.alert_id for a in sent}
    delivery.close()
