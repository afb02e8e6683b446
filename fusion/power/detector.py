"""The power-transient detector: waveform frames in, ``power_transient`` findings out.

Per front-end (``_Stream``): continuous frames run through the streaming
kernel chain (``kernels.WaveformChain``) with state kept across frames. A
frame that does not start where the last one ended (lost frames, or frames
the engine dropped as late), a front-end restart or a change of sample rate
ends the open events as truncated and starts the chain afresh (the previous
cycle no longer precedes the next sample, so the cycle-to-cycle difference
would be meaningless), and the gap is kept as evidence. Lost frames with no
gap in time were burst captures; they are evidence too. Triggered burst captures (flag bit 1) are analysed on their own
(``burst.analyse_burst``) and never touch the chain's state.

Across front-ends: impulse events within ``coincidence_ms`` form an impulse
group. As soon as a group holds impulses on every phase of ``min_feeds``
feeds it is ``emp_like`` and the alert opens, in the same call, from the frame
that completed the evidence; burst captures and a coincident broadband RF
burst are added as they arrive. A group that never gets there is a ``surge``,
or is folded into its feed's disturbance when one is under way (the sharp
front of a switching operation). Each front-end's other events form
disturbance groups judged by ``classify.disturbance_verdict`` once they have
settled (sag, swell, interruption, fault, switching), or while a dip or swell
is still under way after ``ongoing_after_s``.

Each group is one incident: ``open``, at most one ``update`` per
``update_interval_s`` of data time unless the severity changes, and
``closed`` ``close_after_s`` after its last evidence.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fusion.config import Sensor, SiteConfig
from fusion.detector import Finding
from fusion.power.burst import BurstCapture, analyse_burst
from fusion.power.classify import CATEGORY, disturbance_verdict, impulse_verdict
from fusion.power.events import (
    IMPULSE,
    INTERRUPTION,
    OSCILLATORY,
    SAG,
    SWELL,
    WAVESHAPE,
    ChannelEvent,
    StreamClock,
    events_from_rows,
)
from fusion.power.kernels import MIN_CYCLE_SAMPLES, WaveformChain
from fusion.power.rf_burst import RfBurst, RfBurstWatch
from fusion.power.settings import SECTION, PowerSettings
from fusion.records import PowerFrame, RfSpectrum, SwitchgearEvent

log = logging.getLogger("rampart.power")

NS = 1_000_000_000
KIND = "power_transient"
HISTORY_S = 0.25  # raw waveform kept per front-end, for the report's zoom
SNIPPET_PRE_S = 0.02
SNIPPET_POST_S = 0.04
MAX_SNIPPETS = 16
MAX_EVENTS_IN_DETAILS = 24
EMP_AFTERMATH_S = 0.1  # an emp_like impulse's own brief RMS rise and ringing end within this
MAX_GROUP_EVENTS = 2000  # per disturbance; beyond it waveshape changes are counted, not kept
ENVELOPE_POINTS = 4096  # per front-end; older points are merged in pairs (min/max kept)
_WARM_UP_T0_NS = 1_000_000_000 * NS  # warm_up's synthetic frames: an arbitrary data time
_WARM_UP_CYCLE = 128  # samples per mains cycle in warm_up's frames
_WARM_UP_VPK_COUNTS = 16383.0  # counts of the nominal peak voltage in warm_up's frames


# --------------------------------------------------------------------------- report data


class Envelope:
    """U_rms(1/2) per channel over the whole run, in a fixed budget of points.

    Points are appended as they come; when the buffer is full its points are
    merged in pairs (the lowest and highest of each pair kept), so older
    stretches of a long run are shown at a coarser step than recent ones.
    """

    def __init__(self, channels: tuple[str, ...], budget: int = ENVELOPE_POINTS):
        self.channels = channels
        k = len(channels)
        self._t = np.zeros(budget, dtype=np.int64)
        self._lo = np.zeros((budget, k))
        self._hi = np.zeros((budget, k))
        self._n = 0

    def add(self, t_ns: np.ndarray, rms: np.ndarray) -> None:
        """``t_ns`` (m,) window end times, ``rms`` (m, k) in pu."""
        m = len(t_ns)
        if m > len(self._t) // 2:  # never in practice: a frame holds a few half cycles
            t_ns, rms = t_ns[-(len(self._t) // 2) :], rms[-(len(self._t) // 2) :]
            m = len(t_ns)
        if self._n + m > len(self._t):
            self._halve()
        a, b = self._n, self._n + m
        self._t[a:b] = t_ns
        self._lo[a:b] = rms
        self._hi[a:b] = rms
        self._n = b

    def _halve(self) -> None:
        n = self._n // 2 * 2
        h = n // 2
        self._t[:h] = self._t[1:n:2]
        self._lo[:h] = np.minimum(self._lo[0:n:2], self._lo[1:n:2])
        self._hi[:h] = np.maximum(self._hi[0:n:2], self._hi[1:n:2])
        if self._n > n:  # an odd last point stays as it is
            self._t[h] = self._t[n]
            self._lo[h] = self._lo[n]
            self._hi[h] = self._hi[n]
            h += 1
        self._n = h

    def data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t_ns, lowest, highest) per stored point."""
        n = self._n
        return self._t[:n].copy(), self._lo[:n].copy(), self._hi[:n].copy()


@dataclass(frozen=True, slots=True)
class Snippet:
    """A stretch of one front-end's waveform around an alert, for the report."""

    key: str
    subtype: str
    severity: str
    sensor: str
    feed: str
    channels: tuple[str, ...]
    t_event_ns: int
    t0_ns: int
    fs_hz: float
    values: np.ndarray  # (n, k) volts
    burst: BurstCapture | None = None


# --------------------------------------------------------------------------- state


@dataclass(slots=True)
class _Gap:
    t_from_ns: int
    t_to_ns: int
    lost_frames: int
    restarted: bool


