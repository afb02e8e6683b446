"""Hard limits on what one received message may cost: the ``[limits]`` section.

Every message is checked against these before (and while) it is decoded, so a
hostile or broken publisher cannot stop the pipeline with one message (a
JSON document nested 100,000 deep overflows any recursive parser) or stall it
(a 10 MB scan of 330,000 plots holds the engine for seconds). A message over
a limit is rejected whole, reason ``over_limit`` (or ``too_deep`` for
nesting), with a detail naming the limit and the value; the other sensors'
data go on.

The nesting check is one pass over the bytes (``json_depth``), a small Numba
kernel that tracks strings and escapes, run before msgspec sees the payload.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numba import njit

from fusion.config import ConfigError, SiteConfig

# key -> (lowest allowed, highest allowed). msgspec recurses once per nesting
# level and hits Python's recursion limit near 1000, so depth stays well below.
_RANGES = {
    "max_payload_bytes": (64, 256 << 20),
    "max_chunk_bytes": (64, 256 << 20),
    "max_json_depth": (3, 512),
    "max_plots_per_scan": (1, 1_000_000),
    "max_detections_per_message": (1, 1_000_000),
    "max_bins_per_sweep": (1, 1_000_000),
    "max_queue_bytes": (1 << 16, 4 << 30),
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = 1 << 20  # one MQTT payload (checked at intake and before decoding)
    max_chunk_bytes: int = 1 << 20  # one serial chunk (a reader's chunks are 4 KiB)
    max_json_depth: int = 32  # arrays/objects inside each other; the contract's formats need 3
    max_plots_per_scan: int = 4096
    max_detections_per_message: int = 1024
    max_bins_per_sweep: int = 65536
    max_queue_bytes: int = 64 << 20  # payload bytes waiting per source in the service's intake

    @classmethod
    def from_section(cls, section: dict, source: str = "<config>") -> Limits:
        """The limits of a ``[limits]`` table; ConfigError naming each bad key."""
        problems = []
        values = {}
        for key, value in section.items():
            if key not in _RANGES:
                problems.append(f"limits.{key}: unknown key (known: {', '.join(_RANGES)})")
                continue
            lo, hi = _RANGES[key]
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                problems.append(f"limits.{key}: must be an integer in [{lo}, {hi}], not {value!r}")
                continue
            values[key] = value
        limits = cls(**values)
        if not problems and limits.max_queue_bytes < limits.max_payload_bytes:
            problems.append(
                f"limits.max_queue_bytes: {limits.max_queue_bytes} is below"
                f" limits.max_payload_bytes = {limits.max_payload_bytes}"
            )
        if problems:
            raise ConfigError(source, problems)
        return limits

    @classmethod
    def from_site(cls, site: SiteConfig) -> Limits:
        if "limits" in site.raw and not isinstance(site.raw["limits"], dict):
            raise ConfigError(site.source, ["limits: must be a table ([limits])"])
        return cls.from_section(site.section("limits"), site.source)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def json_depth(payload: bytes, stop_above: int = 1 << 30) -> int:
    """Deepest nesting of arrays and objects in ``payload`` (0 for a scalar), counting
    brackets outside strings; stops early once it passes ``stop_above``.

    Does not validate: malformed JSON gets a depth too, and msgspec rejects it later.
    """
    if not payload:
        return 0
    return int(_depth(np.frombuffer(payload, dtype=np.uint8), stop_above))


@njit(cache=True)
def _depth(data, stop_above):
    """One pass, states per RFC 8259 §7: inside a string, ``\\`` escapes the next
    byte and ``"`` ends it; outside, ``[`` / ``{`` open and ``]`` / ``}`` close."""
    depth = 0
    deepest = 0
    in_string = False
    escaped = False
    for i in range(data.size):
        b = data[i]
        if in_string:
            if escaped:
                escaped = False
            elif b == 92:  # backslash
                escaped = True
            elif b == 34:  # quote
                in_string = False
        elif b == 34:
            in_string = True
        elif b == 91 or b == 123:  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_above:
                    return deepest
        elif (b == 93 or b == 125) and depth > 0:  # ] }
            depth -= 1
    return deepest


def warm_up() -> None:
    """Compile (or load from Numba's cache) the kernel now, not on the first message."""
    json_depth(b'{"a": [1, "]"]}')
