"""The JSON-lines alert sink: one alert object per line, appended and flushed per alert."""

from __future__ import annotations

import os
from pathlib import Path

from fusion.alerts import Alert, encode_alert


class JsonlSink:
    def __init__(self, path: str | Path, fsync: bool = False, append: bool = False):
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "ab" if append else "wb")  # noqa: SIM115 - lives as long as the sink
        self._fsync = fsync
        self.written = 0

    def send(self, alert: Alert) -> None:
        self._f.write(encode_alert(alert) + b"\n")
        self._f.flush()
        if self._fsync:
            os.fsync(self._f.fileno())
        self.written += 1

    def close(self) -> None:
        self._f.close()
