"""Routing: which sensor and stream a received message belongs to, and its decoder.

A serial message's channel is the sensor id. An MQTT message's channel is its
topic; it belongs to the sensor whose configured ``topic`` (an MQTT filter)
matches, and its stream is the topic's last level. Topics of a known sensor
that no configured filter covers (a radar's ``status``, say) are other streams
the contract lets sensors publish: they are counted as ignored (per sensor),
not rejected. A topic or serial channel no configured sensor owns is rejected
as ``unknown_sensor`` under the one source ``unknown`` (the topic is in the
detail): made-up topics must not make new metric series or incidents.

One decoder instance exists per (sensor, stream), so stream decoders keep
their partial frames per port and JSON decoders their schema.

``decode`` is the one guard around every decoder, for replay and service
alike: a message over ``[limits]`` (``drivers/limits.py``) is rejected
(``over_limit``) before any decoder sees it, and any exception escaping a
decoder becomes an ``internal_error`` rejection naming sensor and source,
logged with its traceback (rate-limited); that decoder is replaced by a
fresh one, since its state after the exception is unknown. Input never
stops the pipeline.
"""

from __future__ import annotations

import logging
from collections import Counter

from drivers import limits as limits_mod
from drivers.decoder import Decoder
from drivers.gnss_stream import GnssStreamDecoder
from drivers.json_feeds import (
    RadarPlotsDecoder,
    RfDetectionsDecoder,
    RfSpectrumDecoder,
    SwitchgearEventsDecoder,
)
from drivers.limits import Limits
from drivers.power_stream import PowerMqttDecoder, PowerSerialDecoder
from drivers.topics import default_topic, topic_matches
from fusion.config import Sensor, SiteConfig
from fusion.records import Record, Rejected
from fusion.rejects import LOG_EVERY, LOG_FIRST

log = logging.getLogger("rampart.router")

UNKNOWN = "unknown"  # the one source label of everything no configured sensor owns

# (kind, stream) -> decoder factory for MQTT; the contract's streams per sensor kind.
_MQTT_STREAMS = {
    ("radar", "plots"): lambda s, src, _, lim: RadarPlotsDecoder(s.id, src, lim),
    ("rf", "detections"): lambda s, src, _, lim: RfDetectionsDecoder(s.id, src, lim),
    ("rf", "spectrum"): lambda s, src, _, lim: RfSpectrumDecoder(s.id, src, lim),
    ("switchgear", "events"): lambda s, src, _, lim: SwitchgearEventsDecoder(s.id, src, lim),
    ("gnss", "raw"): lambda s, src, parse, _: GnssStreamDecoder(s.id, src, parse=parse),
    ("power", "waveform"): lambda s, src, _, __: PowerMqttDecoder(s, src),
}
_SERIAL_KINDS = {
    "gnss": lambda s, src, parse, _: GnssStreamDecoder(s.id, src, parse=parse),
    "power": lambda s, src, _, __: PowerSerialDecoder(s, src),
}


