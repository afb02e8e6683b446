"""The MQTT sink against a real mosquitto with mutual TLS."""

from __future__ import annotations

import subprocess

from drivers.sinks.config import build_delivery
from drivers.sinks.delivery import DeliveryService
from drivers.sinks.mqtt import MqttSettings, MqttSink
from drivers.sinks.outbox import Outbox
from fusion.config import load_config
from fusion.incidents import IncidentBook
from tests.sinks.conftest import service_toml
from tests.sinks.servers import Mosquitto, MosquittoSub, stop_all, wait_for
from tests.sinks.test_outbox import make_alert

TOPIC = "rampart/sim-site/alerts"


def test_every_alert_reaches_a_subscriber_confirmed_by_puback(servers, tmp_path, certs, broker):
    sub = servers.add(MosquittoSub(tmp_path / "sub", broker, "rampart/+/alerts").start())
    cfg = service_toml(tmp_path, certs, broker=broker)
    delivery = build_delivery(load_config(cfg), tmp_path, outbox_path=tmp_path / "o.sqlite")
    sent = [make_alert(i, "high") for i in range(200)]
    for a in sent:
        delivery.send(a)
    assert delivery.drain(20)
    (status,) = delivery.status()
    assert status.confirmed == 200 and status.failed == 0
    wait_for(lambda: len(sub.alerts()) >= 200, 10, "subscriber got 200")
    got = sub.alerts()
    assert [a["alert_id"] for a in got] == [a.alert_id for a in sent]  # in order, once each
    assert got[0]["severity"] == "high" and got[0]["details"] == {"i": 0}
    delivery.close()
    stop_all(sub)


def test_nothing_is_confirmed_without_the_broker_and_all_arrives_after_it_returns(
    servers, tmp_path, certs
):
    broker = servers.add(Mosquitto(tmp_path / "b", certs).start())
    sub = servers.add(MosquittoSub(tmp_path / "sub", broker, TOPIC).start())
    cfg = service_toml(tmp_path, certs, broker=broker)
    delivery = build_delivery(load_config(cfg), tmp_path, outbox_path=tmp_path / "o.sqlite")
    broker.stop()
    for i in range(50):
        delivery.send(make_alert(i))
    assert not delivery.drain(2.0)
    assert delivery.outbox.pending() == 50  # sent into the void: nothing confirmed
    broker.start()  # same port, same persistence: the subscriber's session is still there
    assert delivery.drain(30)
    wait_for(lambda: len({a["alert_id"] for a in sub.alerts()}) == 50, 15, "all 50 arrived")
    delivery.close()
    stop_all(sub, broker)


def test_a_refusal_by_reason_code_is_not_a_confirmation(servers, tmp_path, certs):
    acl = tmp_path / "acl"
    acl.write_text("user client\ntopic read rampart/#\n")  # may not publish alerts
    broker = servers.add(Mosquitto(tmp_path / "b", certs, extra=f"acl_file {acl}\n").start())
    sink = MqttSink(
        MqttSettings(
            host="127.0.0.1",
            port=broker.port,
            topic=TOPIC,
            client_id="refused",
            tls=True,
            ca_file=certs.ca,
            cert_file=certs.client_cert,
            key_file=certs.client_key,
        ),
        name="mqtt",
    )
    ob = Outbox(tmp_path / "o.sqlite", ["mqtt"])
    svc = DeliveryService(ob, [sink], "sim-site", monitor_s=None).start()
    svc.send(make_alert(1, "critical"))
    wait_for(lambda: svc.status()[0].failed > 0, 15, "a refusal")
    assert ob.pending("mqtt") == 1 and svc.status()[0].confirmed == 0
    assert "Not authorized" in ob.backlog("mqtt").last_error
    svc.close()
    stop_all(broker)


def test_acknowledgements_on_the_acks_topic_are_recorded_on_the_incident(tmp_path, certs, broker):
    book = IncidentBook("sim-site")
    from tests.fusion.test_incidents import at, finding

    (opened,) = book.apply("det", finding(), at(0))
    cfg = service_toml(tmp_path, certs, broker=broker)
    delivery = build_delivery(
        load_config(cfg), tmp_path, outbox_path=tmp_path / "o.sqlite", on_ack=book.acknowledge
    )
    delivery.send(opened)
    assert delivery.drain(10)
    soc_cert, soc_key = certs.client("soc")
    payload = f'{{"incident_id": "{opened.incident_id}", "by": "analyst-7", "note": "on it"}}'
    subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            str(broker.port),
            "--cafile",
            str(certs.ca),
            "--cert",
            str(soc_cert),
            "--key",
            str(soc_key),
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-t",
            "rampart/sim-site/acks",
            "-m",
            payload,
        ],
        check=True,
        timeout=10,
    )
    wait_for(lambda: bool(book.incident(opened.incident_id).acks), 10, "ack recorded")
    (ack,) = book.incident(opened.incident_id).acks
    assert (ack.by, ack.via, ack.note) == ("analyst-7", "mqtt", "on it")
    assert delivery.outbox.acks(opened.incident_id) == [ack]  # kept on disk too
    (upd,) = book.apply("det", finding(state="update", summary="more"), at(10))
    assert upd.details["ack"]["by"] == "analyst-7"
    delivery.close()
