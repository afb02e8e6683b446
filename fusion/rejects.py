"""Counting and logging of rejected input, per source and reason.

Every stage that drops input (decoders: malformed JSON, bad checksums, bad
CRCs, truncated frames; the engine: late and duplicate records) reports it
here. Each rejection is counted under (source, reason) and logged with the
source named; logging is rate-limited per key so a sensor spewing garbage
cannot flood the log, and the counts stay exact.

Sources are configured sensor ids, ``unknown`` (topics and ports no sensor
owns: the router names the real one in the detail, which the log line
carries) or ``engine``. The counts become metric series, so as a last guard
the number of distinct (source, reason) keys is capped: past ``MAX_KEYS``,
new keys are counted under (``unknown``, reason).
"""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger("rampart.rejects")

LOG_FIRST = 5  # log the first few rejections of each (source, reason) in full...
LOG_EVERY = 1000  # ...then one line every this many
MAX_KEYS = 4096
UNKNOWN = "unknown"


class RejectLedger:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def reject(
        self, source: str, reason: str, detail: str = "", exc: BaseException | None = None
    ) -> None:
        """Count one rejection; ``exc``: the exception behind an ``internal_error``,
        whose traceback goes in the (rate-limited) log line."""
        key = (source, reason)
        if key not in self.counts and len(self.counts) >= MAX_KEYS:
            detail = f"(source {source!r}) {detail}"
            key = (UNKNOWN, reason)
        self.counts[key] += 1
        n = self.counts[key]
        if n <= LOG_FIRST or n % LOG_EVERY == 0:
            log.log(
                logging.ERROR if exc is not None else logging.WARNING,
                "rejected from %s: %s%s (%d so far)",
                key[0],
                reason,
                f": {detail}" if detail else "",
                n,
                exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
            )

    def total(self, source: str | None = None, reason: str | None = None) -> int:
        return sum(
            n
            for (s, r), n in self.counts.items()
            if (source is None or s == source) and (reason is None or r == reason)
        )

    def by_source(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (s, r), n in sorted(self.counts.items()):
            out.setdefault(s, {})[r] = n
        return out
