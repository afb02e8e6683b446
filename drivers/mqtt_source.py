"""Live MQTT ingestion: paho-mqtt 2.x, MQTT v5, TLS with client certificates.

The client subscribes (QoS 1) to every configured sensor topic filter and
hands each message, stamped with its receive time, to a callback. paho's
network thread reconnects with exponential backoff (1 s doubling to 30 s)
when the broker goes away; the session is persistent (clean_start false, a
session expiry interval), so QoS 1 messages published while Rampart was
disconnected are delivered when it reconnects, and subscriptions are renewed
on every connect in case the broker lost the session.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger("rampart.mqtt")


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "rampart"
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    session_expiry_s: int = (
        3600  # how long the broker keeps our subscriptions and queued QoS 1 messages
    )

    @classmethod
    def from_section(cls, section: dict, base: Path, default_client_id: str) -> MqttSettings:
        """The ``[mqtt]`` section of a service configuration; paths relative to its file."""

        def path(key: str) -> str | None:
            value = section.get(key)
            if value is None:
                return None
            p = Path(value)
            return str(p if p.is_absolute() else base / p)

        return cls(
            host=str(section.get("host", "127.0.0.1")),
            port=int(section.get("port", 8883 if section.get("tls") else 1883)),
            client_id=str(section.get("client_id", default_client_id)),
            tls=bool(section.get("tls", False)),
            ca_file=path("ca_file"),
            cert_file=path("cert_file"),
            key_file=path("key_file"),
            username=section.get("username"),
            password=section.get("password"),
            keepalive_s=int(section.get("keepalive_s", 30)),
            session_expiry_s=int(section.get("session_expiry_s", 3600)),
        )


class MqttSource:
    """Subscribes to sensor topics and calls ``on_message(t_rx_ns, topic, payload)`` per message."""

    def __init__(
        self,
        settings: MqttSettings,
        topic_filters: list[str],
        on_message: Callable[[int, str, bytes], None],
    ):
        self.settings = settings
        self.filters = list(topic_filters)
        self._on_message = on_message
        self.connected = threading.Event()
        self.connects = 0
        self.disconnects = 0
        self.last_error = ""
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=mqtt.MQTTv5,
        )
        if settings.tls:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.ca_file)
            if settings.cert_file:
                ctx.load_cert_chain(settings.cert_file, settings.key_file)
            client.tls_set_context(ctx)
        if settings.username:
            client.username_pw_set(settings.username, settings.password)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_message = self._message
        self.client = client

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        self.client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_connected(self, timeout_s: float) -> bool:
        return self.connected.wait(timeout_s)

    def _connected(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = str(reason_code)
            log.error(
                "mqtt: %s:%d refused the connection: %s",
                self.settings.host,
                self.settings.port,
                reason_code,
            )
            return
        self.connects += 1
        log.info(
            "mqtt: connected to %s:%d (session present: %s)",
            self.settings.host,
            self.settings.port,
            flags.session_present,
        )
        client.subscribe([(f, 1) for f in self.filters])
        self.connected.set()

    def _disconnected(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.disconnects += 1
        self.last_error = str(reason_code)
        log.warning(
            "mqtt: disconnected from %s:%d (%s); reconnecting with backoff",
            self.settings.host,
            self.settings.port,
            reason_code,
        )

    def _message(self, client, userdata, msg) -> None:
        self._on_message(time.time_ns(), msg.topic, bytes(msg.payload))
