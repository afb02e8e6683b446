"""The composition root: wires decoders (drivers) to the engine and detectors (core).

Wire bytes -> Router/decoders -> records -> Engine (data-time order) ->
detectors -> findings -> IncidentBook -> alerts -> sinks. ``Pipeline.receive``
is the single entry for every received message, whether it comes from a
recording (replay) or a live connection (service), so both see the same path.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from drivers.router import Router
from fusion.alerts import Alert
from fusion.config import SiteConfig
from fusion.detector import Detector
from fusion.detectors import build_detectors
from fusion.engine import Engine
from fusion.incidents import IncidentBook
from fusion.records import Record, Rejected
from fusion.rejects import RejectLedger

FINISH_ATTEMPTS = 100


@dataclass
class ActivityLog:
    """Per-record activity for the report: (data time, sensor, decoded ok)."""

    t_ns: list[int] = field(default_factory=list)
    sensor: list[str] = field(default_factory=list)
    ok: list[bool] = field(default_factory=list)

    def add(self, record: Record) -> None:
        self.t_ns.append(record.t_ns)
        self.sensor.append(record.sensor)
        self.ok.append(not isinstance(record, Rejected))


class Pipeline:
    def __init__(
        self,
        site: SiteConfig,
        emit: Callable[[Alert], None],
        keep_activity: bool = False,
        parse_all_gnss: bool = False,
        detectors: list[Detector] | None = None,
        keep_history: bool = True,
    ):
        """``keep_history``: keep every alert (``alerts``) and let detectors keep what a
        replay's report and ``--tracks-out`` show (tracks, plots). A service running for
        months passes False: its alerts are in the outbox and the audit log."""
        self.site = site
        self.ledger = RejectLedger()
        self.detectors = build_detectors(site) if detectors is None else list(detectors)
        # GNSS messages are parsed only for the identities some detector reads
        # (Detector.gnss_identities); parsing is most of GNSS decoding's cost.
        wanted = frozenset().union(
            *(getattr(d, "gnss_identities", frozenset()) for d in self.detectors)
        )
        self.router = Router(site, gnss_parse=None if parse_all_gnss else wanted)
        self.incidents = IncidentBook.for_site(site)
        self.alerts: list[Alert] = []

        self.config_sha256 = hashlib.sha256(site.text.encode("utf-8")).hexdigest()

        def _emit(alert: Alert) -> None:
            if not alert.config_sha256:
                alert = msgspec.structs.replace(alert, config_sha256=self.config_sha256)
            if keep_history:
                self.alerts.append(alert)
            emit(alert)

        self._emit = _emit
        if not keep_history:
            for det in self.detectors:
                if hasattr(det, "keep_history"):
                    det.keep_history = False
        self.engine = Engine(self.detectors, self.incidents, self.ledger, _emit, site.engine)
        self.activity = ActivityLog() if keep_activity else None
        if self.activity is not None:
            self.engine.on_deliver = self.activity.add
        self.messages = 0
        self.bytes = 0
        self.messages_by_channel: Counter[str] = Counter()
        self.decode_s = 0.0
        self.engine_s = 0.0

    def raise_finding(self, source: str, finding, t_detect_ns: int) -> None:
        """A finding from outside the detectors (the service itself: configuration,
        audit heads) through the same incident bookkeeping and sinks."""
        out = self.incidents.apply(source, finding, t_detect_ns)
        for alert in out if isinstance(out, list) else [out] if out is not None else []:
            self._emit(alert)

    def receive(
        self, t_rx_ns: int, transport: str, channel: str, payload: bytes, size: int | None = None
    ) -> None:
        """One received message: decode, hand its records to the engine, advance the clock.

        Never raises because of a message: the router guards the decoders, and an
        exception in the engine or a detector while handling this message's records
        is logged with its traceback and counted (``internal_error`` under the
        record's sensor, or ``engine`` for the clock step); the next message goes on.
        ``size``: the payload's length on the wire when the service's intake has
        already dropped its bytes for being over ``[limits] max_payload_bytes``.
        """
        self.messages += 1
        self.bytes += len(payload) if size is None else size
        t0 = time.perf_counter()
        try:
            records = self.router.decode(t_rx_ns, transport, channel, payload, size)
        except Exception as exc:  # the router itself (its guards are around the decoders)
            records = []
            self.internal_error(
                self.router.source_of(transport, channel), f"routing {channel!r}", exc, t_rx_ns
            )
        t1 = time.perf_counter()
        for rec in records:
            self._push(rec)
        self.advance(t_rx_ns)
        t2 = time.perf_counter()
        self.decode_s += t1 - t0
        self.engine_s += t2 - t1

    def _push(self, rec: Record) -> None:
        if isinstance(rec, Rejected):
            self.ledger.reject(rec.sensor, rec.reason, rec.detail)
        try:
            self.engine.push(rec)
        except Exception as exc:
            self.internal_error(rec.sensor, f"engine, {type(rec).__name__}", exc, rec.t_rx_ns)

    def advance(self, now_ns: int) -> None:
        """The engine's clock step (detector ticks, releases), guarded like ``receive``."""
        try:
            self.engine.advance(now_ns)
        except Exception as exc:
            self.internal_error("engine", "engine, clock step", exc, now_ns)

    def internal_error(self, source: str, where: str, exc: Exception, t_rx_ns: int) -> None:
        """An exception while handling input: counted and logged (traceback, rate-limited)
        as ``internal_error`` under ``source``; integrity sees it as a rejection."""
        detail = f"{where}: {type(exc).__name__}: {str(exc)[:200]}"
        self.ledger.reject(source, "internal_error", detail, exc=exc)
        if source == "engine":
            return  # not a sensor's input: nothing for integrity to judge
        # If the engine is what failed, this may fail too: the count and log line stand.
        with contextlib.suppress(Exception):
            self.engine.push(Rejected(source, t_rx_ns, t_rx_ns, "internal_error", detail))

    def finish(self) -> None:
        """End of input: flush the decoders' unfinished frames, then drain the engine."""
        if self.engine.clock_ns is not None:
            for rec in self.router.flush(self.engine.clock_ns):
                self._push(rec)
        # A detector raising mid-drain leaves the rest waiting: go on draining (bounded).
        for _ in range(FINISH_ATTEMPTS):
            try:
                self.engine.finish()
                break
            except Exception as exc:
                self.internal_error("engine", "engine, finish", exc, self.engine.clock_ns or 0)
