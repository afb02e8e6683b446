"""MQTT topics of the contract: ``rampart/{site}/{kind}/{sensor_id}/{stream}``."""

from __future__ import annotations

from fusion.config import Sensor


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT 3.1.1 §4.7 topic filter matching ('+' one level, '#' the rest)."""
    f_parts = topic_filter.split("/")
    t_parts = topic.split("/")
    for i, f in enumerate(f_parts):
        if f == "#":
            return True
        if i >= len(t_parts):
            return False
        if f != "+" and f != t_parts[i]:
            return False
    return len(f_parts) == len(t_parts)


def default_topic(site_id: str, sensor: Sensor) -> str:
    """The filter for a sensor configured without ``topic``: all its streams."""
    return f"rampart/{site_id}/{sensor.kind}/{sensor.id}/+"


def stream_topic(site_id: str, sensor: Sensor, stream: str) -> str:
    """The topic a sensor publishes ``stream`` on.

    A configured filter ending in a wildcard gets the stream as its last level;
    an exact configured topic is used as it is (the sensor's one stream); no
    topic gives the contract's default.
    """
    topic = sensor.topic
    if not topic:
        return f"rampart/{site_id}/{sensor.kind}/{sensor.id}/{stream}"
    if topic.endswith("/+") or topic.endswith("/#"):
        return topic[:-1] + stream
    return topic
