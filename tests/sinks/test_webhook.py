"""The webhook sink against a local HTTPS receiver that verifies every signature."""

from __future__ import annotations

import json
import time

from drivers.sinks.config import build_delivery
from fusion.alerts import encode_alert
from fusion.config import load_config
from fusion.incidents import IncidentBook
from tests.fusion.test_incidents import at, finding
from tests.sinks.conftest import service_toml
from tests.sinks.servers import wait_for
from tests.sinks.test_syslog import varied_alert


def test_every_post_is_signed_and_carries_an_ocsf_finding(tmp_path, certs, webhook, webhook_secret):
    cfg = service_toml(tmp_path, certs, webhook=webhook, secret=webhook_secret)
    delivery = build_delivery(load_config(cfg), tmp_path, outbox_path=tmp_path / "o.sqlite")
    sent = [varied_alert(i) for i in range(60)]
    for a in sent:
        delivery.send(a)
    assert delivery.drain(30)
    assert len(webhook.received) == 60
    assert all(r.verified for r in webhook.received), [r.error for r in webhook.received]
    for a, r in zip(sent, webhook.received, strict=True):
        assert r.headers["webhook-id"] == a.alert_id
        assert r.headers["content-type"] == "application/json"
        body = json.loads(r.body)
        assert body["class_uid"] == 2004 and body["metadata"]["uid"] == a.alert_id
        assert json.loads(body["raw_data"]) == json.loads(encode_alert(a))
    delivery.close()


def test_500s_are_retried_with_backoff_and_re_signed(tmp_path, certs, webhook, webhook_secret):
    webhook.mode = "fail"
    cfg = service_toml(tmp_path, certs, webhook=webhook, secret=webhook_secret)
    delivery = build_delivery(load_config(cfg), tmp_path, outbox_path=tmp_path / "o.sqlite")
    sent = [varied_alert(i) for i in range(30)]
    for a in sent:
        delivery.send(a)
    time.sleep(2.5)
    failures = len(webhook.received)
    assert 2 <= failures <= 20  # backing off, not hammering (retry_max_s = 1 here)
    assert delivery.outbox.pending() == 30
    webhook.mode = "ok"
    assert delivery.drain(30)
    assert all(r.verified for r in webhook.received)
    assert {b["metadata"]["uid"] for b in webhook.accepted()} == {a.alert_id for a in sent}
    first = [r for r in webhook.received if r.headers["webhook-id"] == sent[0].alert_id]
    assert len(first) >= 2 and first[0].status == 500 and first[-1].status == 200
    delivery.close()


def test_a_refused_alert_waits_alone_and_a_reply_can_acknowledge(
    tmp_path, certs, webhook, webhook_secret
):
    book = IncidentBook("sim-site")
    (opened,) = book.apply("det", finding(), at(0))
    cfg = service_toml(tmp_path, certs, webhook=webhook, secret=webhook_secret)
    delivery = build_delivery(
        load_config(cfg), tmp_path, outbox_path=tmp_path / "o.sqlite", on_ack=book.acknowledge
    )
    webhook.mode = "refuse"
    delivery.send(varied_alert(0))
    wait_for(lambda: delivery.status()[0].failed >= 1, 10, "refused")
    webhook.mode = "ack"
    delivery.send(opened)
    wait_for(lambda: bool(book.incident(opened.incident_id).acks), 10, "acknowledged by reply")
    (ack,) = book.incident(opened.incident_id).acks
    assert (ack.by, ack.via, ack.alert_id) == ("soc-ticket-42", "webhook", opened.alert_id)
    assert delivery.outbox.acks(opened.incident_id) == [ack]
    assert delivery.drain(15)  # the refused one goes through once the receiver accepts it
    delivery.close()
