"""Routing: which sensor and stream a received message belongs to, and its decoder.

A serial message's channel is the sensor id. An MQTT message's channel is its
topic; it belongs to the sensor whose configured ``topic`` (an MQTT filter)
matches, and its stream is the topic's last level. Topics of a known sensor
that no configured filter covers (a radar's ``status``, say) are other streams
the contract lets sensors publish: they are counted as ignored, not rejected.
A topic no configured sensor owns is rejected as ``unknown_sensor``.

One decoder instance exists per (sensor, stream), so stream decoders keep
their partial frames per port and JSON decoders their schema.
"""

from __future__ import annotations

from collections import Counter

from drivers.decoder import Decoder
from drivers.gnss_stream import GnssStreamDecoder
from drivers.json_feeds import (
    RadarPlotsDecoder,
    RfDetectionsDecoder,
    RfSpectrumDecoder,
    SwitchgearEventsDecoder,
)
from drivers.power_stream import PowerMqttDecoder, PowerSerialDecoder
from drivers.topics import default_topic, topic_matches
from fusion.config import Sensor, SiteConfig
from fusion.records import Record, Rejected

# (kind, stream) -> decoder factory for MQTT; the contract's streams per sensor kind.
_MQTT_STREAMS = {
    ("radar", "plots"): lambda s, src, _: RadarPlotsDecoder(s.id, src),
    ("rf", "detections"): lambda s, src, _: RfDetectionsDecoder(s.id, src),
    ("rf", "spectrum"): lambda s, src, _: RfSpectrumDecoder(s.id, src),
    ("switchgear", "events"): lambda s, src, _: SwitchgearEventsDecoder(s.id, src),
    ("gnss", "raw"): lambda s, src, parse: GnssStreamDecoder(s.id, src, parse=parse),
    ("power", "waveform"): lambda s, src, _: PowerMqttDecoder(s, src),
}
_SERIAL_KINDS = {
    "gnss": lambda s, src, parse: GnssStreamDecoder(s.id, src, parse=parse),
    "power": lambda s, src, _: PowerSerialDecoder(s, src),
}


class Router:
    """Routes received messages to per-stream decoders.

    ``gnss_parse`` is the set of GNSS message identities to parse into fields
    (None: all); the pipeline passes what its detectors read.
    """

    def __init__(self, site: SiteConfig, gnss_parse: frozenset[str] | None = None):
        self.site = site
        self.gnss_parse = gnss_parse
        self._serial = {s.id: s for s in site.sensors if s.transport == "serial"}
        self._mqtt = [
            (s.topic or default_topic(site.site.id, s), s)
            for s in site.sensors
            if s.transport == "mqtt"
        ]
        self._by_id = {s.id: s for s in site.sensors}
        self._decoders: dict[tuple[str, str], Decoder | None] = {}
        self._topic_cache: dict[str, tuple[Sensor | None, str]] = {}
        self.ignored: Counter[str] = Counter()  # channel -> messages of streams we do not use

    def subscriptions(self) -> list[str]:
        """What the service subscribes to: the site's whole sensor namespace (so a
        publisher no sensor configuration names is seen, rejected and alerted as
        an unknown source), plus configured topics outside it."""
        namespace = f"rampart/{self.site.site.id}/+/+/+"
        prefix = f"rampart/{self.site.site.id}/"
        extra = [
            f
            for f, _ in self._mqtt
            if not (f.startswith(prefix) and f.count("/") == 4 and "#" not in f)
        ]
        return [namespace, *dict.fromkeys(extra)]

    def decode(self, t_rx_ns: int, transport: str, channel: str, payload: bytes) -> list[Record]:
        if transport == "serial":
            sensor = self._serial.get(channel)
            if sensor is None:
                return [
                    Rejected(
                        channel,
                        t_rx_ns,
                        t_rx_ns,
                        "unknown_sensor",
                        f"serial channel {channel!r} is not a configured serial sensor",
                    )
                ]
            key = (sensor.id, "serial")
            decoder = self._decoders.get(key)
            if decoder is None:
                factory = _SERIAL_KINDS.get(sensor.kind)
                if factory is None:
                    return [
                        Rejected(
                            sensor.id,
                            t_rx_ns,
                            t_rx_ns,
                            "unsupported",
                            f"no serial decoder for {sensor.kind} sensors",
                        )
                    ]
                decoder = self._decoders[key] = factory(
                    sensor, f"serial {sensor.id}", self.gnss_parse
                )
            return decoder.feed(payload, t_rx_ns)
        if transport != "mqtt":
            return [
                Rejected(
                    channel,
                    t_rx_ns,
                    t_rx_ns,
                    "unknown_transport",
                    f"transport {transport!r} on {channel!r}",
                )
            ]
        sensor, stream = self._route_topic(channel)
        if sensor is None:
            if stream == "ignored":
                self.ignored[channel] += 1
                return []
            return [
                Rejected(
                    channel,
                    t_rx_ns,
                    t_rx_ns,
                    "unknown_sensor",
                    f"topic {channel!r} belongs to no configured sensor",
                )
            ]
        key = (sensor.id, stream)
        decoder = self._decoders.get(key)
        if decoder is None and key not in self._decoders:
            factory = _MQTT_STREAMS.get((sensor.kind, stream))
            decoder = self._decoders[key] = (
                factory(sensor, f"topic {channel}", self.gnss_parse) if factory else None
            )
        if decoder is None:
            self.ignored[channel] += 1
            return []
        return decoder.feed(payload, t_rx_ns)

    def flush(self, t_rx_ns: int) -> list[Record]:
        """End of input: every stream decoder reports what it holds unfinished."""
        out: list[Record] = []
        for decoder in self._decoders.values():
            if decoder is not None:
                out.extend(decoder.flush(t_rx_ns))
        return out

    def _route_topic(self, topic: str) -> tuple[Sensor | None, str]:
        hit = self._topic_cache.get(topic)
        if hit is not None:
            return hit
        stream = topic.rsplit("/", 1)[-1]
        result: tuple[Sensor | None, str] = (None, "unknown")
        for topic_filter, sensor in self._mqtt:
            if topic_matches(topic_filter, topic):
                result = (sensor, stream)
                break
        else:
            parts = topic.split("/")
            if len(parts) == 5 and parts[0] == "rampart" and parts[1] == self.site.site.id:
                owner = self._by_id.get(parts[3])
                if owner is not None and owner.kind == parts[2]:
                    result = (None, "ignored")
        if len(self._topic_cache) < 10_000:  # hostile topic floods must not grow memory
            self._topic_cache[topic] = result
        return result
