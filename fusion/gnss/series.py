"""Bounded time series kept for the report panel (at most two points per second)."""

from __future__ import annotations

import math


class Series:
    """Named columns sampled at most every ``min_step_s``; halves its resolution when full.

    Memory stays bounded on a service that runs for months: past ``cap``
    points every other point is dropped and the spacing doubles.
    """

    def __init__(self, columns: tuple[str, ...], min_step_s: float = 0.5, cap: int = 20_000):
        self.columns = columns
        self.t_ns: list[int] = []
        self.values: dict[str, list[float]] = {c: [] for c in columns}
        self.min_step_ns = int(min_step_s * 1e9)
        self.cap = max(int(cap), 16)

    def add(self, t_ns: int, **values: float) -> None:
        if self.t_ns and t_ns - self.t_ns[-1] < self.min_step_ns:
            return
        self.t_ns.append(int(t_ns))
        for c in self.columns:
            v = values.get(c, math.nan)
            self.values[c].append(float(v) if v is not None else math.nan)
        if len(self.t_ns) > self.cap:
            self.t_ns = self.t_ns[::2]
            for c in self.columns:
                self.values[c] = self.values[c][::2]
            self.min_step_ns *= 2

    def __len__(self) -> int:
        return len(self.t_ns)
