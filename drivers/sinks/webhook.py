"""The webhook sink: HTTPS POST of an OCSF Detection Finding, signed the Standard Webhooks way.

Each alert is one POST (Standard Webhooks specification, standardwebhooks.com,
"Signature scheme"):

- body: the alert as an OCSF Detection Finding (``drivers.sinks.ocsf``),
  canonical JSON, byte-identical on every retry;
- ``webhook-id``: the ``alert_id`` (the same on retries: the receiver's
  idempotency key);
- ``webhook-timestamp``: integer epoch seconds of this attempt;
- ``webhook-signature``: ``v1,`` + base64(HMAC-SHA256(key, id + "." + timestamp +
  "." + body)), where the key is the base64-decoded part of a ``whsec_…``
  secret (the reference libraries' rule).

A 2xx answer confirms the alert; its JSON body, when it has one, is handed
back (an ``"ack": true`` body acknowledges the incident, ``drivers.sinks.acks``).
408, 425, 429 and 5xx answers and network errors mean the receiver is
unavailable: the whole sink backs off (honouring ``Retry-After``). Any other
answer (400, 401, 403, 404, 410, 413, 422, a redirect) refuses that one
alert: it is retried on its own back-off while the others keep flowing, and
the refusal is logged and shows in the backlog. Nothing is dropped.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import ssl
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from drivers.sinks.base import OutboxItem, Outcome, client_tls_context
from drivers.sinks.ocsf import to_detection_finding
from fusion import __version__

log = logging.getLogger("rampart.sinks.webhook")

_encode = msgspec.json.Encoder(order="deterministic").encode
MAX_REPLY = 64 * 1024
RETRY_STATUSES = {408, 425, 429}


class SecretError(ValueError):
    pass


def load_secret(text: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_`` + base64)."""
    text = text.strip()
    if text.startswith("whsec_"):
        text = text[len("whsec_") :]
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SecretError("not a Standard Webhooks secret (whsec_ followed by base64)") from None
    if len(key) < 16:
        raise SecretError(f"secret key is {len(key)} bytes; use at least 16 (32 recommended)")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64(HMAC-SHA256(key, id.timestamp.body))."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def body_of(item: OutboxItem) -> bytes:
    return _encode(to_detection_finding(item.alert))


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    url: str
    key: bytes = field(repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify_hostname: bool = True
    timeout_s: float = 10.0
    headers: tuple[tuple[str, str], ...] = ()


class WebhookSink:
    def __init__(self, settings: WebhookSettings, name: str | None = None):
        self.s = settings
        self.name = name or f"webhook:{settings.url}"
        parts = urlsplit(settings.url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"{settings.url}: a webhook url must be https://host[:port]/path")
        self._host = parts.hostname
        self._port = parts.port or 443
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._ctx = client_tls_context(
            settings.ca_file, settings.cert_file, settings.key_file, settings.verify_hostname
        )
        self._conn: http.client.HTTPSConnection | None = None
        self._results: list[Outcome] = []
        self._failing = False
        self.last_error = ""
        self.posted = 0

    # --- Sink ----------------------------------------------------------------------------
    def room(self) -> int:
        return 0 if self._results else 1

    def offer(self, item: OutboxItem) -> None:
        self._results.append(self._post(item))

    def poll(self, timeout_s: float) -> list[Outcome]:
        out, self._results = self._results, []
        return out

    def close(self) -> None:
        self._drop_connection()

    # --- HTTP ----------------------------------------------------------------------------
    def _post(self, item: OutboxItem) -> Outcome:
        body = body_of(item)
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"rampart/{__version__}",
            "webhook-id": item.alert_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(self.s.key, item.alert_id, ts, body),
            **dict(self.s.headers),
        }
        try:
            conn = self._connection()
            conn.request("POST", self._path, body=body, headers=headers)
            resp = conn.getresponse()
            reply = resp.read(MAX_REPLY + 1)
            status = resp.status
            retry_after = _retry_after(resp.getheader("Retry-After"))
            if resp.getheader("Connection", "").lower() == "close" or resp.will_close:
                self._drop_connection()
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            self._drop_connection()
            return self._failure(item, f"{self.name}: {type(exc).__name__}: {exc}", "sink")
        self.posted += 1
        if 200 <= status < 300:
            if self._failing:
                log.info("%s: delivering again", self.name)
            self._failing = False
            return Outcome(item.id, True, reply=_json_reply(reply))
        text = reply[:200].decode("utf-8", "replace").strip()
        error = f"{self.name}: HTTP {status} {text}".strip()
        if status >= 500 or status in RETRY_STATUSES:
            return self._failure(item, error, "sink", retry_after)
        log.error(
            "%s: receiver refused alert %s: HTTP %d %s", self.name, item.alert_id, status, text
        )
        return Outcome(item.id, False, error, scope="item", retry_after_s=retry_after)

    def _failure(self, item: OutboxItem, error: str, scope: str, retry_after=None) -> Outcome:
        if not self._failing or error != self.last_error:
            log.warning("%s", error)
        self._failing = True
        self.last_error = error
        return Outcome(item.id, False, error, scope=scope, retry_after_s=retry_after)

    def _connection(self) -> http.client.HTTPSConnection:
        if self._conn is None:
            self._conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.s.timeout_s, context=self._ctx
            )
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
        self._conn = None


def _json_reply(reply: bytes):
    if not reply or len(reply) > MAX_REPLY:
        return None
    try:
        return json.loads(reply)
    except (ValueError, UnicodeDecodeError):
        return None


def _retry_after(value: str | None) -> float | None:
    """``Retry-After``: delay-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
