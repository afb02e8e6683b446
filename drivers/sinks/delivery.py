"""Delivery: drains the outbox to every sink, each at its own pace, with back-off.

``DeliveryService.send(alert)`` commits the alert to the outbox (that is the
only thing the pipeline waits for) and wakes one worker thread per sink. A
worker offers its sink the alerts waiting for it, oldest first, as long as
the sink has room, and records each outcome: a confirmation removes the alert
for that sink; a failure leaves it in the outbox with a retry time.

Back-off is exponential with full jitter (Brooker, "Exponential Backoff and
Jitter", AWS Architecture Blog, 2015): after the n-th consecutive failure a
sink waits a uniform random time in [retry_min_s, min(retry_max_s,
retry_min_s · 2^n)], or what the far end asked for (``Retry-After``). A
failure of the destination ("sink" scope) pauses the whole sink; the refusal
of one alert ("item" scope) delays only that alert.

A monitor raises the delivery layer's own alert, ``delivery_backlog``, for a
sink whose oldest undelivered alert has waited more than ``backlog_alert_s``,
or when the full outbox evicted alerts; it updates while the backlog lasts
and closes when the sink has caught up. It is ``high`` when a high or critical
alert is among the waiting ones or alerts were evicted, else ``medium``. It
goes through the outbox to every sink like any alert, so the SOC hears of a
broken path through the others, and ``on_own_alert`` (the service's audit log)
is told of it first, as the pipeline's alerts are recorded before any send. Its times are wall-clock times: it is about
this process, not about the recorded data, and a replay's own alert output
never contains it.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drivers.sinks.acks import ack_from_webhook_reply
from drivers.sinks.base import OutboxItem, Sink
from drivers.sinks.outbox import Outbox
from fusion.alerts import Alert
from fusion.detector import Finding
from fusion.incidents import Acknowledgement, IncidentBook, IncidentSettings

log = logging.getLogger("rampart.delivery")
NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    min_s: float = 0.5
    max_s: float = 10.0

    def delay(self, failures: int, asked_s: float | None = None) -> float:
        if asked_s is not None:
            return min(max(asked_s, self.min_s), max(self.max_s, asked_s))
        cap = min(self.max_s, self.min_s * 2.0 ** min(failures, 30))
        return random.uniform(self.min_s, max(self.min_s, cap))


@dataclass
class SinkStatus:
    """Counters of one sink's worker, for health and metrics."""

    name: str
    confirmed: int = 0
    failed: int = 0
    consecutive_failures: int = 0
    paused_until: float = 0.0  # monotonic
    last_error: str = ""
    last_confirm_ns: int = 0


class _Worker(threading.Thread):
    def __init__(self, service: DeliveryService, sink: Sink, retry: RetryPolicy):
        super().__init__(name=f"deliver-{sink.name}", daemon=True)
        self.service = service
        self.sink = sink
        self.retry = retry
        self.wake = threading.Event()
        self.status = SinkStatus(sink.name)
        self.inflight: dict[int, OutboxItem] = {}

    def run(self) -> None:
        svc = self.service
        try:
            while not svc._stop.is_set():
                self._step()
        except Exception:  # a bug in a sink must not die silently: the backlog alert will show it
            if not svc._stop.is_set():  # (at shutdown the outbox may close under a slow send)
                log.exception("%s: delivery worker crashed", self.sink.name)
                self.status.last_error = "delivery worker crashed (see log)"

    def _step(self) -> None:
        svc, st, sink = self.service, self.status, self.sink
        now = time.monotonic()
        if now >= st.paused_until:
            room = sink.room()
            if room > 0:
                for item in svc.outbox.due(sink.name, room, exclude=self.inflight):
                    self.inflight[item.id] = item
                    sink.offer(item)
        outcomes = sink.poll(0.05 if self.inflight else 0.0)
        if not outcomes:
            if not self.inflight:
                wait = 0.5 if now >= st.paused_until else min(0.5, st.paused_until - now)
                self.wake.wait(wait)
                self.wake.clear()
            return
        ok = [o for o in outcomes if o.ok]
        bad = [o for o in outcomes if not o.ok]
        if ok:
            svc.outbox.confirm(sink.name, [o.item_id for o in ok])
            st.confirmed += len(ok)
            st.consecutive_failures = 0
            st.last_confirm_ns = time.time_ns()
            for o in ok:
                item = self.inflight.pop(o.item_id, None)
                if o.reply is not None and item is not None:
                    svc._webhook_reply(item, o.reply)
        if bad:
            st.failed += len(bad)
            st.last_error = bad[-1].error
            sink_wide = [o for o in bad if o.scope == "sink"]
            if sink_wide:
                st.consecutive_failures += 1
                asked = max((o.retry_after_s or 0.0) for o in sink_wide) or None
                pause = self.retry.delay(st.consecutive_failures, asked)
                st.paused_until = time.monotonic() + pause
                until = time.time_ns() + int(pause * NS)
                svc.outbox.defer(sink.name, [o.item_id for o in sink_wide], until, st.last_error)
            for o in bad:
                item = self.inflight.pop(o.item_id, None)
                if o.scope == "sink":
                    continue
                attempts = (item.attempts if item else 0) + 1
                pause = self.retry.delay(attempts, o.retry_after_s)
                svc.outbox.defer(sink.name, [o.item_id], time.time_ns() + int(pause * NS), o.error)


