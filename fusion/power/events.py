"""Per-channel power events with times, from the kernel chain's rows.

The chain counts samples; events carry UTC nanoseconds. ``StreamClock`` maps a
sample index back to the time of the frame it came in (each frame's ``t0_ns``
is the front-end's own timestamp of its first sample), so a front-end whose
sample clock runs slightly off its nominal rate, or a record with a
fractional rate, still places every event within one sample of its true time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fusion.power import kernels as kn

NS = 1_000_000_000

# Event kinds as the detector names them: the kernel's dip splits into sag and interruption.
IMPULSE = "impulse"
OSCILLATORY = "oscillatory"
WAVESHAPE = "waveshape"
SAG = "sag"
INTERRUPTION = "interruption"
SWELL = "swell"


@dataclass(frozen=True, slots=True)
class ChannelEvent:
    """One event on one channel of one front-end.

    ``magnitude_pu``: for impulse/oscillatory/waveshape the largest deviation
    from the previous cycle, per unit of the nominal peak (signed by
    polarity); for sag/interruption the lowest U_rms(1/2) and for a swell the
    highest, per unit of the nominal RMS.
    """

    sensor: str
    feed: str
    channel: str
    kind: str
    t_start_ns: int
    t_end_ns: int
    t_peak_ns: int
    magnitude_pu: float
    peak_pu: float = 0.0  # largest |v| / nominal peak
    dvdt_pu: float = 0.0  # steepest slope / the fundamental's steepest (2π·f·Vpk)
    teager_pu: float = 0.0  # largest Teager-Kaiser energy of the deviation / Vpk²
    energy_v2s: float = 0.0  # ∫ deviation² dt
    polarity: int = 0
    clipped: int = 0  # clipped samples
    osc_hz: float = 0.0
    freq_hz: float = 0.0  # tracked mains frequency at the end
    truncated: bool = False  # ended by a gap in the stream
    source: str = "stream"  # "stream" (continuous frames) | "burst" (triggered capture)

    @property
    def duration_s(self) -> float:
        return (self.t_end_ns - self.t_start_ns) / NS

    def as_dict(self) -> dict:
        """Alert-details form: JSON types, rounded."""
        return {
            "sensor": self.sensor,
            "feed": self.feed,
            "channel": self.channel,
            "kind": self.kind,
            "source": self.source,
            "t_start_ns": self.t_start_ns,
            "t_end_ns": self.t_end_ns,
            "duration_ms": round((self.t_end_ns - self.t_start_ns) / 1e6, 3),
            "magnitude_pu": round(self.magnitude_pu, 4),
            "peak_pu": round(self.peak_pu, 4),
            "dvdt_pu": round(self.dvdt_pu, 2),
            "teager_pu": round(self.teager_pu, 4),
            "energy_v2s": round(self.energy_v2s, 6),
            "polarity": self.polarity,
            "clipped_samples": self.clipped,
            "osc_hz": round(self.osc_hz, 1),
            "truncated": self.truncated,
        }


class StreamClock:
    """Sample index -> UTC ns for one stream, from the recent frames' own timestamps."""

    def __init__(self, fs_hz: float, capacity: int = 512):
        self.fs_hz = float(fs_hz)
        self._idx = np.zeros(capacity, dtype=np.int64)
        self._t = np.zeros(capacity, dtype=np.int64)
        self._n = 0
        self._head = 0  # next slot

    def add(self, first_index: int, t0_ns: int) -> None:
        self._idx[self._head] = first_index
        self._t[self._head] = t0_ns
        self._head = (self._head + 1) % len(self._idx)
        self._n = min(self._n + 1, len(self._idx))

    def time_ns(self, index: int) -> int:
        """The time of sample ``index``: from the latest frame that starts at or before it."""
        if self._n == 0:
            raise ValueError("no frame yet")
        cap = len(self._idx)
        best = -1
        # newest first: events are nearly always in the last few frames
        for back in range(self._n):
            slot = (self._head - 1 - back) % cap
            if self._idx[slot] <= index:
                best = slot
                break
        if best < 0:  # older than the frames kept: extrapolate from the oldest
            best = (self._head - self._n) % cap
        return int(self._t[best]) + round((index - int(self._idx[best])) * NS / self.fs_hz)


def events_from_rows(
    ev_i: np.ndarray,
    ev_f: np.ndarray,
    clock: StreamClock,
    *,
    sensor: str,
    feed: str,
    channel_names: tuple[str, ...],
    nominal_v: float,
    nominal_hz: float,
    fs_hz: float,
    interruption_pu: float,
) -> list[ChannelEvent]:
    """The kernel's event rows as ``ChannelEvent``s, in row order."""
    out: list[ChannelEvent] = []
    vpk = math.sqrt(2.0) * nominal_v
    slope = 2.0 * math.pi * nominal_hz * vpk / fs_hz  # fundamental's steepest step per sample
    for r in range(ev_i.shape[0]):
        row_i = ev_i[r]
        row_f = ev_f[r]
        k = int(row_i[kn.E_KIND])
        start = clock.time_ns(int(row_i[kn.E_START]))
        end = clock.time_ns(int(row_i[kn.E_END]))
        peak = clock.time_ns(int(row_i[kn.E_PEAK_IDX]))
        common = {
            "sensor": sensor,
            "feed": feed,
            "channel": channel_names[int(row_i[kn.E_CH])],
            "t_start_ns": start,
            "t_end_ns": end,
            "t_peak_ns": peak,
            "clipped": int(row_i[kn.E_CLIPS]),
            "freq_hz": float(row_f[kn.EF_FREQ]),
            "truncated": bool(row_i[kn.E_TRUNC]),
        }
        if k in (kn.K_DIP, kn.K_SWELL):
            rms = float(row_f[kn.EF_RMS])
            kind = SWELL if k == kn.K_SWELL else (INTERRUPTION if rms < interruption_pu else SAG)
            out.append(ChannelEvent(kind=kind, magnitude_pu=rms, **common))
            continue
        kind = {kn.K_IMPULSE: IMPULSE, kn.K_OSCILLATORY: OSCILLATORY}.get(k, WAVESHAPE)
        out.append(
            ChannelEvent(
                kind=kind,
                magnitude_pu=float(row_f[kn.EF_PEAK_D]) / vpk,
                peak_pu=float(row_f[kn.EF_PEAK_X]) / vpk,
                dvdt_pu=float(row_f[kn.EF_DV]) / slope,
                teager_pu=float(row_f[kn.EF_TK]) / (vpk * vpk),
                energy_v2s=float(row_f[kn.EF_ENERGY]),
                polarity=int(row_i[kn.E_POLARITY]),
                osc_hz=float(row_f[kn.EF_OSC_HZ]),
                **common,
            )
        )
    return out
