"""The live service's intake: bounded per-sensor queues between the wires and the engine.

Every receiving thread (the MQTT client's, one per serial port) puts what it
receives here, stamped with its receive time; the engine's single thread takes
it out. Each source has its own bounded queue, and the taker serves the
sources round-robin, so one sensor flooding at ten times its rate fills (and
overflows) only its own queue: the others keep flowing. An overflowing queue
drops its oldest message and counts it under the source, because for a live
picture the newest data matters most.

Sources are sensor ids (the MQTT thread resolves a topic to its sensor), or
``unknown`` for topics no sensor owns, so queues and their metric series stay
as many as the sensors. Each queue is bounded in messages and in payload
bytes (``max_bytes``, ``[limits] max_queue_bytes``); a payload over
``[limits] max_payload_bytes`` is never queued at all: the receiving thread
puts a marker holding only its size, and the engine thread rejects it.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Received:
    t_rx_ns: int
    transport: str
    channel: str
    payload: bytes
    size: int | None = None  # the length on the wire, when the payload was dropped as oversized


class Intake:
    def __init__(self, per_source: int = 2000, max_sources: int = 256, max_bytes: int = 64 << 20):
        self.per_source = per_source
        self.max_sources = max_sources
        self.max_bytes = max_bytes  # payload bytes waiting per source
        self._queues: OrderedDict[str, deque[Received]] = OrderedDict()
        self._bytes: Counter[str] = Counter()
        self._cond = threading.Condition()
        self.dropped: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self._size = 0

    def put(self, source: str, item: Received) -> None:
        """Never blocks: a receiving thread must not stall its socket or port."""
        with self._cond:
            q = self._queues.get(source)
            if q is None:
                if len(self._queues) >= self.max_sources:
                    # A flood of made-up topics must not grow memory: fold them into one queue.
                    source = "(other)"
                    q = self._queues.get(source)
                if q is None:
                    q = self._queues[source] = deque()
            n = len(item.payload)
            while q and (len(q) >= self.per_source or self._bytes[source] + n > self.max_bytes):
                self._bytes[source] -= len(q.popleft().payload)
                self.dropped[source] += 1
                self._size -= 1
            q.append(item)
            self._bytes[source] += n
            self.received[source] += 1
            self._size += 1
            self._cond.notify()

    def take(self, max_items: int, timeout_s: float) -> list[Received]:
        """Up to ``max_items``, round-robin over the sources; waits up to ``timeout_s`` for the first."""
        with self._cond:
            if self._size == 0:
                self._cond.wait(timeout_s)
            out: list[Received] = []
            while self._size and len(out) < max_items:
                for source, q in self._queues.items():
                    if q:
                        item = q.popleft()
                        out.append(item)
                        self._bytes[source] -= len(item.payload)
                        self._size -= 1
                        if len(out) >= max_items:
                            break
            return out

    def depth(self) -> dict[str, int]:
        with self._cond:
            return {s: len(q) for s, q in self._queues.items()}

    @property
    def size(self) -> int:
        return self._size