class _Stream:
    """One power front-end: its kernel chain, clock, gaps and recent waveform."""

    def __init__(self, sensor: Sensor, settings: PowerSettings):
        self.sensor = sensor
        self.feed = sensor.feed or sensor.id
        vidx = [i for i, c in enumerate(sensor.channels) if not c.lower().startswith("i")]
        self.vchan = np.asarray(vidx, dtype=np.int64)
        self.names = tuple(sensor.channels[i] for i in vidx)
        self.settings = settings
        self.chain: WaveformChain | None = None
        self.scale_key = b""
        self.scale = np.ones(len(vidx))
        self.scale32 = np.ones(len(vidx), dtype=np.float32)
        self.clock: StreamClock | None = None
        self.fs_hz = 0
        self.expect_ns: float | None = None  # t0 the next contiguous frame should have
        self.data_end_ns: int | None = None
        self.gaps: deque[_Gap] = deque(maxlen=64)
        self.frames = 0
        self.clipped_frames = 0
        self.bursts = 0
        self.unanalysable = 0
        self.envelope = Envelope(self.names)
        self._hist = np.zeros((0, 0), dtype=np.int16)
        self._hist_scale = np.ones(len(self.names), dtype=np.float32)
        self._hist_n = 0  # valid samples in the ring
        self._hist_pos = 0  # next write position
        self._hist_end_ns = 0

    # -- waveform history for snippets: a ring of the last HISTORY_S seconds, in counts
    def keep(self, counts: np.ndarray, scale: np.ndarray, t_end_ns: int) -> None:
        cap = max(int(HISTORY_S * self.fs_hz), 1)
        if self._hist.shape[0] != cap:
            self._hist = np.zeros((cap, counts.shape[1]), dtype=np.int16)
            self._hist_n = 0
            self._hist_pos = 0
        v = counts[-cap:]
        n = len(v)
        p = self._hist_pos
        first = min(n, cap - p)
        self._hist[p : p + first] = v[:first]
        self._hist[: n - first] = v[first:]
        self._hist_pos = (p + n) % cap
        self._hist_n = min(cap, self._hist_n + n)
        self._hist_end_ns = t_end_ns
        self._hist_scale = scale

    def window(self, t0_ns: int, t1_ns: int) -> tuple[int, np.ndarray] | None:
        """Samples in [t0, t1) still held: (time of the first, volts of the voltage channels)."""
        if self._hist_n == 0 or self.fs_hz <= 0:
            return None
        cap = self._hist.shape[0]
        first_ns = self._hist_end_ns - round(self._hist_n * NS / self.fs_hz)
        a = max(0, math.floor((t0_ns - first_ns) * self.fs_hz / NS))
        b = min(self._hist_n, math.ceil((t1_ns - first_ns) * self.fs_hz / NS))
        if b <= a:
            return None
        oldest = (self._hist_pos - self._hist_n) % cap
        rows = (oldest + np.arange(a, b)) % cap
        volts = self._hist[rows][:, self.vchan].astype(np.float32) * self._hist_scale
        return first_ns + round(a * NS / self.fs_hz), volts

    def blind_at(self, t_ns: int, margin_ns: int) -> _Gap | None:
        for g in self.gaps:
            if g.t_from_ns - margin_ns <= t_ns <= g.t_to_ns + margin_ns:
                return g
        return None


@dataclass(slots=True)
class _Incident:
    key: str
    subtype: str
    severity: str
    confidence: float
    sensors: tuple[str, ...]
    t_event_ns: int
    summary: str
    details: dict[str, Any]
    opened: bool = False
    last_sent_ns: int = 0
    dirty: bool = False
    last_evidence_ns: int = 0
    closed: bool = False
    sent_severity: str = ""


@dataclass(slots=True)
class _ImpulseGroup:
    t_first_ns: int
    events: list[ChannelEvent] = field(default_factory=list)
    bursts: list[BurstCapture] = field(default_factory=list)
    rf: list[RfBurst] = field(default_factory=list)
    subtype: str | None = None
    incident: _Incident | None = None
    decided_at_ns: int | None = None
    final: bool = False
    done: bool = False  # handed over (surge folded into a disturbance) or alerted and closed
    snips: list[Snippet] = field(default_factory=list)  # waveform taken for the report


@dataclass(slots=True)
class _Disturbance:
    sensor: str
    feed: str
    t_start_ns: int
    t_end_ns: int
    events: list[ChannelEvent] = field(default_factory=list)
    incident: _Incident | None = None
    ongoing: bool = False
    final: bool = False
    snips: list[Snippet] = field(default_factory=list)
    dropped: int = 0  # events past MAX_GROUP_EVENTS that changed nothing: counted only


# --------------------------------------------------------------------------- detector


