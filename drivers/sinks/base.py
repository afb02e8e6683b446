"""What every SOC sink shares: the item it is handed, what it answers, TLS set-up.

A sink is driven by one delivery worker thread (``drivers.sinks.delivery``):
the worker ``offer``s it outbox items while it has ``room``, and ``poll``s it
for outcomes. A sink answers every offered item exactly once, eventually:
``confirmed`` only when the far end has acknowledged it in the protocol's own
way (MQTT PUBACK, HTTP 2xx, the syslog receiver's TCP acknowledgement, an
fsync), else ``failed``. Nothing is dropped here: a failed item stays in the
outbox and is offered again after a back-off.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fusion.alerts import Alert, decode_alert


@dataclass(slots=True)
class OutboxItem:
    """One alert waiting for one sink."""

    id: int  # outbox order
    alert_id: str
    incident_id: str
    severity: str
    body: bytes  # the alert's canonical JSON (contract §4), exactly as committed
    attempts: int = 0
    _alert: Alert | None = field(default=None, repr=False)

    @property
    def alert(self) -> Alert:
        if self._alert is None:
            self._alert = decode_alert(self.body)
        return self._alert


@dataclass(frozen=True, slots=True)
class Outcome:
    item_id: int
    ok: bool
    error: str = ""
    # "sink": the destination is unreachable or failing (back off the whole sink);
    # "item": this one item was refused (back off the item, keep sending the others).
    scope: str = "sink"
    retry_after_s: float | None = None  # the far end said when to retry (HTTP Retry-After)
    reply: Any = None  # what the far end answered, when it says something (webhook JSON)


class Sink(Protocol):
    name: str  # stable: the outbox keys pending deliveries by it

    def room(self) -> int:
        """How many more items it takes now (0: wait for outcomes)."""
        ...

    def offer(self, item: OutboxItem) -> None:
        """Start delivering ``item``; its outcome comes from a later ``poll``."""
        ...

    def poll(self, timeout_s: float) -> list[Outcome]:
        """Outcomes that became known; waits at most ``timeout_s`` for the first."""
        ...

    def close(self) -> None: ...


class SinkConfigError(ValueError):
    """A sink specification that cannot be used; ``problems`` name the keys."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def client_tls_context(
    ca_file: Path | None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    verify_hostname: bool = True,
) -> ssl.SSLContext:
    """A TLS client context: server verified against ``ca_file`` (else the system store),
    optionally presenting a client certificate. TLS 1.2 is the floor (RFC 5425 §4.2
    asks for at least 1.2 in its update, RFC 9662)."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = verify_hostname
    if cert_file is not None:
        ctx.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    return ctx
