"""Counting and logging of rejected input, per source and reason.

Every stage that drops input (decoders: malformed JSON, bad checksums, bad
CRCs, truncated frames; the engine: late and duplicate records) reports it
here. Each rejection is counted under (source, reason) and logged with the
source named; logging is rate-limited per key so a sensor spewing garbage
cannot flood the log, and the counts stay exact.
"""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger("rampart.rejects")

LOG_FIRST = 5  # log the first few rejections of each (source, reason) in full...
LOG_EVERY = 1000  # ...then one line every this many


class RejectLedger:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def reject(self, source: str, reason: str, detail: str = "") -> None:
        key = (source, reason)
        self.counts[key] += 1
        n = self.counts[key]
        if n <= LOG_FIRST or n % LOG_EVERY == 0:
            log.warning(
                "rejected from %s: %s%s (%d so far)",
                source,
                reason,
                f": {detail}" if detail else "",
                n,
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
