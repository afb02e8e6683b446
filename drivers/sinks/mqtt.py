"""The MQTT sink: every alert to ``rampart/{site}/alerts`` at QoS 1, MQTT v5, over TLS.

paho-mqtt 2.x with a persistent session (``clean_start`` false, a session
expiry) and client certificates. An alert is confirmed only by ``on_publish``
for its message id with a reason code that is not a failure (MQTT 5.0 §3.4.2.1:
0 Success and 16 No matching subscribers are successes; 0x80 and above are
refusals such as 0x87 Not authorized or 0x97 Quota exceeded). A refused
alert is retried on its own back-off.

While the broker is away paho keeps the unacknowledged messages and resends
them, flagged DUP, when it reconnects (its own reconnect back-off); the
outbox keeps them across restarts of Rampart. An alert that is still
unacknowledged ``confirm_timeout_s`` after it was published on a live
connection is reported failed and published again.

Each message carries MQTT v5 properties so integrators can route without
parsing: content type ``application/json`` and user properties ``alert_id``,
``incident_id``, ``kind``, ``severity``. The same connection subscribes to the
acknowledgement topic (``rampart/{site}/acks`` by default) and hands each
acknowledgement to the delivery service.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.sinks.acks import AckError, parse_mqtt_ack
from drivers.sinks.base import OutboxItem, Outcome, client_tls_context
from fusion.incidents import Acknowledgement

log = logging.getLogger("rampart.sinks.mqtt")


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    topic: str = "rampart/site/alerts"
    qos: int = 1
    client_id: str = "rampart-alerts"
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify_hostname: bool = True
    username: str | None = None
    password: str | None = None
    acks_topic: str | None = None
    keepalive_s: int = 30
    session_expiry_s: int = 86400
    max_inflight: int = 100
    confirm_timeout_s: float = 60.0
    retry_min_s: float = 0.5
    retry_max_s: float = 10.0


class MqttSink:
    def __init__(
        self,
        settings: MqttSettings,
        name: str | None = None,
        on_ack: Callable[[Acknowledgement], None] | None = None,
    ):
        self.s = settings
        self.name = name or f"mqtt:{settings.host}:{settings.port}/{settings.topic}"
        self.on_ack = on_ack
        self.connected = False
        self.last_error = ""
        self.acks_received = 0
        self.acks_rejected = 0
        self._events: queue.Queue = queue.Queue()
        self._by_mid: dict[int, tuple[int, float]] = {}  # mid -> (item id, published at)
        self._by_item: dict[int, int] = {}  # item id -> mid
        self._failed: list[Outcome] = []
        self._connected_at = 0.0
        self._closing = False
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=mqtt.MQTTv5,
        )
        if settings.tls:
            c.tls_set_context(
                client_tls_context(
                    settings.ca_file,
                    settings.cert_file,
                    settings.key_file,
                    settings.verify_hostname,
                )
            )
        if settings.username:
            c.username_pw_set(settings.username, settings.password)
        c.max_inflight_messages_set(settings.max_inflight)
        c.max_queued_messages_set(0)  # the outbox bounds what is queued, not paho
        c.reconnect_delay_set(
            max(1, round(settings.retry_min_s)), max(1, round(settings.retry_max_s))
        )
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = settings.session_expiry_s
        self._client = c
        c.connect_async(
            settings.host,
            settings.port,
            keepalive=settings.keepalive_s,
            clean_start=False,
            properties=props,
        )
        c.loop_start()

    # --- paho callbacks (paho's network thread) ----------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.connected = False
            self.last_error = f"{self.name}: broker refused the connection: {reason_code}"
            log.error("%s", self.last_error)
            return
        self.connected = True
        self._connected_at = time.monotonic()  # paho resends what it holds from now on
        log.info(
            "%s: connected (session %s)",
            self.name,
            "resumed" if flags.session_present else "new",
        )
        if self.s.acks_topic:
            client.subscribe(self.s.acks_topic, qos=1)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected and not self._closing:
            log.warning("%s: disconnected (%s); paho reconnects", self.name, reason_code)
        self.connected = False
        self.last_error = f"{self.name}: disconnected ({reason_code})"

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._events.put((mid, reason_code))

    def _on_message(self, client, userdata, message) -> None:
        try:
            ack = parse_mqtt_ack(message.payload, time.time_ns())
        except AckError as exc:
            self.acks_rejected += 1
            log.warning("%s: rejected message on %s: %s", self.name, message.topic, exc)
            return
        self.acks_received += 1
        if self.on_ack is not None:
            self.on_ack(ack)

    # --- Sink ----------------------------------------------------------------------------
    def room(self) -> int:
        return max(0, 4 * self.s.max_inflight - len(self._by_item))

    def offer(self, item: OutboxItem) -> None:
        if item.id in self._by_item:
            return  # paho still holds it and will resend it itself
        alert = item.alert
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "application/json"
        props.UserProperty = [
            ("alert_id", alert.alert_id),
            ("incident_id", alert.incident_id),
            ("kind", alert.kind),
            ("severity", alert.severity),
        ]
        info = self._client.publish(self.s.topic, item.body, qos=self.s.qos, properties=props)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            # not even queued (MQTT_ERR_NO_CONN is: paho sends it on reconnect)
            self._failed.append(Outcome(item.id, False, f"{self.name}: publish: {info.rc}"))
            return
        self._by_mid[info.mid] = (item.id, time.monotonic())
        self._by_item[item.id] = info.mid

    def poll(self, timeout_s: float) -> list[Outcome]:
        out, self._failed = self._failed, []
        if not self._by_item and not out:
            return out
        try:
            events = [self._events.get(timeout=timeout_s if not out else 0)]
        except queue.Empty:
            events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                break
        for mid, reason in events:
            entry = self._by_mid.pop(mid, None)
            if entry is None:
                continue  # confirmed after we had given up on it: already re-published
            item_id = entry[0]
            self._by_item.pop(item_id, None)
            if reason.is_failure:
                out.append(
                    Outcome(item_id, False, f"{self.name}: broker refused: {reason}", "item")
                )
            else:
                out.append(Outcome(item_id, True))
        if self.connected:
            now = time.monotonic()
            since = self._connected_at
            late = [
                m
                for m, (_, t) in self._by_mid.items()
                if now - max(t, since) > self.s.confirm_timeout_s
            ]
            for mid in late:
                item_id, _ = self._by_mid.pop(mid)
                self._by_item.pop(item_id, None)
                out.append(
                    Outcome(
                        item_id,
                        False,
                        f"{self.name}: no PUBACK in {self.s.confirm_timeout_s:g} s",
                        "item",
                    )
                )
        return out

    def close(self) -> None:
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()
