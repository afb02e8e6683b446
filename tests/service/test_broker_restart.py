"""``rampart run`` across a broker restart (issue #7): no alert lost, recovery visible.

A persistent mosquitto (its state on disk, so a SOC subscriber's session and
queued QoS 1 messages survive the restart, as a production broker's do); the
real ``Service`` with the sinks ``rampart run`` builds (MQTT to the SOC topic
and a jsonl file, both behind the durable outbox); a SOC subscriber with a
persistent session. The sensors publish, the broker is stopped, the sensors
fall silent while it is down (so ``sensor_fault`` alerts are raised while no
alert can leave), the broker comes back and the sensors resume (so the faults
close). Every alert in the jsonl sink must reach the SOC subscriber; the
metrics show the connection lost and regained; the JSON log says both.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client.parser import text_string_to_metric_families

from drivers.sinks.config import ConfiguredDelivery
from fusion.cli.service import Service
from fusion.config import load_config
from tests.service.conftest import Broker, free_port
from tests.service.test_service import SITE, get, wait_for
from tests.service.test_service_serial_reopen import JsonLines

SINKS = """
[[sinks]]
type = "mqtt"
topic = "rampart/live/alerts"
qos = 1

[[sinks]]
type = "jsonl"
path = "alerts.jsonl"
"""


class PersistentBroker(Broker):
    def __init__(self, workdir: Path):
        super().__init__(workdir)
        store = workdir / "mosquitto-db"
        store.mkdir()
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {store}/\n"
        )


def metric(text: str, name: str) -> float | None:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                return s.value
    return None


def soc_subscriber(port: int, got: dict[str, dict], lock: threading.Lock) -> mqtt.Client:
    sub = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="soc-restart-test",
        protocol=mqtt.MQTTv5,
    )
    sub.reconnect_delay_set(0.1, 1.0)

    def on_connect(client, userdata, flags, reason, props):
        client.subscribe("rampart/live/alerts", qos=1)

    def on_message(client, userdata, msg):
        alert = json.loads(msg.payload)
        with lock:
            got[alert["alert_id"]] = alert

    sub.on_connect = on_connect
    sub.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    sub.connect("127.0.0.1", port, clean_start=False, properties=props)
    sub.loop_start()
    return sub


def test_broker_restart_loses_no_alert(tmp_path):
    broker = PersistentBroker(tmp_path)
    broker.start()
    http = free_port()
    cfg = tmp_path / "site.toml"
    cfg.write_text(SITE.format(port=broker.port, http=http) + SINKS)
    got: dict[str, dict] = {}
    lock = threading.Lock()
    sub = soc_subscriber(broker.port, got, lock)
    service = Service(cfg, sinks=[ConfiguredDelivery(load_config(cfg), cfg.parent)])
    runner = threading.Thread(target=service.run, kwargs={"max_seconds": 120}, daemon=True)
    logs = JsonLines()
    rampart_log = logging.getLogger("rampart")
    old_level = rampart_log.level
    rampart_log.addHandler(logs)
    rampart_log.setLevel(logging.INFO)
    base = f"http://127.0.0.1:{http}"
    pub = None

    def written() -> list[dict]:
        """The jsonl sink: a local file, so it has every alert even while the broker is down."""
        path = cfg.parent / "alerts.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(x) for x in lines if x.endswith("}")]

    def sensors_talk(seconds: float) -> None:
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end and n < 200:
            t = time.time()
            pub.publish(
                "rampart/live/radar/radar-1/plots",
                json.dumps({"sensor": "radar-1", "t": t, "scan": int(t * 10), "plots": []}),
                qos=1,
            )
            pub.publish(
                "rampart/live/rf/rf-1/detections",
                json.dumps({"sensor": "rf-1", "t": t, "detections": []}),
                qos=1,
            )
            n += 1
            time.sleep(0.1)

    def connect_sensors() -> mqtt.Client:
        c = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"sensors-{time.monotonic_ns()}",
            protocol=mqtt.MQTTv5,
        )
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        return c

    try:
        runner.start()
        wait_for(lambda: get(base + "/readyz")[0] == 200, 30, "service ready")
        pub = connect_sensors()
        sensors_talk(1.5)
        assert metric(get(base + "/metrics")[1], "rampart_mqtt_connected") == 1
        pub.loop_stop()
        pub.disconnect()
        # Broker down; the sensors are silent (fault_after_s = 2): faults open meanwhile.
        broker.stop()
        wait_for(lambda: not service.mqtt.connected.is_set(), 15, "disconnect noticed")
        wait_for(
            lambda: metric(get(base + "/metrics")[1], "rampart_mqtt_connected") == 0,
            10,
            "metrics show the broker lost",
        )
        wait_for(
            lambda: sum(a["kind"] == "sensor_fault" for a in written()) >= 2,
            20,
            "sensor_fault raised while the broker is down",
        )
        raised_while_down = [a["alert_id"] for a in written()]
        broker.start()
        wait_for(lambda: service.mqtt.connects >= 2, 45, "reconnect with backoff")
        wait_for(
            lambda: (
                metric(get(base + "/metrics")[1], "rampart_mqtt_connected") == 1
                and (metric(get(base + "/metrics")[1], "rampart_mqtt_connects_total") or 0) >= 2
            ),
            10,
            "metrics show the broker regained",
        )
        pub = connect_sensors()
        sensors_talk(1.5)  # the sensors are back: the faults close
        wait_for(
            lambda: any(a["kind"] == "sensor_fault" and a["state"] == "closed" for a in written()),
            20,
            "faults closed",
        )

        def delivered() -> bool:
            ids = {a["alert_id"] for a in written()}
            with lock:
                return bool(ids) and ids <= set(got)

        wait_for(delivered, 30, "every alert at the SOC subscriber")
    finally:
        if pub is not None:
            pub.loop_stop()
        service.stop_event.set()
        runner.join(timeout=30)
        sub.loop_stop()
        broker.stop()
        rampart_log.removeHandler(logs)
        rampart_log.setLevel(old_level)
    assert not runner.is_alive()
    # Every alert the service made (the jsonl file holds them all) reached the SOC, the
    # ones raised while the broker was down included.
    assert raised_while_down and set(raised_while_down) <= set(got)
    assert {a["alert_id"] for a in written()} <= set(got)
    kinds = [(a["kind"], a["state"]) for a in got.values()]
    assert kinds.count(("sensor_fault", "open")) >= 2 and ("sensor_fault", "closed") in kinds
    # The log tells the story: connection lost, then regained.
    msgs = [r["msg"] for r in logs.records() if r["logger"].startswith("rampart")]
    lost = [i for i, m in enumerate(msgs) if "disconnected" in m]
    back = [i for i, m in enumerate(msgs) if "connected to" in m and "disconnected" not in m]
    assert lost and any(i > lost[0] for i in back), msgs[-20:]
