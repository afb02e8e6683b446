"""The alert model of contract §4 and its JSON encoding.

An ``Alert`` is one message to the SOC. Field order is fixed and encoding is
msgspec's canonical JSON, so the same alerts always give the same bytes.
Identifiers are ULIDs (https://github.com/ulid/spec) whose time part is the
alert's data time and whose random part is a hash of what the alert is: a
replay reproduces them exactly, while they stay unique and sortable.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from ulid import ULID

SEVERITIES = ("info", "low", "medium", "high", "critical")
STATES = ("open", "update", "closed")
ATTACK_KINDS = ("drone_approach", "gnss_jamming", "gnss_spoofing", "coordinated_attack")


class Alert(msgspec.Struct, frozen=True):
    alert_id: str
    incident_id: str
    seq: int
    state: str
    kind: str
    severity: str
    confidence: float
    site: str
    sensors: list[str]
    t_event_ns: int
    t_detect_ns: int
    summary: str
    details: dict[str, Any] = {}
    # Extension of contract §4: SHA-256 of the configuration in force when the
    # alert was made (the site TOML's exact bytes), so the SOC can tell which
    # signed configuration produced it and notice when it changes.
    config_sha256: str = ""


_encoder = msgspec.json.Encoder(order="deterministic")


def encode_alert(alert: Alert) -> bytes:
    """One alert as canonical JSON (no trailing newline); details keys sorted."""
    return _encoder.encode(alert)


def decode_alert(line: bytes | str) -> Alert:
    return msgspec.json.decode(line, type=Alert)


def deterministic_ulid(t_ns: int, *parts: object) -> str:
    """A ULID with ``t_ns``'s millisecond as time and a hash of ``parts`` as randomness."""
    ms = max(0, t_ns // 1_000_000) & ((1 << 48) - 1)
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=10).digest()
    return str(ULID.from_bytes(ms.to_bytes(6, "big") + digest))
