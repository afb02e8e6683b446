"""Recordings (contract §3): a directory that replays a site exactly as it was received.

``RecordingWriter`` appends received messages and rotates Parquet segments
(``feeds/seg-NNNN.parquet``) by row count or payload bytes; ``RecordingReader``
streams them back in receive order, one segment at a time, so an hour of
12.8 kS/s waveforms never has to fit in memory at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

log = logging.getLogger("rampart.recording")

FEED_SCHEMA = {"t_rx_ns": pl.Int64, "transport": pl.Utf8, "channel": pl.Utf8, "payload": pl.Binary}
TRUTH_SCHEMA = {
    "object_id": pl.Utf8,
    "kind": pl.Utf8,
    "t_start_ns": pl.Int64,
    "t_end_ns": pl.Int64,
    "must_alert": pl.Boolean,
    "deadline_ns": pl.Int64,
}
TRUTH_TRACKS_SCHEMA = {
    "t_ns": pl.Int64,
    "object_id": pl.Utf8,
    "class": pl.Utf8,
    "x_m": pl.Float64,
    "y_m": pl.Float64,
    "z_m": pl.Float64,
}


class RecordingError(Exception):
    """A directory that is not a readable recording; the message names what and where."""


@dataclass(frozen=True, slots=True)
class FeedMessage:
    t_rx_ns: int
    transport: str
    channel: str
    payload: bytes


class RecordingWriter:
    """Writes a recording directory.

    Rows must be appended in ``t_rx_ns`` order (a live capture is); a row that
    goes back in time is written with its time clamped to the previous one and
    a warning, so that the file still honours the contract's ordering.
    """

    def __init__(
        self,
        out_dir: str | Path,
        site_toml: str,
        rotate_rows: int = 200_000,
        rotate_bytes: int = 256 * 1024 * 1024,
        compression: str = "zstd",
    ):
        self.dir = Path(out_dir)
        (self.dir / "feeds").mkdir(parents=True, exist_ok=True)
        (self.dir / "site.toml").write_text(site_toml, encoding="utf-8")
        self.rotate_rows = rotate_rows
        self.rotate_bytes = rotate_bytes
        self.compression = compression
        self._segment = 0
        self._cols: dict[str, list] = {k: [] for k in FEED_SCHEMA}
        self._bytes = 0
        self._last_t = None
        self.rows_written = 0

    def append(self, t_rx_ns: int, transport: str, channel: str, payload: bytes) -> None:
        if self._last_t is not None and t_rx_ns < self._last_t:
            log.warning(
                "recording: %s row at %d before previous %d; clamped",
                channel,
                t_rx_ns,
                self._last_t,
            )
            t_rx_ns = self._last_t
        self._last_t = t_rx_ns
        c = self._cols
        c["t_rx_ns"].append(int(t_rx_ns))
        c["transport"].append(transport)
        c["channel"].append(channel)
        c["payload"].append(bytes(payload))
        self._bytes += len(payload)
        if len(c["t_rx_ns"]) >= self.rotate_rows or self._bytes >= self.rotate_bytes:
            self.flush()

    def extend(self, rows: Iterable) -> None:
        for r in rows:
            self.append(r.t_rx_ns, r.transport, r.channel, r.payload)

    def flush(self) -> None:
        if not self._cols["t_rx_ns"]:
            return
        df = pl.DataFrame(self._cols, schema=FEED_SCHEMA)
        path = self.dir / "feeds" / f"seg-{self._segment:04d}.parquet"
        df.write_parquet(path, compression=self.compression, statistics=True)
        self.rows_written += df.height
        self._segment += 1
        self._cols = {k: [] for k in FEED_SCHEMA}
        self._bytes = 0

    def write_truth(self, rows: Iterable) -> None:
        cols = {k: [getattr(r, k) for r in rows] for k in TRUTH_SCHEMA} if rows else None
        df = pl.DataFrame(cols, schema=TRUTH_SCHEMA) if cols else pl.DataFrame(schema=TRUTH_SCHEMA)
        df.write_parquet(self.dir / "truth.parquet")

    def write_truth_tracks(self, rows: list) -> None:
        data = {
            "t_ns": [r.t_ns for r in rows],
            "object_id": [r.object_id for r in rows],
            "class": [r.cls for r in rows],
            "x_m": [r.x_m for r in rows],
            "y_m": [r.y_m for r in rows],
            "z_m": [r.z_m for r in rows],
        }
        pl.DataFrame(data, schema=TRUTH_TRACKS_SCHEMA).write_parquet(
            self.dir / "truth_tracks.parquet"
        )

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RecordingReader:
    """Reads a recording directory written by Rampart or any other contract implementation."""

    def __init__(self, rec_dir: str | Path):
        self.dir = Path(rec_dir)
        if not self.dir.is_dir():
            raise RecordingError(f"{self.dir}: not a directory")
        site = self.dir / "site.toml"
        if not site.is_file():
            raise RecordingError(f"{site}: missing (a recording holds its site configuration)")
        self.site_path = site
        self.segments = sorted((self.dir / "feeds").glob("*.parquet"))
        if not self.segments:
            raise RecordingError(f"{self.dir / 'feeds'}: no *.parquet feed files")

    def site_toml(self) -> str:
        return self.site_path.read_text(encoding="utf-8")

    def _segment(self, path: Path) -> pl.DataFrame:
        try:
            df = pl.read_parquet(path, columns=list(FEED_SCHEMA))
        except Exception as exc:  # polars raises several exception types for bad files
            raise RecordingError(f"{path}: unreadable feed file: {exc}") from exc
        for name, dtype in FEED_SCHEMA.items():
            if df.schema[name] != dtype:
                try:
                    df = df.with_columns(pl.col(name).cast(dtype))
                except Exception as exc:
                    raise RecordingError(
                        f"{path}: column {name} is {df.schema[name]}, not {dtype}"
                    ) from exc
        return df

    def messages(self) -> Iterator[FeedMessage]:
        """Every message in receive order (files in name order, rows in t_rx_ns order)."""
        for path in self.segments:
            df = self._segment(path)
            if df.height and not df["t_rx_ns"].is_sorted():
                # The contract promises sorted rows; a foreign writer that broke it
                # still replays, in receive order, stable within equal times.
                log.warning("recording: %s rows not in t_rx_ns order; sorting", path)
                df = df.sort("t_rx_ns", maintain_order=True)
            t = df["t_rx_ns"].to_list()
            tr = df["transport"].to_list()
            ch = df["channel"].to_list()
            pay = df["payload"].to_list()
            for i in range(df.height):
                yield FeedMessage(t[i], tr[i], ch[i], pay[i] if pay[i] is not None else b"")

    def frame(self) -> pl.DataFrame:
        """All feed rows as one DataFrame (for tests and tools; memory-hungry on long recordings)."""
        return pl.concat([self._segment(p) for p in self.segments])

    def time_span_ns(self) -> tuple[int, int]:
        lo = hi = None
        for p in self.segments:
            s = (
                pl.scan_parquet(p)
                .select(pl.col("t_rx_ns").min().alias("lo"), pl.col("t_rx_ns").max().alias("hi"))
                .collect()
            )
            a, b = s["lo"][0], s["hi"][0]
            if a is not None:
                lo = a if lo is None else min(lo, a)
                hi = b if hi is None else max(hi, b)
        return (lo or 0, hi or 0)

    def row_count(self) -> int:
        return sum(pl.scan_parquet(p).select(pl.len()).collect().item() for p in self.segments)

    def truth(self) -> pl.DataFrame | None:
        p = self.dir / "truth.parquet"
        return pl.read_parquet(p) if p.is_file() else None

    def truth_tracks(self) -> pl.DataFrame | None:
        p = self.dir / "truth_tracks.parquet"
        return pl.read_parquet(p) if p.is_file() else None
