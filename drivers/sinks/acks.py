"""Acknowledgements from the SOC, as they arrive on the wire.

Two ways in (docs/soc.md, "Acknowledging an incident"):

- an MQTT message on ``rampart/{site}/acks`` (QoS 1), a UTF-8 JSON object::

      {"incident_id": "01JD…", "by": "analyst-7", "note": "drone team sent",
       "t": 1767225700.0, "alert_id": "01JD…"}

  ``incident_id`` and ``by`` are required; ``t`` (float epoch seconds, when the
  analyst acknowledged) defaults to the receive time;

- the webhook receiver's reply to an alert's POST: a 2xx response whose JSON
  body has ``"ack": true`` (``by``, ``note`` optional) acknowledges the
  incident of that alert. Any other 2xx reply only confirms delivery.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fusion.incidents import Acknowledgement
from fusion.records import epoch_s_to_ns

MAX_TEXT = 256


class AckError(ValueError):
    """An acknowledgement message that cannot be used."""


class _MqttAck(msgspec.Struct):
    incident_id: str
    by: str
    note: str = ""
    t: float | None = None
    alert_id: str | None = None


_decoder = msgspec.json.Decoder(_MqttAck)


def parse_mqtt_ack(payload: bytes, t_rx_ns: int) -> Acknowledgement:
    """An ``rampart/{site}/acks`` payload; raises AckError saying what is wrong."""
    try:
        msg = _decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise AckError(f"not an acknowledgement: {exc}") from None
    if not msg.incident_id or not msg.by:
        raise AckError("incident_id and by must be non-empty")
    t_ns = t_rx_ns
    if msg.t is not None:
        if not 946_684_800 <= msg.t <= 4_102_444_800:  # 2000..2100
            raise AckError(f"t {msg.t} is not a plausible epoch time")
        t_ns = epoch_s_to_ns(msg.t)
    return Acknowledgement(
        msg.incident_id[:MAX_TEXT],
        msg.by[:MAX_TEXT],
        "mqtt",
        t_ns,
        msg.note[:MAX_TEXT],
        msg.alert_id[:MAX_TEXT] if msg.alert_id else None,
    )


def ack_from_webhook_reply(
    reply: Any, incident_id: str, alert_id: str, t_ns: int
) -> Acknowledgement | None:
    """The acknowledgement a webhook's JSON reply carries, or None when it carries none."""
    if not isinstance(reply, dict) or reply.get("ack") is not True:
        return None
    by = reply.get("by")
    note = reply.get("note")
    return Acknowledgement(
        incident_id,
        str(by)[:MAX_TEXT] if by else "webhook",
        "webhook",
        t_ns,
        str(note)[:MAX_TEXT] if note else "",
        alert_id,
    )
