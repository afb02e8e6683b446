"""Alerts as ArcSight Common Event Format (CEF) — the format most SIEMs ingest.

Micro Focus, "Implementing ArcSight Common Event Format (CEF)", version 25
(2017): a header of seven ``|``-separated fields after ``CEF:0`` and an
extension of ``key=value`` pairs from the CEF key dictionary. Escaping (``\\``
and ``|`` in the header; ``\\``, ``=`` and newlines in extension values) and the
dictionary's length limits are the ``cefevent`` library's (PyPI ``cefevent``,
strict mode). Before handing values over we only do what it does not: header
fields lose line breaks (the header is one line), a carriage return in a value
becomes a newline (which it escapes as ``\\n``), and values are cut to the
dictionary's length so nothing is rejected.

The mapping (docs/soc.md has the table): header class id = ``kind``, name =
``summary``, severity 1/3/5/8/10 for info/low/medium/high/critical;
``externalId`` = ``alert_id``, ``act`` = ``state``, ``rt``/``start`` = decision
and event time in epoch ms, ``cs1`` incident id, ``cs2`` sensors, ``cs3``
details as JSON, ``cs4`` related (linked) incident ids, ``cs5`` subtype,
``cn1`` seq, ``cn2``/``cn3`` the exact nanosecond times, ``cfp1`` confidence.
"""

from __future__ import annotations

from typing import Any

import msgspec
from cefevent import CEFEvent

from fusion import __version__
from fusion.alerts import Alert
from fusion.correlation import attack_class

VENDOR = "Rampart"
PRODUCT = "Rampart"
SEVERITY = {"info": 1, "low": 3, "medium": 5, "high": 8, "critical": 10}
NAME_MAX = 512
_json = msgspec.json.Encoder(order="deterministic")

# (CEF dictionary full name, label) of the custom fields, in the order written.
CUSTOM = {
    "incident_id": ("deviceCustomString1", "incidentId"),
    "sensors": ("deviceCustomString2", "sensors"),
    "details": ("deviceCustomString3", "details"),
    "related": ("deviceCustomString4", "relatedIncidents"),
    "subtype": ("deviceCustomString5", "subtype"),
    "seq": ("deviceCustomNumber1", "seq"),
    "t_event_ns": ("deviceCustomNumber2", "tEventNs"),
    "t_detect_ns": ("deviceCustomNumber3", "tDetectNs"),
    "confidence": ("deviceCustomFloatingPoint1", "confidence"),
}


def to_cef(alert: Alert, device_version: str = __version__) -> str:
    """One alert as a CEF:0 line (no trailing newline)."""
    ev = CEFEvent(strict=True)
    ev.set_prefix("deviceVendor", VENDOR)
    ev.set_prefix("deviceProduct", PRODUCT)
    ev.set_prefix("deviceVersion", _header(device_version, 31))
    ev.set_prefix("signatureId", _header(alert.kind, 1023))
    ev.set_prefix("name", _header(alert.summary, NAME_MAX))
    ev.set_prefix("severity", SEVERITY[alert.severity])
    attack = (
        attack_class(alert.kind, alert.details) is not None or alert.kind == "coordinated_attack"
    )
    fields: list[tuple[str, Any]] = [
        ("externalId", alert.alert_id),
        ("deviceAction", alert.state),
        ("receiptTime", alert.t_detect_ns // 1_000_000),
        ("startTime", alert.t_event_ns // 1_000_000),
        ("deviceEventCategory", "attack" if attack else "operational"),
        ("message", alert.summary),
        ("deviceExternalId", alert.site),
    ]
    values: dict[str, Any] = {
        "incident_id": alert.incident_id,
        "sensors": ",".join(alert.sensors),
        "details": details_json(alert.details, 4000),
        "related": ",".join(_related(alert.details)),
        "subtype": alert.details.get("subtype") if alert.kind == "power_transient" else None,
        "seq": alert.seq,
        "t_event_ns": alert.t_event_ns,
        "t_detect_ns": alert.t_detect_ns,
        "confidence": float(alert.confidence),
    }
    for key, (full, label) in CUSTOM.items():
        value = values[key]
        if value is None or value == "":
            continue
        fields.append((full + "Label", label))
        fields.append((full, value))
    for full, value in fields:
        if isinstance(value, str):
            value = _value(value, ev.get_field_metadata(full, "length"))
        ev.set_field(full, value)
    return ev.build_cef()


def details_json(details: dict[str, Any], limit: int) -> str:
    """``details`` as canonical JSON within ``limit`` characters.

    When it does not fit, the largest top-level keys are left out, largest
    first, and named in ``"_truncated"``; the full object is in every other
    format (MQTT, webhook ``raw_data``, JSON lines).
    """
    text = _json.encode(details).decode()
    if len(text) <= limit:
        return text
    sizes = sorted(((len(_json.encode(v)), k) for k, v in details.items()), reverse=True)
    kept = dict(details)
    dropped: list[str] = []
    for _, key in sizes:
        del kept[key]
        dropped.append(key)
        text = _json.encode({**kept, "_truncated": sorted(dropped)}).decode()
        if len(text) <= limit:
            return text
    return _json.encode({"_truncated": sorted(details)}).decode()[:limit]


def _related(details: dict[str, Any]) -> list[str]:
    ids = details.get("incident_ids")
    return [str(i) for i in ids] if isinstance(ids, list) else []


def _header(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit]  # one line, no runs of whitespace


def _value(text: str, limit: int) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text[:limit] if limit else text
