"""The one small interface every detector plugs into the engine through.

A detector sees records in data-time order (``on_record``) and the passage of
data time (``on_tick``), and answers with ``Finding``s: statements about one
incident, identified by a key the detector chooses. The engine turns findings
into alerts (ids, sequence numbers, decision times); detectors never build
alerts or read clocks themselves, which keeps them pure and replays exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import polars as pl

from fusion.records import Record

# The contract's --tracks-out columns: what a detector's tracks_frame() returns.
TRACKS_SCHEMA = {
    "t_ns": pl.Int64,
    "track_id": pl.Int64,
    "x_m": pl.Float64,
    "y_m": pl.Float64,
    "z_m": pl.Float64,
    "vx_mps": pl.Float64,
    "vy_mps": pl.Float64,
    "vz_mps": pl.Float64,
    "class": pl.Utf8,
    "p_drone": pl.Float64,
}


@dataclass(frozen=True, slots=True)
class Finding:
    key: str  # the incident, unique within its detector ("radar-1", "track-17:hall-a")
    state: str  # "open" | "update" | "closed"
    kind: str  # contract alert kind
    severity: str
    confidence: float
    sensors: tuple[str, ...]
    t_event_ns: int  # when the event began (data time)
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


class Detector(Protocol):
    """A detector. It may also set ``gnss_identities``, a frozenset of GNSS message
    identities (``"NAV-SAT"``, ``"GSV"``, ...) whose fields it reads: only those are
    parsed, the rest reach it with identity and raw bytes only. A detector about
    the arrival of data rather than its content (clock supervision) may define
    ``on_arrival(record) -> findings``: called for every record as it arrives, in
    receive order, before the engine's lateness and duplicate checks. A detector
    may define ``on_finish(watermark_ns) -> findings``, called once at the end of
    input (a replay), to report judgements still pending. A detector may set
    ``takes_on_arrival``, a tuple of record types it wants in receive order as
    soon as they pass the engine's late/duplicate checks, without waiting for
    the lateness window: it must then cope with sensors that run ahead of each
    other (within the window) and must not judge across sensors before its
    ``on_tick`` watermark says every sensor's data is in."""

    name: str
    consumes: tuple[type, ...]  # record types routed to on_record

    def on_record(self, record: Record) -> Iterable[Finding]:
        """A record, in data-time order."""
        ...

    def on_tick(self, watermark_ns: int) -> Iterable[Finding]:
        """Data time has advanced: every record up to ``watermark_ns`` has been delivered."""
        ...
