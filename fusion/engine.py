"""The event-time engine: merges every sensor stream in data-time order.

Records arrive in receive order (``push``), each with its data time ``t_ns``.
The engine's clock is the latest receive time it has seen (``advance``); its
watermark trails the clock by the lateness window. Records wait in a heap
until the watermark passes them, then go to the detectors in (t_ns, arrival)
order, so messages that arrive out of order within the window are reordered.
A record whose data time is already behind the watermark is late: it is
counted and dropped, because the detectors have moved past that time. A
record whose data time is absurdly far ahead of its receive time is rejected
for the same reason it would otherwise hold back nothing and corrupt order.
Exact repeats (same sensor and identity: radar scan number, power frame
sequence, ...) within a bounded memory are counted and dropped.

A detector may take some record types as they arrive instead
(``takes_on_arrival``): once a record has passed the late, future and
duplicate checks it goes to that detector at once, in receive order, and
the detector's findings are decided at the record's receive time. This is
for continuous streams that arrive in order per sensor (power waveform
frames, whose sequence numbers the decoder keeps monotonic) and whose
detector aligns sensors itself, so an EMP-like impulse is alerted tens of
milliseconds after it, not a lateness window later; and for judgements
about arrival itself (rejections: an unknown or impersonating source is
known when its message comes). Everything else such a detector consumes,
and its ticks, still follow the watermark.

This is the watermark model of the Dataflow paper (Akidau et al., "The
Dataflow Model", VLDB 2015, §2.3) with a fixed heuristic watermark.

Everything depends only on the input sequence, never on the wall clock, so a
replay of the same recording yields byte-identical alerts.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence

from fusion.alerts import Alert
from fusion.config import EngineSettings
from fusion.detector import Detector
from fusion.incidents import IncidentBook
from fusion.records import Record, Rejected
from fusion.rejects import RejectLedger

NS = 1_000_000_000


class Engine:
    def __init__(
        self,
        detectors: Sequence[Detector],
        incidents: IncidentBook,
        ledger: RejectLedger,
        emit: Callable[[Alert], None],
        settings: EngineSettings = EngineSettings(),
        max_future_s: float = 30.0,
        tick_s: float = 0.1,
    ):
        self.detectors = list(detectors)
        self.incidents = incidents
        self.ledger = ledger
        self.emit = emit
        self.lateness_ns = int(settings.lateness_s * NS)
        self.max_future_ns = int(max_future_s * NS)
        self.tick_ns = max(1, int(tick_s * NS))
        self.dedup_window = settings.dedup_window
        self._heap: list[tuple[int, int, Record]] = []
        self._arrivals = 0
        self._seen: dict[str, OrderedDict] = defaultdict(OrderedDict)
        self.clock_ns: int | None = None  # latest receive time
        self.watermark_ns: int | None = None  # all records with t_ns <= this are delivered
        self._next_tick_ns: int | None = None
        self._routes: dict[type, list[Detector]] = {}
        self._arrival = [d for d in self.detectors if hasattr(d, "on_arrival")]
        # Detectors that take some record types as they arrive (``takes_on_arrival``).
        self._prompt_routes: dict[type, list[Detector]] = {}
        self.delivered = 0
        self.delivered_by_sensor: dict[str, int] = defaultdict(
            int
        )  # good records, rejections excluded
        self.on_deliver: Callable[[Record], None] | None = None  # observers (report, metrics)

    # --- input -------------------------------------------------------------------------
    def push(self, record: Record) -> None:
        """A decoded record has arrived (at ``record.t_rx_ns``)."""
        for det in self._arrival:
            # Arrival observers (clock supervision) see every record as it comes,
            # late ones included: lateness is what they may need to explain.
            for finding in det.on_arrival(record):
                self._alert(det.name, finding, record.t_rx_ns)
        if (
            self.watermark_ns is not None
            and record.t_ns < self.watermark_ns
            and not isinstance(record, Rejected)
        ):
            behind = (self.watermark_ns - record.t_ns) / 1e6
            self._refuse(record, "late", f"data time {behind:.0f} ms behind the watermark")
            return
        if record.t_ns - record.t_rx_ns > self.max_future_ns:
            ahead = (record.t_ns - record.t_rx_ns) / NS
            self._refuse(
                record, "future_timestamp", f"data time {ahead:.1f} s ahead of receive time"
            )
            return
        key = record.dedup_key()
        if key is not None:
            seen = self._seen[record.sensor]
            if key in seen:
                self._refuse(record, "duplicate", f"{key}")
                return
            seen[key] = None
            if len(seen) > self.dedup_window:
                seen.popitem(last=False)
        self._arrivals += 1
        heapq.heappush(self._heap, (record.t_ns, self._arrivals, record))
        self._hand_over(record)

    def _hand_over(self, record: Record) -> None:
        """To the detectors that take this type on arrival, decided at its receive time."""
        for det in self._prompt_route(type(record)):
            for finding in det.on_record(record):
                self._alert(det.name, finding, record.t_rx_ns)

    def _prompt_route(self, cls: type) -> list[Detector]:
        route = self._prompt_routes.get(cls)
        if route is None:
            route = [d for d in self.detectors if issubclass(cls, _prompt_types(d))]
            self._prompt_routes[cls] = route
        return route

    def _refuse(self, record: Record, reason: str, detail: str) -> None:
        """Count a refused record and tell the detectors, in order, as a Rejected record:
        replayed scans and stale timestamps are evidence (of spoofing, of a bad clock)."""
        self.ledger.reject(record.sensor, reason, detail)
        self._arrivals += 1
        rej = Rejected(record.sensor, record.t_rx_ns, record.t_rx_ns, reason, detail)
        heapq.heappush(self._heap, (rej.t_ns, self._arrivals, rej))
        self._hand_over(rej)

    def advance(self, now_ns: int) -> None:
        """The clock has reached ``now_ns`` (a receive time): deliver what the watermark passes."""
        if self.clock_ns is not None and now_ns < self.clock_ns:
            return  # clocks never go back; a recording's rows are in receive order
        self.clock_ns = now_ns
        self._release(now_ns - self.lateness_ns, now_ns)

    def finish(self) -> None:
        """End of input: deliver everything still waiting and run a last tick."""
        if self.clock_ns is None:
            return
        last = max([self.clock_ns - self.lateness_ns] + [t for t, _, _ in self._heap])
        self._release(last, self.clock_ns)
        for det in self.detectors:
            # Detectors with open judgements (a disturbance still settling) may close them.
            on_finish = getattr(det, "on_finish", None)
            if on_finish is not None:
                for finding in on_finish(self.watermark_ns):
                    self._alert(det.name, finding, self.clock_ns)
        for alert in self.incidents.flush(self.clock_ns):  # held-back updates go out now
            self.emit(alert)

    # --- delivery ----------------------------------------------------------------------
    def _release(self, watermark_ns: int, t_detect_ns: int) -> None:
        heap = self._heap
        while heap and heap[0][0] <= watermark_ns:
            t_ns, _, record = heapq.heappop(heap)
            self._tick_until(t_ns, t_detect_ns)
            self._deliver(record, t_detect_ns)
        if self.watermark_ns is None or watermark_ns > self.watermark_ns:
            self.watermark_ns = watermark_ns
        self._tick_until(self.watermark_ns, t_detect_ns)

    def _tick_until(self, t_ns: int, t_detect_ns: int) -> None:
        """Run detector ticks on a fixed grid of data time up to ``t_ns``."""
        if self._next_tick_ns is None:
            self._next_tick_ns = (t_ns // self.tick_ns + 1) * self.tick_ns
            return
        if t_ns < self._next_tick_ns:
            return
        # Ticks on an empty stretch collapse into one at its end: detectors see
        # the same watermark either way, and a long gap costs one call, not millions.
        tick = (t_ns // self.tick_ns) * self.tick_ns
        self._next_tick_ns = tick + self.tick_ns
        for det in self.detectors:
            try:
                findings = det.on_tick(tick)
            except Exception as exc:  # one detector's bug must not silence the others
                self._detector_failed(det, "tick", exc)
                continue
            for finding in findings:
                self._alert(det.name, finding, t_detect_ns)
        # Held-back updates, storm and correlation closes go out in quiet stretches too.
        for alert in self.incidents.on_tick(t_detect_ns):
            self.emit(alert)

    def _deliver(self, record: Record, t_detect_ns: int) -> None:
        self.delivered += 1
        if not isinstance(record, Rejected):
            self.delivered_by_sensor[record.sensor] += 1
        if self.on_deliver is not None:
            self.on_deliver(record)
        cls = type(record)
        route = self._routes.get(cls)
        if route is None:
            route = [
                d
                for d in self.detectors
                if issubclass(cls, d.consumes) and not issubclass(cls, _prompt_types(d))
            ]
            self._routes[cls] = route
        for det in route:
            try:
                findings = det.on_record(record)
            except Exception as exc:  # the record still reaches every other detector
                self._detector_failed(det, f"{type(record).__name__} from {record.sensor}", exc)
                continue
            for finding in findings:
                self._alert(det.name, finding, t_detect_ns)

    def _detector_failed(self, det: Detector, what: str, exc: Exception) -> None:
        """Counted as ``internal_error`` under the source ``engine``, with the traceback in
        the (rate-limited) log, so a crafted record that trips one detector is seen."""
        name = getattr(det, "name", type(det).__name__)
        self.ledger.reject(
            "engine", "internal_error", f"detector {name} on {what}: {exc!r}", exc=exc
        )

    def _alert(self, detector: str, finding, t_detect_ns: int) -> None:
        for alert in self.incidents.apply(detector, finding, t_detect_ns):
            self.emit(alert)

    @property
    def pending(self) -> int:
        return len(self._heap)


def _prompt_types(det: Detector) -> tuple[type, ...]:
    return getattr(det, "takes_on_arrival", ())