class DeliveryService:
    """The outbox and its sink workers; ``send`` is what the pipeline calls."""

    def __init__(
        self,
        outbox: Outbox,
        sinks: Sequence[Sink],
        site_id: str,
        retry: dict[str, RetryPolicy] | None = None,
        backlog_alert_s: float = 30.0,
        on_ack: Callable[[Acknowledgement], None] | None = None,
        monitor_s: float | None = 1.0,
        on_own_alert: Callable[[Alert], None] | None = None,
    ):
        if tuple(s.name for s in sinks) != outbox.sinks:
            raise ValueError("the outbox must be opened for exactly these sinks, in order")
        self.outbox = outbox
        self.sinks = list(sinks)
        self.site_id = site_id
        self.backlog_alert_s = backlog_alert_s
        self.ack_listeners: list[Callable[[Acknowledgement], None]] = [on_ack] if on_ack else []
        # Told of every alert this layer raises itself (delivery_backlog) before it is sent:
        # the service records them in its audit log, as it does the pipeline's alerts.
        self.on_own_alert = on_own_alert
        self._stop = threading.Event()
        retry = retry or {}
        self._workers = [_Worker(self, s, retry.get(s.name, RetryPolicy())) for s in sinks]
        self._book = IncidentBook(
            site_id, IncidentSettings(update_interval_s=30.0, storm_threshold=0)
        )
        self._backlog_open: dict[str, int] = {}  # sink -> wall time the backlog began
        self._evictions_seen = outbox.evictions()
        self.monitor_s = monitor_s  # None: no monitor thread (call check_backlog yourself)
        self._monitor = threading.Thread(target=self._watch, name="delivery-monitor", daemon=True)
        self._started = False
        self.sent = 0
        self.undelivered: dict[str, int] = {}  # per sink, set by close()

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> DeliveryService:
        if not self._started:
            self._started = True
            for w in self._workers:
                w.start()
            if self.monitor_s is not None:
                self._monitor.start()
        return self

    def send(self, alert: Alert) -> None:
        """Commits ``alert`` to the outbox, then wakes the workers. Never waits for a sink."""
        self.outbox.put(alert)
        self.sent += 1
        for w in self._workers:
            w.wake.set()

    def drain(self, timeout_s: float) -> bool:
        """Waits (bounded) until every sink confirmed everything. True when nothing is left."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.outbox.pending() == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            for w in self._workers:
                w.wake.set()
            time.sleep(0.05)

    def close(self, drain_timeout_s: float = 0.0) -> bool:
        """Drains (bounded), stops the workers and closes sinks and outbox. True: all delivered."""
        drained = self.drain(drain_timeout_s) if self._started else self.outbox.pending() == 0
        self.undelivered = {s.name: self.outbox.pending(s.name) for s in self.sinks}
        self._stop.set()
        for w in self._workers:
            w.wake.set()
        for w in self._workers:
            if w.is_alive():
                w.join(timeout=5.0)
        if self._monitor.is_alive():
            self._monitor.join(timeout=5.0)
        for s in self.sinks:
            try:
                s.close()
            except Exception:
                log.exception("%s: error while closing", s.name)
        self.outbox.close()
        return drained

    def status(self) -> list[SinkStatus]:
        return [w.status for w in self._workers]

    # --- acknowledgements ----------------------------------------------------------------
    def acknowledge(self, ack: Acknowledgement, reply: str | None = None) -> None:
        """An acknowledgement from the SOC: kept in the outbox database, passed to listeners."""
        self.outbox.record_ack(ack, reply)
        for listener in self.ack_listeners:
            try:
                listener(ack)
            except Exception:
                log.exception("acknowledgement listener failed")

    def _webhook_reply(self, item: OutboxItem, reply) -> None:
        ack = ack_from_webhook_reply(reply, item.incident_id, item.alert_id, time.time_ns())
        if ack is not None:
            self.acknowledge(ack, json.dumps(reply)[:1024])

    # --- backlog alert -------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(self.monitor_s):
            try:
                self.check_backlog()
            except Exception:
                log.exception("backlog check failed")

    def check_backlog(self, now_ns: int | None = None) -> list[Alert]:
        """Raises, updates or closes ``delivery_backlog`` incidents; returns what it sent."""
        now = time.time_ns() if now_ns is None else now_ns
        evictions = self.outbox.evictions()
        sent: list[Alert] = []
        for sink in self.sinks:
            b = self.outbox.backlog(sink.name)
            new_ev = _diff(evictions.get(sink.name, {}), self._evictions_seen.get(sink.name, {}))
            age_s = (now - b.oldest_enqueued_ns) / NS if b.oldest_enqueued_ns else 0.0
            late = age_s >= self.backlog_alert_s
            findings: list[Finding] = []
            if sink.name not in self._backlog_open:
                if late or new_ev:
                    self._backlog_open[sink.name] = now
                    findings.append(self._finding(sink.name, "open", b, age_s, evictions, now))
            elif b.pending == 0 or (age_s < self.backlog_alert_s / 2 and not new_ev):
                findings.append(self._finding(sink.name, "closed", b, age_s, evictions, now))
                del self._backlog_open[sink.name]
            else:
                findings.append(self._finding(sink.name, "update", b, age_s, evictions, now))
            for f in findings:
                for alert in self._book.apply("delivery", f, now):
                    if alert.state == "open":
                        log.error("%s", alert.summary)
                    self._own(alert)
                    self.send(alert)
                    sent.append(alert)
        self._evictions_seen = evictions
        return sent

    def _own(self, alert: Alert) -> None:
        if self.on_own_alert is None:
            return
        try:
            self.on_own_alert(alert)
        except Exception:  # the alert still goes out; the failure is the log's problem
            log.exception("recording %s %s (own alert) failed", alert.kind, alert.alert_id)

    def _finding(self, sink: str, state: str, b, age_s: float, evictions, now: int) -> Finding:
        ev = evictions.get(sink, {})
        high_waiting = b.oldest_high_enqueued_ns is not None and (
            now - b.oldest_high_enqueued_ns >= self.backlog_alert_s * NS
        )
        severity = "high" if (ev or high_waiting) else "medium"
        began = self._backlog_open.get(sink, now)
        if state == "closed":
            summary = f"Delivery to {sink} caught up after {(now - began) / NS:.0f} s"
        else:
            summary = (
                f"Delivery to {sink} backlogged: {b.pending} alerts waiting, "
                f"oldest {age_s:.0f} s"
                + (f", {sum(ev.values())} evicted" if ev else "")
                + (f" (last error: {b.last_error})" if b.last_error else "")
            )
        return Finding(
            key=sink,
            state=state,
            kind="delivery_backlog",
            severity=severity,
            confidence=1.0,
            sensors=(),
            t_event_ns=began,
            summary=summary,
            details={
                "sink": sink,
                "pending": b.pending,
                # rounded so that an unchanged backlog is an exact repeat (not re-sent)
                "oldest_age_s": round(age_s, -1) if age_s >= 10 else round(age_s),
                "max_attempts": b.max_attempts,
                "last_error": b.last_error,
                "evicted": dict(sorted(ev.items())),
                "outbox_alerts": self.outbox.alerts,
                "outbox_bytes": self.outbox.bytes,
            },
        )


def _diff(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in now.items() if v > before.get(k, 0)}
