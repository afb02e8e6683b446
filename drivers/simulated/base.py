"""The shared vocabulary of the simulated sensors: context, events and output."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fusion.config import SiteConfig
from fusion.geo import EnuFrame

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class FeedRow:
    """One received message, exactly as a recording stores it (contract §3)."""

    t_rx_ns: int
    transport: str  # "mqtt" | "serial"
    channel: str  # MQTT topic, or the sensor id for serial
    payload: bytes


@dataclass(frozen=True, slots=True)
class TruthRow:
    """One row of truth.parquet (contract §3)."""

    object_id: str
    kind: str
    t_start_ns: int
    t_end_ns: int
    must_alert: bool
    deadline_ns: int | None


@dataclass(frozen=True, slots=True)
class TruthTrackRow:
    """One row of truth_tracks.parquet: a true ENU position of a moving object."""

    t_ns: int
    object_id: str
    cls: str  # column "class"
    x_m: float
    y_m: float
    z_m: float


@dataclass
class SimOutput:
    feeds: list[FeedRow] = field(default_factory=list)
    truth: list[TruthRow] = field(default_factory=list)
    truth_tracks: list[TruthTrackRow] = field(default_factory=list)

    def extend(self, other: SimOutput) -> None:
        self.feeds.extend(other.feeds)
        self.truth.extend(other.truth)
        self.truth_tracks.extend(other.truth_tracks)


JN_SWITCH_ON_DB = -10.0  # J/N at the receivers when a distant jammer switches on


@dataclass(frozen=True, slots=True)
class JammingEpisode:
    """A GNSS jammer near the site. J/N at the receivers ramps up, holds, ramps down."""

    object_id: str
    t_start_s: float  # scenario seconds when the jammer switches on (J/N still below +3 dB)
    t_end_s: float
    peak_jn_db: float = 40.0  # jammer-to-noise ratio at the receiver at its peak
    ramp_s: float = 20.0  # seconds from switch-on to peak (approach of a mobile jammer)
    bands: tuple[str, ...] = ("L1",)  # GNSS bands jammed: L1, L2, L5

    def jn_db(self, t_s) -> np.ndarray:
        """J/N (dB) at the receivers: a straight ramp in dB from switch-on to the peak
        over ``ramp_s``, hold, the mirror ramp down to ``t_end_s``; -inf while off."""
        t = np.asarray(t_s, dtype=np.float64)
        if self.ramp_s > 0:
            frac = np.minimum((t - self.t_start_s) / self.ramp_s, (self.t_end_s - t) / self.ramp_s)
            frac = np.clip(frac, 0.0, 1.0)
        else:
            frac = np.ones_like(t)
        on = (t >= self.t_start_s) & (t <= self.t_end_s)
        return np.where(on, JN_SWITCH_ON_DB + frac * (self.peak_jn_db - JN_SWITCH_ON_DB), -np.inf)


@dataclass(frozen=True, slots=True)
class SpoofingEpisode:
    """A GNSS spoofer: captures satellites one by one, then drags the solution away."""

    object_id: str
    t_start_s: float  # first satellite captured
    t_end_s: float
    drift_mps: float = 2.0  # speed at which the spoofed position walks off the true one
    clock_jump_ns: float = 0.0  # clock bias jump at capture (0: none)
    power_advantage_db: float = 6.0  # spoofed C/N0 above authentic; uniform across satellites


@dataclass(frozen=True, slots=True)
class PowerEvent:
    """Something that happens on the site's power feeds.

    kind: ``emp`` (impulse on every phase of every feed within ~1 ms, often clipped),
    ``cap_switching`` (oscillatory transient on one feed), ``ats_transfer`` (brief
    interruption of one feed with a switchgear event), ``sag`` (voltage dip on one
    feed), ``fault`` (single-phase fault: one phase sags, others swell).
    """

    object_id: str
    kind: str
    t_s: float  # scenario seconds of onset
    feeds: tuple[str, ...] = ("A",)  # which feeds (sensor 'feed' values) it touches
    magnitude: float = (
        1.0  # severity multiplier on the power model's default for this kind (1 = typical)
    )
    duration_s: float = 0.0  # kind-specific; 0 = the model's default


@dataclass
class SimContext:
    """What every simulated sensor gets: the site, the time span and its own random stream."""

    site: SiteConfig
    t0_ns: int  # scenario start, UTC
    duration_s: float
    seed: int
    frame: EnuFrame = field(init=False)

    def __post_init__(self) -> None:
        s = self.site.site
        self.frame = EnuFrame(s.lat, s.lon, s.alt_m)

    def rng(self, stream: str) -> np.random.Generator:
        """An independent, reproducible random stream for one model (named, not ordered)."""
        digest = sum((i + 1) * b for i, b in enumerate(stream.encode()))
        return np.random.default_rng([self.seed, digest, len(stream)])

    def at(self, t_s: float) -> int:
        """Scenario seconds -> UTC ns."""
        return self.t0_ns + round(t_s * NS)
