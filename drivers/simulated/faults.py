"""Sensor faults injected into a simulated recording: outages and garbage.

Applied to a scenario's feeds after every sensor model has run, so the models
stay fault-free and a fault touches exactly the window it names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drivers.simulated.base import NS, FeedRow, SimContext


@dataclass(frozen=True, slots=True)
class SensorFault:
    """``outage``: the sensor's messages vanish; ``garbage``: its bytes arrive corrupted."""

    sensor: str
    kind: str  # "outage" | "garbage"
    t_start_s: float
    t_end_s: float


def _owned_by(row: FeedRow, sensor: str) -> bool:
    if row.transport == "serial":
        return row.channel == sensor
    parts = row.channel.split("/")
    return len(parts) >= 4 and parts[3] == sensor


def apply_faults(ctx: SimContext, feeds: list[FeedRow], faults: list[SensorFault]) -> list[FeedRow]:
    if not faults:
        return feeds
    rng = ctx.rng("faults")
    out: list[FeedRow] = []
    for row in feeds:
        hit = None
        for f in faults:
            if ctx.t0_ns + int(f.t_start_s * NS) <= row.t_rx_ns < ctx.t0_ns + int(
                f.t_end_s * NS
            ) and _owned_by(row, f.sensor):
                hit = f
                break
        if hit is None:
            out.append(row)
        elif hit.kind == "garbage":
            # Line noise: random bytes with no NMEA/UBX/COBS delimiters left intact.
            junk = rng.integers(1, 255, size=max(len(row.payload), 8), dtype=np.uint8).tobytes()
            out.append(FeedRow(row.t_rx_ns, row.transport, row.channel, junk))
        elif hit.kind != "outage":
            raise ValueError(f"unknown fault kind {hit.kind!r}")
    return out