class PowerTransientDetector:
    """EMP-like impulses, surges, switching, sags, swells, interruptions and faults on the
    site's power feeds (``power_transient`` alerts, contract §4)."""

    name = "power_transients"
    consumes = (PowerFrame, SwitchgearEvent, RfSpectrum)
    # Waveform frames as they arrive (each front-end's are in sequence order), so an
    # EMP-like impulse is alerted from the frame that completes the evidence, not a
    # lateness window later; switchgear events, RF sweeps and every judgement that
    # needs all feeds (surge, disturbances, closes) wait for the watermark (on_tick).
    takes_on_arrival = (PowerFrame,)

    def __init__(self, site: SiteConfig, settings: PowerSettings | None = None):
        self.settings = settings or PowerSettings.from_section(site.section(SECTION), site.source)
        s = self.settings
        self.site = site
        self._streams: dict[str, _Stream] = {
            x.id: _Stream(x, s) for x in site.sensors if x.kind == "power"
        }
        self._groups: list[_ImpulseGroup] = []
        self._disturb: dict[str, _Disturbance] = {}  # sensor -> current group
        self._pending_disturb: list[_Disturbance] = []  # finished, alert still open
        self._incidents: list[_Incident] = []
        self._switchgear: deque[SwitchgearEvent] = deque(maxlen=256)
        self._rf: deque[RfBurst] = deque(maxlen=64)
        self._rf_watch = RfBurstWatch(s.rf_burst_db, s.rf_burst_fraction)
        self._coinc_ns = round(s.coincidence_ms * 1e6)
        # an impulse event is emitted when its excursion (with any ringing) has ended
        longest_ms = max(s.impulse_max_ms, s.impulse_ring_max_ms)
        self._horizon_ns = round((s.coincidence_ms + longest_ms + 2 * s.merge_gap_ms) * 1e6)
        self.snippets: list[Snippet] = []
        # (group or disturbance, sensor, t_ns): waveform still to be taken once data has passed
        self._snippet_wait: list[tuple[Any, str, int]] = []
        self.burst_log: list[BurstCapture] = []
        self.events: deque[ChannelEvent] = deque(maxlen=20000)  # recent, for the report and tests
        self.counts: dict[str, int] = {"frames": 0, "bursts": 0, "resets": 0, "events": 0}
        self._watermark_ns: int | None = None  # every feed's data up to here is in

    # ------------------------------------------------------------------ engine interface
    def on_record(self, record) -> list[Finding]:
        if isinstance(record, PowerFrame):
            return self._on_frame(record)
        if isinstance(record, SwitchgearEvent):
            self._switchgear.append(record)
            return self._late_explanation(record)
        if isinstance(record, RfSpectrum):
            return self._on_sweep(record)
        return []

    def on_tick(self, watermark_ns: int) -> list[Finding]:
        out: list[Finding] = []
        self._watermark_ns = watermark_ns
        self._finish_groups(watermark_ns, out)
        self._finish_disturbances(watermark_ns, out)
        for inc in self._incidents:
            if inc.closed:
                continue
            if (
                inc.dirty
                and watermark_ns - inc.last_sent_ns >= self.settings.update_interval_s * NS
            ):
                out.append(self._send(inc, "update", watermark_ns))
            if (
                watermark_ns - inc.last_evidence_ns >= self.settings.close_after_s * NS
                and self._incident_settled(inc)
            ):
                inc.closed = True
                out.append(self._finding(inc, "closed"))
        self._incidents = [i for i in self._incidents if not i.closed]
        self._groups = [g for g in self._groups if not g.done]
        self._pending_disturb = [
            d
            for d in self._pending_disturb
            if not d.final or (d.incident is not None and not d.incident.closed)
        ]
        return out

    def on_finish(self, watermark_ns: int) -> list[Finding]:
        """End of input (the engine calls it at the end of a replay): judge what is still
        settling as if it had settled, so a record that ends right after an event reports
        it. Incidents stay open: nothing says they are over."""
        far = watermark_ns + round((self.settings.settle_s + 1.0) * NS) + self._horizon_ns
        out: list[Finding] = []
        for d in self._disturb.values():
            d.ongoing = False
        self._finish_groups(far, out)
        self._finish_disturbances(far, out)
        return out

    def warm_up(self) -> None:
        """Compiles (or loads from Numba's cache) the waveform kernels before live data needs
        them (the service calls this before /readyz).

        A scratch detector for the same site and settings is fed, per front-end, a few
        contiguous frames of mains with an impulse (``_chain``), a frame after a gap (a chain
        reset: ``_end_open``) and a burst capture, then dropped. The samples are a read-only
        int16 view of bytes, as ``drivers.power_frame.decode_frame`` hands them over, so the
        kernels are specialised for the arrays live frames carry. This detector's state is not
        touched and nothing is emitted.
        """
        scratch = PowerTransientDetector(self.site, self.settings)
        for st in scratch.streams():
            if len(st.vchan) == 0:
                continue
            sensor = st.sensor
            fs = max(round(_WARM_UP_CYCLE * sensor.nominal_hz), 1)
            n_ch = len(sensor.channels)
            n = _WARM_UP_CYCLE * 2  # two cycles per frame
            k = np.arange(5 * n)
            phase = 2.0 * np.pi * k / _WARM_UP_CYCLE
            v = np.stack([np.sin(phase - 2.0 * np.pi * c / 3.0) for c in range(n_ch)], axis=1)
            v[3 * n + n // 3, :] += 0.8  # an impulse (pu)
            counts = np.round(v * _WARM_UP_VPK_COUNTS).astype(np.int16)

            t_ns = _WARM_UP_T0_NS
            for i in range(4):
                scratch.on_record(_warm_frame(sensor, i, t_ns, counts[i * n : (i + 1) * n], fs))
                t_ns += n * NS // fs
            t_ns += 10 * n * NS // fs  # a gap: the chain ends what is open and starts afresh
            scratch.on_record(_warm_frame(sensor, 14, t_ns, counts[4 * n :], fs, lost=9))
            burst = counts[3 * n : 4 * n]
            scratch.on_record(_warm_frame(sensor, 15, t_ns, burst, 1_000_000, burst=True))
        scratch.on_tick(_WARM_UP_T0_NS + 60 * NS)

    def report_panels(self) -> list:
        from fusion.power.panel import PowerEnvelopePanel, PowerZoomPanel

        return [PowerEnvelopePanel(self), PowerZoomPanel(self)]

    def streams(self) -> list[_Stream]:
        return list(self._streams.values())

    # ------------------------------------------------------------------ frames
    def _on_frame(self, fr: PowerFrame) -> list[Finding]:
        st = self._streams.get(fr.sensor)
        if st is None or len(st.vchan) == 0:
            return []
        out: list[Finding] = []
        if fr.burst:
            self._on_burst(st, fr, out)
            return out
        self.counts["frames"] += 1
        st.frames += 1
        st.clipped_frames += int(fr.clipped)
        events = self._advance(st, fr)
        if st.chain is None:
            return out
        self.counts["events"] += len(events)
        self.events.extend(events)
        for e in events:
            if e.kind == IMPULSE:
                self._add_impulse(e, fr.t_end_ns, out)
            else:
                self._add_disturbance(st, e)
        self._check_ongoing(st, out)
        self._fill_snippets()
        return out

    def _advance(self, st: _Stream, fr: PowerFrame) -> list[ChannelEvent]:
        """Runs one continuous frame through the stream's chain; returns the events it ended."""
        s = self.settings
        fs = fr.fs_hz
        sensor = st.sensor
        ended: list[ChannelEvent] = []
        same_rate = st.fs_hz > 0 and abs(fs - st.fs_hz) <= 0.01 * st.fs_hz
        # The samples follow on when the frame starts where the last one ended: within half
        # a frame (timestamps may jitter; a lost continuous frame moves it by a whole one)
        # and at least 1.5 samples. A sequence gap with no time gap lost a burst capture.
        slack = max(1.5 * NS / fs, 0.5 * fr.n_samp * NS / fs)
        contiguous = (
            st.chain is not None
            and same_rate
            and not fr.restarted
            and st.expect_ns is not None
            and abs(fr.t_ns - st.expect_ns) <= slack
        )
        if fr.lost_frames and contiguous:
            st.gaps.append(_Gap(fr.t_ns, fr.t_ns, fr.lost_frames, False))
        if not contiguous:
            if st.chain is not None:
                self.counts["resets"] += 1
                ev_i, ev_f = st.chain.reset()
                ended += self._convert(st, ev_i, ev_f)
                st.gaps.append(
                    _Gap(st.data_end_ns or fr.t_ns, fr.t_ns, fr.lost_frames, fr.restarted)
                )
            if fs / sensor.nominal_hz < MIN_CYCLE_SAMPLES:
                st.unanalysable += 1
                if st.unanalysable == 1:
                    log.warning(
                        "%s: %d samples/s is too slow for waveform analysis at %g Hz; frames skipped",
                        sensor.id,
                        fs,
                        sensor.nominal_hz,
                    )
                st.chain = None
                st.fs_hz = fs
                st.expect_ns = None
                st.data_end_ns = fr.t_end_ns
                return ended
            if st.chain is None or not same_rate:
                st.chain = WaveformChain(
                    len(st.vchan), fs, sensor.nominal_hz, sensor.nominal_v, s.chain()
                )
                st.clock = StreamClock(fs)
                st.fs_hz = fs
        chain, clock = st.chain, st.clock
        assert chain is not None and clock is not None
        first = chain.next_index
        clock.add(first, fr.t_ns)
        if fr.scale.tobytes() != st.scale_key:  # scales rarely change: convert once
            st.scale_key = fr.scale.tobytes()
            st.scale = fr.scale[st.vchan].astype(np.float64)
            st.scale32 = st.scale.astype(np.float32)
        scale = st.scale
        ev_i, ev_f, env_idx, env_rms, _ = chain.process(fr.counts, st.vchan, scale)
        if ev_i.shape[0]:
            ended += self._convert(st, ev_i, ev_f)
        if env_idx.shape[0]:
            t_env = fr.t_ns + ((env_idx - first) * (NS / fs)).astype(np.int64)
            st.envelope.add(t_env, env_rms)
        st.expect_ns = fr.t_ns + fr.n_samp * NS / fs
        data_end = fr.t_end_ns
        st.data_end_ns = data_end
        st.keep(fr.counts, st.scale32, data_end)
        return ended

    def _convert(self, st: _Stream, ev_i: np.ndarray, ev_f: np.ndarray) -> list[ChannelEvent]:
        if ev_i.shape[0] == 0 or st.clock is None:
            return []
        return events_from_rows(
            ev_i,
            ev_f,
            st.clock,
            sensor=st.sensor.id,
            feed=st.feed,
            channel_names=st.names,
            nominal_v=st.sensor.nominal_v,
            nominal_hz=st.sensor.nominal_hz,
            fs_hz=st.fs_hz,
            interruption_pu=self.settings.interruption_pu,
        )

    # ------------------------------------------------------------------ bursts and RF
    def _on_burst(self, st: _Stream, fr: PowerFrame, out: list[Finding]) -> None:
        s = self.settings
        self.counts["bursts"] += 1
        st.bursts += 1
        mains = st.sensor.nominal_hz
        if st.chain is not None:
            f = st.chain.frequency_hz()
            if np.all(f > 0):
                mains = float(np.median(f))
        cap = analyse_burst(
            fr.values()[:, st.vchan],
            fr.clipped_mask()[:, st.vchan],
            sensor=st.sensor.id,
            feed=st.feed,
            channel_names=st.names,
            t0_ns=fr.t_ns,
            fs_hz=fr.fs_hz,
            nominal_v=st.sensor.nominal_v,
            mains_hz=mains,
            threshold_pu=s.threshold_pu,
            release_pu=s.release_pu,
            impulse_max_s=s.impulse_max_ms / 1e3,
        )
        self.burst_log.append(cap)
        del self.burst_log[:-32]
        vpk = math.sqrt(2.0) * st.sensor.nominal_v
        for c in cap.channels:
            if not c.impulsive:
                continue
            e = ChannelEvent(
                sensor=st.sensor.id,
                feed=st.feed,
                channel=c.channel,
                kind=IMPULSE,
                t_start_ns=c.t_onset_ns,
                t_end_ns=c.t_onset_ns + round(c.duration_us * 1e3),
                t_peak_ns=c.t_onset_ns + round(c.rise_us * 1e3),
                magnitude_pu=c.peak_pu * c.polarity,
                peak_pu=c.peak_pu,
                dvdt_pu=c.dvdt_v_per_us * 1e6 / (2.0 * math.pi * st.sensor.nominal_hz * vpk),
                energy_v2s=c.energy_v2s,
                polarity=c.polarity,
                clipped=c.clipped,
                source="burst",
            )
            self.events.append(e)
            self._add_impulse(e, fr.t_end_ns, out, capture=cap)
        if not cap.impulsive_channels:
            # a capture with no impulse still belongs to a group it overlaps
            g = self._group_for(cap.t0_ns, window=self._coinc_ns + round(2 * NS * 1e-3))
            if g is not None and cap not in g.bursts:
                g.bursts.append(cap)

    def _on_sweep(self, sp: RfSpectrum) -> list[Finding]:
        burst = self._rf_watch.on_sweep(sp)
        if burst is None:
            return []
        self._rf.append(burst)
        out: list[Finding] = []
        for g in self._groups:
            if self._rf_matches(burst, g) and burst not in g.rf:
                g.rf.append(burst)
                self._refresh_group(g, sp.t_ns, out)
        return out

    def _rf_matches(self, b: RfBurst, g: _ImpulseGroup) -> bool:
        slack = 50 * 1_000_000  # sweep start/end times are approximate
        return b.t_start_ns - slack <= g.t_first_ns <= b.t_end_ns + slack

    # ------------------------------------------------------------------ impulse groups
    def _group_for(self, t_ns: int, window: int | None = None) -> _ImpulseGroup | None:
        w = self._coinc_ns if window is None else window
        for g in self._groups:
            if not g.done and abs(t_ns - g.t_first_ns) <= w:
                return g
        return None

    def _add_impulse(
        self,
        e: ChannelEvent,
        data_ns: int,
        out: list[Finding],
        capture: BurstCapture | None = None,
    ) -> None:
        g = self._group_for(e.t_start_ns)
        if g is None:
            g = _ImpulseGroup(e.t_start_ns)
            self._groups.append(g)
            g.rf.extend(b for b in self._rf if self._rf_matches(b, g))
        if e.source == "stream" and all(x.sensor != e.sensor for x in g.events):
            self._snippet_wait.append((g, e.sensor, e.t_start_ns))
        g.t_first_ns = min(g.t_first_ns, e.t_start_ns)
        g.events.append(e)
        if capture is not None and capture not in g.bursts:
            g.bursts.append(capture)
        self._refresh_group(g, data_ns, out)

    def _verdict(self, g: _ImpulseGroup):
        channels_of = {sid: st.names for sid, st in self._streams.items()}
        feed_of = {sid: st.feed for sid, st in self._streams.items()}
        return impulse_verdict(g.events, channels_of, feed_of, self.settings.min_feeds)

    def _refresh_group(self, g: _ImpulseGroup, data_ns: int, out: list[Finding]) -> None:
        """New evidence for ``g``: decide emp_like as soon as it holds, update an open alert."""
        v = self._verdict(g)
        if v.subtype == "emp_like" and g.subtype != "emp_like":
            g.subtype = "emp_like"
            g.decided_at_ns = data_ns
        if g.subtype is None and not g.final:
            return
        inc = self._group_incident(g, v)
        if not inc.opened:
            out.append(self._send(inc, "open", data_ns))
            self._publish_snippets(g, inc)
        else:
            self._changed(inc, data_ns, out)

    def _group_incident(self, g: _ImpulseGroup, v) -> _Incident:
        s = self.settings
        subtype = g.subtype or v.subtype
        evs = g.events
        stream_evs = [e for e in evs if e.source == "stream"]
        feeds = sorted({e.feed for e in evs})
        sensors = sorted({e.sensor for e in evs})
        clipped_feeds = sorted({e.feed for e in stream_evs if e.clipped})
        caps = sorted(g.bursts, key=lambda c: (c.t0_ns, c.sensor))
        cap_peak = max(
            (c.peak_pu for cap in caps for c in cap.channels if c.impulsive), default=0.0
        )
        cap_feeds = sorted({cap.feed for cap in caps if cap.impulsive_channels})
        peak = max([e.peak_pu for e in stream_evs] + [cap_peak], default=0.0)
        blind = self._blind_streams(g.t_first_ns, feeds)
        t_end = max(e.t_end_ns for e in evs)
        details: dict[str, Any] = {
            "subtype": subtype,
            "category": CATEGORY[subtype],
            "feeds": feeds,
            "feeds_all_phases": list(v.feeds_all_phases),
            "phases": v.phases,
            "peak_pu": round(peak, 3),
            "peak_v": round(peak * math.sqrt(2.0) * self._nominal(sensors), 1),
            "peak_clipped": bool(clipped_feeds) and cap_peak == 0.0,
            "clipped_feeds": clipped_feeds,
            "clipped_samples": sum(e.clipped for e in stream_evs),
            "dvdt_pu": round(max((e.dvdt_pu for e in evs), default=0.0), 1),
            "teager_pu": round(max((e.teager_pu for e in stream_evs), default=0.0), 3),
            "energy_v2s": round(sum(e.energy_v2s for e in stream_evs), 6),
            "duration_ms": round((t_end - g.t_first_ns) / 1e6, 3),
            "spread_us": round(v.spread_us, 1),
            "burst_captures": [c.summary() for c in caps],
            "rf_bursts": [b.as_dict() for b in g.rf],
            "blind_feeds": blind,
            "events": [e.as_dict() for e in evs[:MAX_EVENTS_IN_DETAILS]],
        }
        if g.decided_at_ns is not None:
            details["decided_at_data_ns"] = g.decided_at_ns
            details["decision_latency_ms"] = round((g.decided_at_ns - g.t_first_ns) / 1e6, 3)
        if subtype == "emp_like":
            corroborated = bool(g.rf) or len(cap_feeds) >= s.min_feeds
            severity = s.emp_corroborated_severity if corroborated else s.emp_severity
            confidence = min(
                0.99,
                0.8
                + 0.1 * (len(cap_feeds) >= s.min_feeds)
                + 0.05 * bool(g.rf)
                + 0.04 * (len(clipped_feeds) >= s.min_feeds),
            )
            where = ", ".join(feeds)
            summary = (
                f"EMP-like impulse on feeds {where}: every phase within "
                f"{max(v.spread_us, 1.0) / 1e3:.2f} ms, peak "
                + (
                    f"{cap_peak:.1f} pu"
                    if cap_peak
                    else f">= {peak:.1f} pu (clipped)"
                    if clipped_feeds
                    else f"{peak:.1f} pu"
                )
                + (", broadband RF burst" if g.rf else "")
            )
        else:
            severity = "medium" if blind else s.pq_severity
            confidence = 0.7
            chans = "; ".join(f"{sid} {', '.join(c)}" for sid, c in v.phases.items())
            summary = f"Surge on feed {', '.join(feeds)} ({chans}): peak {peak:.1f} pu"
            if blind:
                summary += f"; feed {', '.join(blind)} had no data then"
        sensors_all = tuple(sorted(set(sensors) | {b.sensor for b in g.rf}))
        inc = g.incident
        if inc is None:
            inc = _Incident(
                key=f"power:{subtype}:{g.t_first_ns}",
                subtype=subtype,
                severity=severity,
                confidence=confidence,
                sensors=sensors_all,
                t_event_ns=g.t_first_ns,
                summary=summary,
                details=details,
            )
            g.incident = inc
            self._incidents.append(inc)
        else:
            if severity != inc.severity:
                inc.dirty = True
            inc.severity = max(inc.severity, severity, key=_SEVERITY_RANK.__getitem__)
            inc.confidence = max(inc.confidence, confidence)
            inc.sensors = sensors_all
            inc.summary = summary
            inc.details = details
        return inc

    def _blind_streams(self, t_ns: int, feeds_seen: list[str]) -> list[str]:
        """Feeds whose front-end had no data around ``t_ns`` (lost frames, restart).

        Frames come as they arrive, so a feed whose data has not reached ``t_ns`` yet
        may only be behind: it counts as blind only once the watermark has passed."""
        out = []
        margin = NS // 10
        settled = self._watermark_ns is not None and self._watermark_ns >= t_ns
        for st in self._streams.values():
            if st.feed in feeds_seen or st.feed in out:
                continue
            if st.blind_at(t_ns, margin) is not None or (
                settled and st.data_end_ns is not None and st.data_end_ns < t_ns and st.frames
            ):
                out.append(st.feed)
        return sorted(out)

    def _nominal(self, sensors: list[str]) -> float:
        vals = [self._streams[s].sensor.nominal_v for s in sensors if s in self._streams]
        return float(np.median(vals)) if vals else 230.0

    def _finish_groups(self, watermark_ns: int, out: list[Finding]) -> None:
        settle = round(self.settings.settle_s * NS)
        for g in self._groups:
            if g.done:
                continue
            horizon = g.t_first_ns + self._horizon_ns
            if not g.final and watermark_ns >= horizon:
                g.final = True
            if g.subtype == "emp_like":
                if g.incident is not None and g.incident.closed:
                    g.done = True
                continue
            if not g.final or watermark_ns < horizon + settle:
                continue
            # not emp_like: a surge, unless it is the front of a disturbance on its feed
            host = self._host_disturbance(g)
            if host is not None:
                host.events.extend(g.events)
                g.done = True
                continue
            g.subtype = "surge"
            v = self._verdict(g)
            inc = self._group_incident(g, v)
            out.append(self._send(inc, "open", watermark_ns))
            self._publish_snippets(g, inc)
            g.done = True

    def _host_disturbance(self, g: _ImpulseGroup) -> _Disturbance | None:
        gap = round(self.settings.group_gap_s * NS)
        sensors = {e.sensor for e in g.events}
        for d in [*self._disturb.values(), *self._pending_disturb]:
            near = d.t_start_ns - gap <= g.t_first_ns <= d.t_end_ns + gap
            if (
                near
                and d.sensor in sensors
                and (d.ongoing or any(e.kind != WAVESHAPE for e in d.events))
            ):
                return d
        return None

    # ------------------------------------------------------------------ disturbances
    def _add_disturbance(self, st: _Stream, e: ChannelEvent) -> None:
        gap = round(self.settings.group_gap_s * NS)
        d = self._disturb.get(st.sensor.id)
        if d is None or e.t_start_ns > d.t_end_ns + gap:
            if d is not None:
                self._pending_disturb.append(d)
            d = _Disturbance(st.sensor.id, st.feed, e.t_start_ns, e.t_end_ns)
            self._disturb[st.sensor.id] = d
            self._snippet_wait.append((d, st.sensor.id, e.t_start_ns))
        if len(d.events) < MAX_GROUP_EVENTS or self._new_extreme(d, e):
            d.events.append(e)
        else:  # a load chattering for hours: count, keep only what changes the verdict
            d.dropped += 1
        d.t_start_ns = min(d.t_start_ns, e.t_start_ns)
        d.t_end_ns = max(d.t_end_ns, e.t_end_ns)
        if d.incident is not None:
            d.incident.last_evidence_ns = max(d.incident.last_evidence_ns, e.t_end_ns)

    @staticmethod
    def _new_extreme(d: _Disturbance, e: ChannelEvent) -> bool:
        if e.kind in (SAG, INTERRUPTION):
            lows = [
                x.magnitude_pu
                for x in d.events
                if x.channel == e.channel and x.kind in (SAG, INTERRUPTION)
            ]
            return not lows or e.magnitude_pu < min(lows)
        if e.kind == SWELL:
            highs = [x.magnitude_pu for x in d.events if x.channel == e.channel and x.kind == SWELL]
            return not highs or e.magnitude_pu > max(highs)
        return e.kind == OSCILLATORY and not any(x.kind == OSCILLATORY for x in d.events)

    def _open_extremes(self, st: _Stream) -> tuple[dict[str, float], dict[str, float], int | None]:
        """Dips and swells still under way: (lowest per channel, highest, earliest start ns)."""
        if st.chain is None or st.clock is None:
            return {}, {}, None
        state = st.chain.open_rms()
        ext = st.chain.open_extremes()
        low, high, starts = {}, {}, []
        for k, name in enumerate(st.names):
            if state[k, 0]:
                low[name] = float(ext[k, 0])
                starts.append(int(state[k, 1]))
            if state[k, 2]:
                high[name] = float(ext[k, 1])
                starts.append(int(state[k, 3]))
        t0 = st.clock.time_ns(min(starts)) if starts else None
        return low, high, t0

    def _check_ongoing(self, st: _Stream, out: list[Finding]) -> None:
        if st.chain is None or (st.chain.open_count == 0 and st.sensor.id not in self._disturb):
            return
        low, high, t0 = self._open_extremes(st)
        d = self._disturb.get(st.sensor.id)
        if t0 is None:
            if d is not None:
                d.ongoing = False
            return
        now = st.data_end_ns or t0
        gap = round(self.settings.group_gap_s * NS)
        if d is None or t0 > d.t_end_ns + gap:
            if d is not None:
                self._pending_disturb.append(d)
            d = _Disturbance(st.sensor.id, st.feed, t0, now)
            self._disturb[st.sensor.id] = d
            self._snippet_wait.append((d, st.sensor.id, t0))
        d.ongoing = True
        d.t_start_ns = min(d.t_start_ns, t0)
        d.t_end_ns = max(d.t_end_ns, now)
        if now - t0 < self.settings.ongoing_after_s * NS:
            return
        inc = self._disturbance_incident(d, st, low, high, now)
        if inc is None:
            return
        inc.last_evidence_ns = now
        if not inc.opened:
            out.append(self._send(inc, "open", now))
            self._publish_snippets(d, inc)
        else:
            self._changed(inc, now, out)

    def _finish_disturbances(self, watermark_ns: int, out: list[Finding]) -> None:
        settle = round(self.settings.settle_s * NS)
        for sid in list(self._disturb):
            d = self._disturb[sid]
            if d.ongoing or watermark_ns < d.t_end_ns + settle:
                continue
            self._pending_disturb.append(d)
            del self._disturb[sid]
        for d in self._pending_disturb:
            if d.final:
                continue
            st = self._streams[d.sensor]
            if watermark_ns < d.t_end_ns + settle:
                continue
            d.final = True
            if d.incident is None and self._emp_aftermath(d, st) is not None:
                self.counts["emp_aftermath"] = self.counts.get("emp_aftermath", 0) + 1
                continue
            inc = self._disturbance_incident(d, st, {}, {}, d.t_end_ns)
            if inc is None:
                continue
            inc.last_evidence_ns = max(inc.last_evidence_ns, d.t_end_ns)
            inc.details["ongoing"] = False
            if not inc.opened:
                out.append(self._send(inc, "open", watermark_ns))
                self._publish_snippets(d, inc)
            else:
                inc.dirty = True

    def _emp_aftermath(self, d: _Disturbance, st: _Stream) -> _ImpulseGroup | None:
        """The emp_like group whose own energy ``d`` is, if any.

        A large impulse and its ringing raise U_rms(1/2) for the two windows that
        hold it (a brief "swell"), and its ringing or the excursions around it are
        waveform events of the feed. When that is all ``d`` holds (no dip: a dip is
        the feed's own trouble, or the pulse took the supply down), it starts within
        two windows of an emp_like group on its feed and is over within
        ``EMP_AFTERMATH_S``, it is part of that incident, not a power-quality event."""
        if any(e.kind in (SAG, INTERRUPTION) for e in d.events):
            return None
        window = round(2 * NS / st.sensor.nominal_hz)
        for g in self._groups:
            if g.subtype != "emp_like" or all(e.feed != d.feed for e in g.events):
                continue
            if (
                g.t_first_ns - window <= d.t_start_ns <= g.t_first_ns + window
                and d.t_end_ns <= g.t_first_ns + round(EMP_AFTERMATH_S * NS)
            ):
                return g
        return None

    def _late_explanation(self, g: SwitchgearEvent) -> list[Finding]:
        """A switchgear operation reported after its disturbance was judged: judge it again."""
        out: list[Finding] = []
        win = round(self.settings.switchgear_window_s * NS)
        for d in self._pending_disturb:
            inc = d.incident
            if not d.final or inc is None or inc.closed or not inc.opened:
                continue
            if g.feed not in (None, d.feed) or not d.t_start_ns - win <= g.t_ns <= d.t_end_ns + win:
                continue
            before = (inc.subtype, inc.summary)
            self._disturbance_incident(d, self._streams[d.sensor], {}, {}, d.t_end_ns)
            if (inc.subtype, inc.summary) != before:
                self._changed(inc, g.t_ns, out)
        return out

    def _disturbance_incident(
        self,
        d: _Disturbance,
        st: _Stream,
        low: dict[str, float],
        high: dict[str, float],
        now_ns: int,
    ) -> _Incident | None:
        s = self.settings
        win = round(s.switchgear_window_s * NS)
        gear = [
            g
            for g in self._switchgear
            if (g.feed is None or g.feed == d.feed)
            and d.t_start_ns - win <= g.t_ns <= d.t_end_ns + win
        ]
        v = disturbance_verdict(
            d.events,
            st.names,
            open_low=low,
            open_high=high,
            switchgear=gear,
            interruption_pu=s.interruption_pu,
            sag_pu=s.sag_pu,
            swell_pu=s.swell_pu,
            fault_unbalance_pu=s.fault_unbalance_pu,
        )
        if v.subtype is None:
            return d.incident
        ongoing = bool(low or high)
        t_end = now_ns if ongoing else d.t_end_ns
        dur_ms = (t_end - d.t_start_ns) / 1e6
        osc = [e for e in d.events if e.kind == "oscillatory"]
        lost = sum(g.lost_frames for g in st.gaps if d.t_start_ns - NS <= g.t_to_ns <= t_end + NS)
        details: dict[str, Any] = {
            "subtype": v.subtype,
            "category": v.category,
            "feeds": [d.feed],
            "sensor": d.sensor,
            "phases": sorted(
                {e.channel for e in d.events if e.kind != WAVESHAPE} | set(low) | set(high),
                key=lambda c: st.names.index(c) if c in st.names else 99,
            ),
            "retained_pu": v.retained_pu,
            "highest_pu": v.highest_pu,
            "duration_ms": round(dur_ms, 1),
            "ongoing": ongoing,
            "ring_hz": round(max((e.osc_hz for e in osc), default=0.0), 1),
            "peak_pu": round(max((e.peak_pu for e in d.events), default=0.0), 3),
            "explained_by": v.explained_by,
            "lost_frames": lost,
            "events_total": len(d.events) + d.dropped,
            "events": [e.as_dict() for e in d.events[:MAX_EVENTS_IN_DETAILS]],
        }
        severity = s.switching_severity if v.subtype == "switching" else s.pq_severity
        summary = _pq_summary(v, d, dur_ms, ongoing, details)
        inc = d.incident
        if inc is None:
            inc = _Incident(
                key=f"power:pq:{d.sensor}:{d.t_start_ns}",
                subtype=v.subtype,
                severity=severity,
                confidence=0.9,
                sensors=(d.sensor, *sorted({g["sensor"] for g in v.explained_by})),
                t_event_ns=d.t_start_ns,
                summary=summary,
                details=details,
                last_evidence_ns=t_end,
            )
            d.incident = inc
            self._incidents.append(inc)
        else:
            if severity != inc.severity:
                inc.dirty = True
            inc.subtype = v.subtype
            inc.severity = severity
            inc.summary = summary
            inc.details = details
            inc.sensors = (d.sensor, *sorted({g["sensor"] for g in v.explained_by}))
        return inc

    # ------------------------------------------------------------------ incidents
    def _incident_settled(self, inc: _Incident) -> bool:
        for d in [*self._disturb.values(), *self._pending_disturb]:
            if d.incident is inc and (d.ongoing or not d.final):
                return False
        return True

    def _changed(self, inc: _Incident, data_ns: int, out: list[Finding]) -> None:
        inc.last_evidence_ns = max(inc.last_evidence_ns, data_ns)
        if inc.severity != inc.sent_severity:
            out.append(self._send(inc, "update", data_ns))
        else:
            inc.dirty = True

    def _send(self, inc: _Incident, state: str, data_ns: int) -> Finding:
        inc.opened = True
        inc.dirty = False
        inc.last_sent_ns = data_ns
        if state == "open":
            inc.last_evidence_ns = max(inc.last_evidence_ns, data_ns)
        inc.sent_severity = inc.severity
        return self._finding(inc, state)

    def _finding(self, inc: _Incident, state: str) -> Finding:
        return Finding(
            key=inc.key,
            state=state,
            kind=KIND,
            severity=inc.severity,
            confidence=inc.confidence,
            sensors=inc.sensors,
            t_event_ns=inc.t_event_ns,
            summary=inc.summary,
            details=dict(inc.details),
        )

    # ------------------------------------------------------------------ report snippets
    def _fill_snippets(self) -> None:
        """Takes the waveform asked for once the front-end's data has passed the window."""
        if not self._snippet_wait:
            return
        keep = []
        for owner, sensor, t_ns in self._snippet_wait:
            st = self._streams[sensor]
            t1 = t_ns + round(SNIPPET_POST_S * NS)
            if st.data_end_ns is not None and st.data_end_ns < t1:
                keep.append((owner, sensor, t_ns))
                continue
            win = st.window(t_ns - round(SNIPPET_PRE_S * NS), t1)
            if win is None:
                continue
            burst = next(
                (
                    b
                    for b in reversed(self.burst_log)
                    if b.sensor == sensor and abs(b.t_onset_ns - t_ns) <= 2 * self._coinc_ns
                ),
                None,
            )
            snip = Snippet(
                "", "", "", sensor, st.feed, st.names, t_ns, win[0], float(st.fs_hz), win[1], burst
            )
            owner.snips.append(snip)
            inc = owner.incident
            if inc is not None and inc.opened:
                self._store_snippet(snip, inc)
        self._snippet_wait = keep[-64:]

    def _publish_snippets(self, owner, inc: _Incident) -> None:
        for snip in owner.snips:
            self._store_snippet(snip, inc)

    def _store_snippet(self, snip: Snippet, inc: _Incident) -> None:
        snip = replace(
            snip, key=inc.key, subtype=inc.subtype, severity=inc.severity, t_event_ns=inc.t_event_ns
        )
        if any(x.key == snip.key and x.sensor == snip.sensor for x in self.snippets):
            return
        self.snippets.append(snip)
        if len(self.snippets) <= MAX_SNIPPETS:
            return
        # keep every emp_like one if possible: drop the oldest of another subtype
        for i, s in enumerate(self.snippets):
            if s.subtype != "emp_like":
                del self.snippets[i]
                return
        del self.snippets[0]


_SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def _warm_frame(
    sensor: Sensor,
    seq: int,
    t_ns: int,
    counts: np.ndarray,
    fs_hz: int,
    burst: bool = False,
    lost: int = 0,
) -> PowerFrame:
    """A synthetic frame for ``warm_up``: ``counts`` as a read-only view of bytes, as
    ``drivers.power_frame.decode_frame`` returns the samples of a received frame."""
    view = np.frombuffer(counts.tobytes(), dtype=np.int16).reshape(counts.shape)
    vpk = math.sqrt(2.0) * sensor.nominal_v
    scale = np.full(counts.shape[1], vpk / _WARM_UP_VPK_COUNTS, dtype=np.float32)
    return PowerFrame(
        sensor.id,
        t_ns,
        t_ns,
        sensor.board or 0,
        seq,
        fs_hz,
        False,
        burst,
        tuple(sensor.channels),
        view,
        scale,
        lost_frames=lost,
    )


def _pq_summary(v, d: _Disturbance, dur_ms: float, ongoing: bool, details: dict) -> str:
    where = f"feed {d.feed} ({d.sensor})"
    still = "still under way after " if ongoing else ""
    ret = v.retained_pu
    lowest = min(ret, key=ret.get) if ret else ""
    gear = [g["event"] for g in v.explained_by]
    why = f"; {', '.join(dict.fromkeys(gear))}" if gear else ""
    if v.category == CATEGORY["interruption"]:
        text = f"Interruption of {where}: {min(ret.values()):.0%} retained, {still}{dur_ms:.0f} ms"
    elif v.category == CATEGORY["fault"]:
        hi = max(v.highest_pu.values()) if v.highest_pu else 1.0
        text = (
            f"Fault on {where}: {lowest} down to {ret[lowest]:.0%}, others up to {hi:.0%}, "
            f"{still}{dur_ms:.0f} ms"
        )
    elif v.category == CATEGORY["sag"]:
        text = f"Sag on {where}: {min(ret.values()):.0%} retained, {still}{dur_ms:.0f} ms"
    elif v.category == CATEGORY["swell"]:
        text = f"Swell on {where}: up to {max(v.highest_pu.values()):.0%}, {still}{dur_ms:.0f} ms"
    elif v.category == "oscillatory transient":
        text = f"Switching transient on {where}: ringing at {details['ring_hz']:.0f} Hz"
    else:
        text = f"{v.category.capitalize()} on {where}, {dur_ms:.0f} ms"
    if v.subtype == "switching" and v.category != "oscillatory transient":
        text = f"Switching on {where}: {v.category}, {still}{dur_ms:.0f} ms"
    return text + why
