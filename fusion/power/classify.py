"""Classification rules: per-channel events -> a power-transient subtype (contract §4).

Two kinds of groups are judged here; the detector forms them and decides when
a group is complete.

**Impulse groups** (events of kind ``impulse`` on any channel of any feed, all
starting within the coincidence window, about 1 ms):

- ``emp_like``: impulses on every phase of at least ``min_feeds`` independent
  feeds. A field-coupled transient (HEMP E1, IEC 61000-2-9; a nearby
  intentional EM source) arrives on every conductor of every feed within
  microseconds, with one polarity (common mode), which no switching or
  fault inside one feed does: separate feeds share no conductor.
- ``surge``: impulsive, but not on every phase of two feeds (a lightning-induced
  or switching surge on one feed, IEEE 1159 §4.4.1).

**Disturbance groups** (one feed's U_rms(1/2) and waveform events that follow
each other within ``group_gap_s``), in the categories of IEEE 1159-2019
Table 2:

- ``interruption``: every phase below ``interruption_pu``;
- ``fault``: a dip with the phase pattern of a fault: phases dipped unequally
  (retained voltages differing by ``fault_unbalance_pu`` or more), or one
  phase dipping while another swells (a single-phase earth fault shifts the
  neutral: Bollen, *Understanding Power Quality Problems*, 2000, §6.2);
- ``sag``: a balanced dip; ``swell``: a rise above ``swell_pu``;
- ``switching``: an oscillatory transient (capacitor energisation rings at a
  few hundred Hz, IEEE 1159 §4.4.2), or any sag, swell or interruption with a
  switchgear operation on that feed (ATS transfer, breaker close, generator
  or UPS change) within ``switchgear_window_s``;
- ``surge``: only impulses (a single-feed impulse group that landed in it);
- nothing: waveform changes below every threshold.

A ``breaker_trip`` beside a fault or sag is its explanation, not a switching
operation: the subtype stays ``fault`` (or ``sag``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fusion.power.events import (
    IMPULSE,
    INTERRUPTION,
    OSCILLATORY,
    SAG,
    SWELL,
    ChannelEvent,
)
from fusion.records import SwitchgearEvent

SWITCHING_EVENTS = (
    "ats_transfer",
    "breaker_close",
    "generator_start",
    "generator_stop",
    "ups_on_battery",
    "ups_on_mains",
)
EXPLAINING_EVENTS = (*SWITCHING_EVENTS, "breaker_trip")

CATEGORY = {  # IEEE 1159-2019 Table 2 wording, for the SOC
    "emp_like": "impulsive transient on every phase of several feeds",
    "surge": "impulsive transient",
    "switching": "switching transient",
    "sag": "voltage sag (dip)",
    "swell": "voltage swell",
    "interruption": "interruption",
    "fault": "fault: unbalanced sag",
}


@dataclass(frozen=True, slots=True)
class ImpulseVerdict:
    subtype: str  # emp_like | surge
    feeds_all_phases: tuple[
        str, ...
    ]  # feeds with an impulse on every phase of one of their sensors
    phases: dict[str, list[str]]  # sensor -> channels with an impulse
    spread_us: float  # first to last impulse start


def impulse_verdict(
    events: Sequence[ChannelEvent],
    channels_of: dict[str, tuple[str, ...]],
    feed_of: dict[str, str],
    min_feeds: int,
) -> ImpulseVerdict:
    """``channels_of``: sensor -> its voltage channels; ``feed_of``: sensor -> feed."""
    hit: dict[str, list[str]] = {}
    for e in events:
        if e.kind != IMPULSE:
            continue
        chans = hit.setdefault(e.sensor, [])
        if e.channel not in chans:
            chans.append(e.channel)
    full: list[str] = []
    for sensor, chans in hit.items():
        wanted = channels_of.get(sensor, ())
        feed = feed_of.get(sensor, sensor)
        if wanted and all(c in chans for c in wanted) and feed not in full:
            full.append(feed)
    starts = [e.t_start_ns for e in events if e.kind == IMPULSE]
    spread = (max(starts) - min(starts)) / 1e3 if starts else 0.0
    for sensor, chans in hit.items():
        order = channels_of.get(sensor, ())
        chans.sort(key=lambda c, order=order: order.index(c) if c in order else len(order))
    subtype = "emp_like" if len(full) >= min_feeds else "surge"
    return ImpulseVerdict(subtype, tuple(sorted(full)), hit, spread)


@dataclass(frozen=True, slots=True)
class DisturbanceVerdict:
    subtype: str | None  # None: nothing to report
    category: str
    retained_pu: dict[str, float] = field(default_factory=dict)  # channel -> lowest U_rms(1/2)
    highest_pu: dict[str, float] = field(default_factory=dict)  # channel -> highest U_rms(1/2)
    explained_by: list[dict] = field(default_factory=list)


def disturbance_verdict(
    events: Sequence[ChannelEvent],
    channels: tuple[str, ...],
    *,
    open_low: dict[str, float] | None = None,
    open_high: dict[str, float] | None = None,
    switchgear: Iterable[SwitchgearEvent] = (),
    interruption_pu: float = 0.1,
    sag_pu: float = 0.9,
    swell_pu: float = 1.1,
    fault_unbalance_pu: float = 0.2,
) -> DisturbanceVerdict:
    """Judges one feed's group. ``open_low``/``open_high``: extremes of dips/swells still
    under way (channel -> pu); ``switchgear``: operations on this feed near the group."""
    low = {c: 1.0 for c in channels}
    high = {c: 1.0 for c in channels}
    dipped: set[str] = set()
    swelled: set[str] = set()
    kinds: set[str] = set()
    for e in events:
        kinds.add(e.kind)
        if e.channel not in low:
            continue
        if e.kind in (SAG, INTERRUPTION):
            low[e.channel] = min(low[e.channel], e.magnitude_pu)
            dipped.add(e.channel)
        elif e.kind == SWELL:
            high[e.channel] = max(high[e.channel], e.magnitude_pu)
            swelled.add(e.channel)
    for c, v in (open_low or {}).items():
        if c in low:
            low[c] = min(low[c], v)
            dipped.add(c)
    for c, v in (open_high or {}).items():
        if c in high:
            high[c] = max(high[c], v)
            swelled.add(c)

    gear = [g for g in switchgear if g.event in EXPLAINING_EVENTS]
    explained = [
        {
            "event": g.event,
            "sensor": g.sensor,
            "feed": g.feed,
            "t_ns": g.t_ns,
            "detail": dict(g.detail),
        }
        for g in gear
    ]
    switched = any(g.event in SWITCHING_EVENTS for g in gear)
    retained = {c: round(v, 4) for c, v in low.items()}
    highest = {c: round(v, 4) for c, v in high.items()}

    def verdict(subtype: str | None, category: str) -> DisturbanceVerdict:
        return DisturbanceVerdict(subtype, category, retained, highest, explained)

    if dipped:
        lows = [low[c] for c in channels]
        if all(v < interruption_pu for v in lows):
            category = "interruption"
        elif max(lows) - min(lows) >= fault_unbalance_pu or (swelled and min(lows) < sag_pu):
            category = "fault"
        else:
            category = "sag"
        if category != "fault" and switched:
            return verdict("switching", CATEGORY[category])
        return verdict(category, CATEGORY[category])
    if swelled:
        return verdict("switching" if switched else "swell", CATEGORY["swell"])
    if OSCILLATORY in kinds:
        return verdict("switching", "oscillatory transient")
    if IMPULSE in kinds:
        return verdict("surge", CATEGORY["surge"])
    return verdict(None, "waveform change below the event thresholds")
