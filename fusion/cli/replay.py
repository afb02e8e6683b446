"""``rampart replay``: a recording through the full pipeline, decoders included."""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from drivers.recording import RecordingReader
from fusion.alerts import SEVERITIES, Alert
from fusion.cli.pipeline import Pipeline
from fusion.config import SiteConfig
from fusion.detector import TRACKS_SCHEMA


@dataclass
class ReplayResult:
    pipeline: Pipeline
    wall_s: float
    span_ns: tuple[int, int]

    @property
    def speed(self) -> float:
        return (self.span_ns[1] - self.span_ns[0]) / 1e9 / max(self.wall_s, 1e-9)


class _Progress:
    """A one-line progress bar on a terminal; silent when stderr is not one."""

    def __init__(self, total: int, enabled: bool):
        self.total = max(total, 1)
        self.enabled = enabled
        self._last = 0.0

    def update(self, done: int, alerts: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.2:
            return
        self._last = now
        frac = min(done / self.total, 1.0)
        bar = "#" * int(frac * 30)
        sys.stderr.write(
            f"\r[{bar:<30}] {frac * 100:5.1f}%  {done}/{self.total} messages  {alerts} alerts"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 79 + "\r")
            sys.stderr.flush()


def replay(
    rec_dir: Path,
    site: SiteConfig,
    sinks: list,
    speed: float | None = None,
    keep_activity: bool = False,
    progress: bool | None = None,
    on_alert=None,
    detectors: list | None = None,
) -> ReplayResult:
    """Replays ``rec_dir`` with ``site``'s settings; ``speed`` None means as fast as possible."""
    reader = RecordingReader(rec_dir)

    def emit(alert: Alert) -> None:
        for sink in sinks:
            sink.send(alert)
        if on_alert is not None:
            on_alert(alert)

    pipe = Pipeline(site, emit, keep_activity=keep_activity, detectors=detectors)
    total = reader.row_count()
    if progress is None:
        progress = sys.stderr.isatty() and total > 20_000
    bar = _Progress(total, progress)
    span = [None, None]
    wall0 = time.perf_counter()
    for i, msg in enumerate(reader.messages()):
        if span[0] is None:
            span[0] = msg.t_rx_ns
        span[1] = msg.t_rx_ns
        if speed:
            # Pace by receive time; a late replay catches up rather than drifting.
            due = wall0 + (msg.t_rx_ns - span[0]) / 1e9 / speed
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(min(delay, 60.0))
        pipe.receive(msg.t_rx_ns, msg.transport, msg.channel, msg.payload)
        if i % 2048 == 0:
            bar.update(i, len(pipe.alerts))
    pipe.finish()
    bar.close()
    wall = time.perf_counter() - wall0
    return ReplayResult(pipe, wall, (span[0] or 0, span[1] or 0))


def write_tracks(path: Path, result: ReplayResult) -> int:
    """The confirmed tracks of every detector that keeps them (``tracks_frame()``), as Parquet.

    Without a tracking detector the file has the contract's columns and no rows,
    so downstream tools still run. Returns the number of rows written.
    """
    frames = [d.tracks_frame() for d in result.pipeline.detectors if hasattr(d, "tracks_frame")]
    frames = [f.select(list(TRACKS_SCHEMA)).cast(TRACKS_SCHEMA) for f in frames if f.height]
    df = (
        pl.concat(frames).sort("t_ns", "track_id") if frames else pl.DataFrame(schema=TRACKS_SCHEMA)
    )
    df.write_parquet(path)
    return df.height


def summary_table(result: ReplayResult) -> str:
    """The end-of-replay summary: per sensor traffic and rejects, alerts by kind."""
    pipe = result.pipeline
    lines = []
    span_s = (result.span_ns[1] - result.span_ns[0]) / 1e9
    lines.append(
        f"replayed {pipe.messages} messages ({pipe.bytes / 1e6:.1f} MB, {span_s:.1f} s of data) "
        f"in {result.wall_s:.2f} s: {result.speed:.0f}x real time"
    )
    rejects = pipe.ledger.by_source()
    sensors = [s.id for s in pipe.site.sensors]
    extra = sorted(set(rejects) - set(sensors))
    lines.append("")
    lines.append(f"{'sensor':<28} {'records':>9} {'rejected':>9}  reasons")
    for sid in sensors + extra:
        rej = rejects.get(sid, {})
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(rej.items()))
        lines.append(
            f"{sid:<28} {pipe.engine.delivered_by_sensor.get(sid, 0):>9} {sum(rej.values()):>9}  {reasons}"
        )
    if pipe.router.ignored:
        ignored = ", ".join(f"{c} {n}" for c, n in sorted(pipe.router.ignored.items()))
        lines.append(f"ignored streams: {ignored}")
    lines.append("")
    # Each incident at its worst: a drone_detected contact that became a critical
    # drone_approach counts as that, not as what it opened as.
    by_kind: Counter[tuple[str, str]] = Counter()
    worst: dict[str, Alert] = {}
    for a in pipe.alerts:
        w = worst.get(a.incident_id)
        if w is None or _RANK[a.severity] >= _RANK[w.severity]:
            worst[a.incident_id] = a
    for a in worst.values():
        by_kind[(a.kind, a.severity)] += 1
    lines.append(f"{len(pipe.alerts)} alerts in {len(worst)} incidents (each at its most severe)")
    for (kind, sev), n in sorted(by_kind.items()):
        lines.append(f"  {kind:<22} {sev:<9} {n:>4} incidents")
    return "\n".join(lines)


_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def format_alert(a: Alert) -> str:
    t = time.strftime("%H:%M:%S", time.gmtime(a.t_detect_ns // 1_000_000_000))
    ms = (a.t_detect_ns // 1_000_000) % 1000
    return f"{t}.{ms:03d}Z  {a.severity:<8} {a.state:<6} {a.kind:<18} {a.summary}"