class Router:
    """Routes received messages to per-stream decoders.

    ``gnss_parse`` is the set of GNSS message identities to parse into fields
    (None: all); the pipeline passes what its detectors read. The ``[limits]``
    section of ``site`` is validated here (ConfigError naming the key).
    """

    def __init__(self, site: SiteConfig, gnss_parse: frozenset[str] | None = None):
        self.site = site
        self.gnss_parse = gnss_parse
        self.limits = Limits.from_site(site)
        limits_mod.warm_up()
        self._serial = {s.id: s for s in site.sensors if s.transport == "serial"}
        self._mqtt = [
            (s.topic or default_topic(site.site.id, s), s)
            for s in site.sensors
            if s.transport == "mqtt"
        ]
        self._by_id = {s.id: s for s in site.sensors}
        self._decoders: dict[tuple[str, str], Decoder | None] = {}
        self._topic_cache: dict[str, tuple[Sensor | None, str | None]] = {}
        self.ignored: Counter[str] = Counter()  # sensor id -> messages of streams we do not use
        self.internal_errors: Counter[str] = Counter()  # sensor id -> exceptions caught

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

    def source_of(self, transport: str, channel: str) -> str:
        """The sensor id a message belongs to, or ``unknown``: a bounded key for
        queues and counters. Read-only, so receiving threads may call it."""
        if transport == "serial":
            return channel if channel in self._serial else UNKNOWN
        if transport == "mqtt":
            hit = self._topic_cache.get(channel)
            sensor = (hit if hit is not None else self._match_topic(channel))[0]
            return sensor.id if sensor is not None else UNKNOWN
        return UNKNOWN

    def decode(
        self, t_rx_ns: int, transport: str, channel: str, payload: bytes, size: int | None = None
    ) -> list[Record]:
        """One received message's records. ``size``: the payload's length on the wire
        when the intake has already dropped its bytes for being over the limit."""
        size = len(payload) if size is None else size
        if transport == "serial":
            sensor = self._serial.get(channel)
            if sensor is None:
                return [
                    Rejected(
                        UNKNOWN,
                        t_rx_ns,
                        t_rx_ns,
                        "unknown_sensor",
                        f"serial channel {channel!r} is not a configured serial sensor",
                    )
                ]
            if size > self.limits.max_chunk_bytes:
                return [
                    self._over_limit(
                        sensor.id, t_rx_ns, f"serial {sensor.id}", "max_chunk_bytes", size
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
                    sensor, f"serial {sensor.id}", self.gnss_parse, self.limits
                )
            return self._feed(key, decoder, f"serial {sensor.id}", payload, t_rx_ns)
        if transport != "mqtt":
            return [
                Rejected(
                    UNKNOWN,
                    t_rx_ns,
                    t_rx_ns,
                    "unknown_transport",
                    f"transport {transport!r} on {channel!r}",
                )
            ]
        sensor, stream = self._route_topic(channel)
        if sensor is None:
            return [
                Rejected(
                    UNKNOWN,
                    t_rx_ns,
                    t_rx_ns,
                    "unknown_sensor",
                    f"topic {channel!r} belongs to no configured sensor ({size} bytes)",
                )
            ]
        if stream is None:
            self.ignored[sensor.id] += 1
            return []
        if size > self.limits.max_payload_bytes:
            return [
                self._over_limit(sensor.id, t_rx_ns, f"topic {channel}", "max_payload_bytes", size)
            ]
        key = (sensor.id, stream)
        decoder = self._decoders.get(key)
        if decoder is None and key not in self._decoders:
            factory = _MQTT_STREAMS.get((sensor.kind, stream))
            decoder = self._decoders[key] = (
                factory(sensor, f"topic {channel}", self.gnss_parse, self.limits)
                if factory
                else None
            )
        if decoder is None:
            self.ignored[sensor.id] += 1
            return []
        return self._feed(key, decoder, f"topic {channel}", payload, t_rx_ns)

    def flush(self, t_rx_ns: int) -> list[Record]:
        """End of input: every stream decoder reports what it holds unfinished."""
        out: list[Record] = []
        for key, decoder in list(self._decoders.items()):
            if decoder is None:
                continue
            try:
                out.extend(decoder.flush(t_rx_ns))
            except Exception as exc:
                out.append(self._internal_error(key, decoder, "flush", exc, t_rx_ns))
        return out

    # --- guards ----------------------------------------------------------------------------
    def _feed(
        self, key: tuple[str, str], decoder: Decoder, source: str, payload: bytes, t_rx_ns: int
    ) -> list[Record]:
        try:
            return decoder.feed(payload, t_rx_ns)
        except Exception as exc:
            return [self._internal_error(key, decoder, source, exc, t_rx_ns)]

    def _internal_error(
        self, key: tuple[str, str], decoder: Decoder, source: str, exc: Exception, t_rx_ns: int
    ) -> Rejected:
        """An exception escaped a decoder: a parser bug, or input crafted to find one."""
        sensor = key[0]
        self.internal_errors[sensor] += 1
        n = self.internal_errors[sensor]
        if n <= LOG_FIRST or n % LOG_EVERY == 0:
            log.error(
                "decoder of %s raised on input from %s (%d so far)",
                sensor,
                source,
                n,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
        # Its partial frames and counters may be half-updated: the next message gets a new one.
        self._decoders.pop(key, None)
        detail = f"{source}: {type(exc).__name__}: {str(exc)[:200]}"
        return Rejected(sensor, t_rx_ns, t_rx_ns, "internal_error", detail)

    def _over_limit(self, sensor: str, t_rx_ns: int, source: str, limit: str, size: int):
        value = getattr(self.limits, limit)
        return Rejected(
            sensor,
            t_rx_ns,
            t_rx_ns,
            "over_limit",
            f"{source}: {size} bytes exceeds limits.{limit} = {value}",
        )

    # --- topics ----------------------------------------------------------------------------
    def _route_topic(self, topic: str) -> tuple[Sensor | None, str | None]:
        hit = self._topic_cache.get(topic)
        if hit is not None:
            return hit
        result = self._match_topic(topic)
        if len(self._topic_cache) < 10_000:  # hostile topic floods must not grow memory
            self._topic_cache[topic] = result
        return result

    def _match_topic(self, topic: str) -> tuple[Sensor | None, str | None]:
        """(sensor, stream) for a configured topic; (owner, None) for another stream of
        a known sensor (ignored); (None, "unknown") for a topic no sensor owns."""
        stream = topic.rsplit("/", 1)[-1]
        for topic_filter, sensor in self._mqtt:
            if topic_matches(topic_filter, topic):
                return sensor, stream
        parts = topic.split("/")
        if len(parts) == 5 and parts[0] == "rampart" and parts[1] == self.site.site.id:
            owner = self._by_id.get(parts[3])
            if owner is not None and owner.kind == parts[2]:
                return owner, None
        return None, "unknown"
