"""The JSON-lines file sink: one alert object per line, confirmed once it is on disk.

Lines are the alert's canonical JSON exactly as committed to the outbox (the
contract §4 object), appended; a batch is confirmed after ``flush`` and, with
``fsync`` (the default), ``os.fsync``, so a confirmed alert survives a power
cut. After a crash the file may hold an alert twice (written, not yet
confirmed): readers drop repeats by ``alert_id``. A partial last line left by
a crash is completed with a newline before the next write, so every later
line stays parseable.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from drivers.sinks.base import OutboxItem, Outcome

log = logging.getLogger("rampart.sinks.jsonl")


class JsonlFileSink:
    def __init__(
        self, path: str | Path, name: str | None = None, fsync: bool = True, batch: int = 256
    ):
        self.path = Path(path)
        self.name = name or f"jsonl:{self.path}"
        self.fsync = fsync
        self.batch = batch
        self._f = None
        self._written: list[int] = []
        self._failed: list[Outcome] = []

    def _open(self):
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "ab+")  # noqa: SIM115 - lives as long as the sink
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")  # a crash cut the last line short
            self._f = f
        return self._f

    def room(self) -> int:
        return max(0, self.batch - len(self._written))

    def offer(self, item: OutboxItem) -> None:
        try:
            self._open().write(item.body + b"\n")
            self._written.append(item.id)
        except OSError as exc:
            # What this handle buffered is in doubt too: all of it is sent again.
            ids, self._written = [*self._written, item.id], []
            self._failed += [Outcome(i, False, f"{self.path}: {exc}") for i in ids]
            self._reset()

    def poll(self, timeout_s: float) -> list[Outcome]:
        out, self._failed = self._failed, []
        if not self._written:
            return out
        ids, self._written = self._written, []
        try:
            f = self._open()
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        except OSError as exc:
            self._reset()
            return out + [Outcome(i, False, f"{self.path}: {exc}") for i in ids]
        return out + [Outcome(i, True) for i in ids]

    def _reset(self) -> None:
        if self._f is not None:
            with contextlib.suppress(OSError):
                self._f.close()
            self._f = None

    def close(self) -> None:
        self._reset()
