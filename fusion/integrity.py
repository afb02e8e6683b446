"""Input integrity: rejected input that looks like an attack on the sensors themselves.

Decoders and the engine reject bad input one message at a time and count it.
This detector looks at the pattern of those rejections per source and raises
what a SOC must see:

- ``sensor_spoofing`` (high), reason ``impersonation``: a payload on one
  sensor's topic claims to be another sensor (``sensor_mismatch``). One is
  enough: a sensor's firmware does not get its own name wrong.
- ``sensor_spoofing`` (medium), reason ``unknown_source``: messages on a topic
  or port no configured sensor owns (``unknown_sensor``). The router counts
  them all under the one source ``unknown``, so a flood of made-up topics is
  one incident, not one per topic; ``details.examples`` names the first few
  topics (and ``last_detail`` the latest).
- ``sensor_spoofing`` (medium), reason ``replay``: repeated scan or frame
  numbers, frames out of sequence, or data times far behind or ahead
  (``duplicate``, ``out_of_order``, ``late``, ``future_timestamp``) at least
  ``replay_threshold`` times within ``window_s``. A single duplicate is normal
  (MQTT QoS 1 redelivers), a stream of them is a replayed capture.
- ``sensor_fault`` (medium), reason ``invalid_data``: impossible values
  (``invalid``, ``invalid_plot``, ``invalid_detection``, ``bad_time``,
  ``wrong_board``, ``channel_mismatch``) at least ``invalid_threshold`` times
  within ``window_s``.
- ``sensor_fault`` (medium), reason ``decoder_error``: input that made a
  decoder raise (``internal_error``, ``decoder_error``: a parser bug, or input
  crafted to find one) at least ``decoder_error_threshold`` times within
  ``window_s``.
- ``sensor_fault`` (medium), reason ``over_limit``: messages over the
  ``[limits]`` (``over_limit``, ``too_deep``: oversized payloads, hostile
  nesting, scans with absurd numbers of plots) at least
  ``over_limit_threshold`` times within ``window_s``.

Each incident updates at most every ``update_every_s`` with its counts, and
closes after ``quiet_s`` without another such rejection.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from fusion.config import ConfigError, SiteConfig
from fusion.detector import Finding
from fusion.records import Rejected

NS = 1_000_000_000

CATEGORY = {
    "sensor_mismatch": "impersonation",
    "unknown_sensor": "unknown_source",
    "duplicate": "replay",
    "out_of_order": "replay",
    "late": "replay",
    "future_timestamp": "replay",
    "invalid": "invalid_data",
    "invalid_plot": "invalid_data",
    "invalid_detection": "invalid_data",
    "bad_time": "invalid_data",
    "wrong_board": "invalid_data",
    "channel_mismatch": "invalid_data",
    "internal_error": "decoder_error",
    "decoder_error": "decoder_error",
    "over_limit": "over_limit",
    "too_deep": "over_limit",
}
KIND = {
    "impersonation": "sensor_spoofing",
    "unknown_source": "sensor_spoofing",
    "replay": "sensor_spoofing",
    "invalid_data": "sensor_fault",
    "decoder_error": "sensor_fault",
    "over_limit": "sensor_fault",
}
SEVERITY = {
    "impersonation": "high",
    "unknown_source": "medium",
    "replay": "medium",
    "invalid_data": "medium",
    "decoder_error": "medium",
    "over_limit": "medium",
}
SUMMARY = {
    "impersonation": "Messages on {s}'s topic claim to come from another sensor",
    "unknown_source": "Messages from unknown source {s}",
    "replay": "Replayed or stale messages from {s}",
    "invalid_data": "Sensor {s} sends impossible values",
    "decoder_error": "Input from {s} makes its decoder fail",
    "over_limit": "Sensor {s} sends messages over the configured limits",
}
UNKNOWN = "unknown"  # the router's one source for topics and ports no sensor owns
UNKNOWN_SUMMARY = "Messages on topics or ports no configured sensor owns"
MAX_EXAMPLES = 10
DEFAULTS = {
    "replay_threshold": 3,
    "invalid_threshold": 10,
    "decoder_error_threshold": 3,
    "over_limit_threshold": 3,
    "window_s": 60.0,
    "quiet_s": 120.0,
    "update_every_s": 30.0,
}


@dataclass(slots=True)
class _Incident:
    open: bool = False
    since_ns: int = 0
    last_ns: int = 0
    last_update_ns: int = 0
    total: int = 0
    recent: deque = field(default_factory=deque)  # t_ns of recent rejections, within the window
    reasons: dict = field(default_factory=dict)
    last_detail: str = ""
    examples: list = field(default_factory=list)  # the first few distinct details


class InputIntegrity:
    name = "integrity"
    consumes = (Rejected,)
    # A rejection is a fact about a message's arrival (stamped with its receive time):
    # judged at once, not a lateness window later. Closes still follow the watermark.
    takes_on_arrival = (Rejected,)

    def __init__(self, site: SiteConfig):
        cfg = dict(DEFAULTS)
        section = site.section("integrity")
        for key, value in section.items():
            if key not in DEFAULTS:
                raise ConfigError(
                    site.source, [f"integrity.{key}: unknown key (known: {', '.join(DEFAULTS)})"]
                )
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ConfigError(site.source, [f"integrity.{key}: must be a positive number"])
            cfg[key] = value
        self.thresholds = {
            "impersonation": 1,
            "unknown_source": 1,
            "replay": int(cfg["replay_threshold"]),
            "invalid_data": int(cfg["invalid_threshold"]),
            "decoder_error": int(cfg["decoder_error_threshold"]),
            "over_limit": int(cfg["over_limit_threshold"]),
        }
        self.window_ns = int(cfg["window_s"] * NS)
        self.quiet_ns = int(cfg["quiet_s"] * NS)
        self.update_ns = int(cfg["update_every_s"] * NS)
        self._incidents: dict[tuple[str, str], _Incident] = {}

    def on_record(self, record: Rejected) -> list[Finding]:
        category = CATEGORY.get(record.reason)
        if category is None:
            return []
        key = (record.sensor, category)
        inc = self._incidents.get(key)
        if inc is None:
            inc = self._incidents[key] = _Incident()
        t = record.t_ns
        inc.recent.append(t)
        while inc.recent and inc.recent[0] < t - self.window_ns:
            inc.recent.popleft()
        inc.total += 1
        inc.last_ns = t
        inc.reasons[record.reason] = inc.reasons.get(record.reason, 0) + 1
        inc.last_detail = record.detail[:200]
        if len(inc.examples) < MAX_EXAMPLES and inc.last_detail not in inc.examples:
            inc.examples.append(inc.last_detail)
        if not inc.open:
            if len(inc.recent) < self.thresholds[category]:
                return []
            inc.open = True
            inc.since_ns = inc.recent[0]
            inc.last_update_ns = t
            return [self._finding(key, inc, "open")]
        if t - inc.last_update_ns >= self.update_ns:
            inc.last_update_ns = t
            return [self._finding(key, inc, "update")]
        return []

    def on_tick(self, watermark_ns: int) -> list[Finding]:
        out = []
        for key, inc in self._incidents.items():
            if inc.open and watermark_ns - inc.last_ns > self.quiet_ns:
                inc.open = False
                out.append(self._finding(key, inc, "closed"))
                inc.total = 0
                inc.reasons = {}
                inc.examples = []
                inc.recent.clear()
        return out

    def _finding(self, key: tuple[str, str], inc: _Incident, state: str) -> Finding:
        source, category = key
        what = (
            UNKNOWN_SUMMARY
            if source == UNKNOWN and category == "unknown_source"
            else SUMMARY[category].format(s=source)
        )
        summary = what + f": {inc.total} in {(inc.last_ns - inc.since_ns) / NS:.0f} s"
        if state == "closed":
            summary = what + f" stopped ({inc.total} in all)"
        return Finding(
            key=f"{source}:{category}",
            state=state,
            kind=KIND[category],
            severity=SEVERITY[category],
            confidence=0.95 if category == "impersonation" else min(0.5 + 0.05 * inc.total, 0.9),
            sensors=() if source == UNKNOWN else (source,),
            t_event_ns=inc.since_ns,
            summary=summary,
            details={
                "reason": category,
                "rejections": inc.total,
                "by_reason": dict(sorted(inc.reasons.items())),
                "last_detail": inc.last_detail,
                "examples": list(inc.examples),
            },
        )
