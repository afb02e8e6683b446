"""Simulated power-quality front-ends and switchgear (contract §2.5, §2.6).

Each front-end samples the three phase-to-neutral voltages of one utility feed
at 12.8 kS/s per channel and sends 256-sample (20 ms) frames, COBS-framed over
a serial link or one frame per MQTT payload.

The waveform of a feed, per phase k (phase offsets 0, -120°, +120°):

    v_k(t) = g_k · Vpk · [sin(θ(t) + φ_k) + Σ_h m_h sin(h(θ(t) + φ_k) + ψ_h)] + dc_k + noise

- θ(t) = 2π(f0·t + ∫Δf) + jumps: the mains frequency wanders slowly
  (Δf is a sum of three slow sinusoids, |Δf| <= 0.02 Hz, integrated in closed
  form so blocks join without drift); an ATS transfer leaves a phase jump.
- the level drifts slowly by a few tenths of a per cent (minutes);
- 3rd, 5th and 7th harmonics of a few per cent (THD about 4-5 %, typical of a
  datacenter's rectifier load, EN 50160 allows 8 %); per-channel gain error
  ±0.2 %, a small DC offset, and Gaussian noise of 0.4 V rms.
- Counts are int16 with full scale at 2x the nominal peak, so anything above
  2 pu clips (as a real front-end's input range does).

Events (``PowerEvent.kind``) change the waveform of the feeds they list;
``magnitude`` multiplies the model's default severity:

- ``emp``: a double-exponential impulse (rise ~0.3 us, decay ~120 us, peak
  8 pu x magnitude, one polarity on every conductor, as a field-coupled
  common-mode transient is) on every phase of every listed feed, the arrivals
  within 0.5 ms of each other. At 12.8 kS/s it is one to three huge,
  clipped samples; the front-end also sends a triggered burst frame (flags
  bit 1, 1 MS/s, 2 ms from 0.5 ms before the impulse, full scale 16 pu) that
  shows its shape, after the continuous frame that holds its end and the
  next one (the stream has priority on the link). Truth ``power_transient_emp``, must alert, deadline +100 ms.
- ``emp_family``: an EMP-like event drawn from a family of waveforms, not one
  model (issue #13), so the detector is judged on physics it was not tuned
  to. Per event: one polarity; an impulse of 1.5-20 pu (log-uniform, times
  ``magnitude``) coupled into each phase of each feed by its own factor
  (0.3-1.0); either a single-sample impulse at 12.8 kS/s (a flat top one
  sample period long, then a 1-5 us fall) or a wider one (1-3 sample periods,
  then a 20-200 us decay); ringing at 1-8 kHz of 5-50 % of the impulse,
  decaying with 0.1-1 ms; arrivals spread over 0-0.6 ms across phases and
  feeds. The first such event on a front-end also draws its full scale
  (2-4 pu), so large impulses saturate it and, on the phase whose voltage
  already had the impulse's polarity, show only ``full scale - v(t)``. A
  burst capture follows as for ``emp``. Truth ``power_transient_emp``.
- ``cap_switching``: capacitor-bank energisation at a voltage peak of phase a:
  the bus voltage collapses towards the uncharged bank and rings at 300-900 Hz,
  decaying within 1-2 cycles, overshooting to 1.3-1.8 pu. Truth ``switching``.
- ``ats_transfer``: the feed is interrupted for 80-150 ms (the voltage decays
  with the connected motors' back-EMF, tau 15-30 ms), then restored from the
  other source with a 5-15° phase jump and a small inrush dip; the ATS
  controller publishes ``ats_transfer`` on its ``events`` topic. Truth
  ``switching``.
- ``sag``: 50-80 % retained voltage on all phases for 100-500 ms. Truth ``sag``.
- ``fault``: single-phase earth fault upstream: the faulted phase keeps
  10-35 %, the healthy ones swell to 1.1-1.3 pu, for 100-200 ms, cleared by a
  feeder breaker (``breaker_trip`` event). Truth ``fault``.

Serial links are paced at the configured baud rate (10 bits per byte, default
921 600): frames queue behind each other, a reader polls the port every
5-40 ms and records what has arrived (at most 4096 bytes a read), so chunk
boundaries fall anywhere and ``t_rx_ns`` is never before the last byte of the
chunk could have arrived. A frame that would wait more than 0.5 s in the
transmit queue (a link too slow for the stream) is dropped, leaving a seq gap.

Generation runs in 10 s blocks with vectorised NumPy, so an hour of two feeds
(276 M samples) takes seconds and the working memory is one block;
``power_feed_rows`` yields the rows block by block in receive order.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from cobs import cobs

from drivers.power_frame import FULL_SCALE_NEG, FULL_SCALE_POS, encode_frame
from drivers.simulated.base import NS, FeedRow, PowerEvent, SimContext, SimOutput, TruthRow
from drivers.topics import stream_topic
from fusion.config import Sensor

log = logging.getLogger("rampart.sim.power")

FS_HZ = 12_800
FRAME_SAMPLES = 256
FRAME_NS = FRAME_SAMPLES * NS // FS_HZ  # 20 ms
BLOCK_FRAMES = 500  # 10 s of frames per generation block
BLOCK_NS = BLOCK_FRAMES * FRAME_NS
FULL_SCALE_PU = 2.0  # full scale of the continuous channels, in nominal peaks

BURST_FS_HZ = 1_000_000
BURST_SAMPLES = 2000  # 2 ms
BURST_PRE_NS = 500_000  # burst starts this long before the impulse
BURST_FULL_SCALE_PU = 16.0

FRAME_PROCESSING_NS = 300_000  # front-end: frame complete -> first byte on the wire
BURST_PROCESSING_NS = 500_000
DEFAULT_BAUD = 921_600
MAX_QUEUE_NS = 500 * 1_000_000  # a frame waiting longer than this is dropped
READ_MAX_BYTES = 4096
READ_INTERVAL_NS = (5_000_000, 40_000_000)
MQTT_LATENCY_NS = (2_000_000, 1_000_000)  # fixed part, mean of the exponential part
SWITCHGEAR_LATENCY_NS = (20_000_000, 60_000_000)

NOISE_V = 0.4
PHASES = ("a", "b", "c")
_PHASE_OFFSETS = np.array([0.0, -2.0 * math.pi / 3.0, 2.0 * math.pi / 3.0])
_HARMONICS = (3, 5, 7)
_HARMONIC_PU = ((0.010, 0.025), (0.020, 0.035), (0.008, 0.020))

EMP_PEAK_PU = 8.0
EMP_RISE_S = 0.3e-6
EMP_DECAY_S = 120e-6
EMP_SPREAD_S = 0.5e-3  # arrival spread across feeds
EMP_PHASE_SPREAD_S = 20e-6

# the emp_family ranges (issue #13): what field-coupled transients and real front-ends span
FAMILY_PEAK_PU = (1.5, 20.0)  # log-uniform
FAMILY_COUPLING = (0.3, 1.0)  # per phase and feed
FAMILY_FULL_SCALE_PU = (2.0, 4.0)  # per front-end
FAMILY_RING_HZ = (1_000.0, 8_000.0)
FAMILY_RING_FRACTION = (0.05, 0.5)
FAMILY_RING_DECAY_S = (0.1e-3, 1.0e-3)
FAMILY_SPREAD_S = (0.0, 0.6e-3)


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True, slots=True)
class _Envelope:
    """Multiplies each phase by a gain over [t_lo, t_hi) (scenario seconds)."""

    t_lo: float
    t_hi: float
    gain: tuple[float, float, float]
    decay_s: float = 0.0  # >0: gain falls from 1 with this time constant instead of stepping
    recover_dip: float = 0.0  # >0: after t_hi, a dip of this depth recovering with recover_s
    recover_s: float = 0.0
    order: int = 0

    @property
    def span(self) -> tuple[float, float]:
        return self.t_lo, self.t_hi + 8.0 * self.recover_s

    def apply(self, t: np.ndarray, w: np.ndarray, model: _FeedModel) -> None:
        inside = (t >= self.t_lo) & (t < self.t_hi)
        if inside.any():
            if self.decay_s > 0:
                g = np.exp(-(t[inside] - self.t_lo) / self.decay_s)[:, None]
                w[inside] *= g
            else:
                w[inside] *= np.asarray(self.gain)
        if self.recover_dip > 0:
            after = t >= self.t_hi
            if after.any():
                w[after] *= (
                    1.0 - self.recover_dip * np.exp(-(t[after] - self.t_hi) / self.recover_s)
                )[:, None]


@dataclass(frozen=True, slots=True)
class _Ring:
    """Capacitor energisation: each phase rings about its pre-switching value."""

    t_on: float
    depth: np.ndarray  # per phase, volts: instantaneous fundamental at t_on times collapse factor
    ring_hz: float
    tau_s: float
    order: int = 1

    @property
    def span(self) -> tuple[float, float]:
        return self.t_on, self.t_on + 8.0 * self.tau_s

    def apply(self, t: np.ndarray, w: np.ndarray, model: _FeedModel) -> None:
        on = t >= self.t_on
        if on.any():
            dt = t[on] - self.t_on
            shape = np.exp(-dt / self.tau_s) * np.cos(2.0 * math.pi * self.ring_hz * dt)
            w[on] -= shape[:, None] * self.depth


@dataclass(frozen=True, slots=True)
class _Impulse:
    """Double-exponential impulse (the classic HEMP/lightning waveform shape)."""

    t_arrive: np.ndarray  # per phase, scenario seconds
    peak_v: float  # signed
    order: int = 2

    @property
    def span(self) -> tuple[float, float]:
        return float(self.t_arrive.min()), float(self.t_arrive.max()) + 25.0 * EMP_DECAY_S

    def apply(self, t: np.ndarray, w: np.ndarray, model: _FeedModel) -> None:
        t_peak = (
            math.log(EMP_DECAY_S / EMP_RISE_S)
            * EMP_RISE_S
            * EMP_DECAY_S
            / (EMP_DECAY_S - EMP_RISE_S)
        )
        norm = 1.0 / (math.exp(-t_peak / EMP_DECAY_S) - math.exp(-t_peak / EMP_RISE_S))
        for k in range(3):
            dt = t - self.t_arrive[k]
            on = dt >= 0
            if on.any():
                d = dt[on]
                w[on, k] += (
                    self.peak_v * norm * (np.exp(-d / EMP_DECAY_S) - np.exp(-d / EMP_RISE_S))
                )


@dataclass(frozen=True, slots=True)
class _FamilyImpulse:
    """One member of the emp_family: a flat-topped impulse with a fast or slow fall, then
    damped ringing, per phase with its own arrival and amplitude."""

    t_arrive: np.ndarray  # per phase, scenario seconds
    peak_v: np.ndarray  # per phase, signed volts (coupling and polarity included)
    width_s: float  # flat top
    fall_s: float  # exponential fall after the flat top
    ring_hz: float
    ring_fraction: float  # of the phase's impulse
    ring_decay_s: float
    ring_sign: float
    order: int = 2

    @property
    def span(self) -> tuple[float, float]:
        tail = self.width_s + 12.0 * max(self.fall_s, self.ring_decay_s)
        return float(self.t_arrive.min()), float(self.t_arrive.max()) + tail

    def apply(self, t: np.ndarray, w: np.ndarray, model: _FeedModel) -> None:
        for k in range(3):
            dt = t - self.t_arrive[k]
            top = (dt >= 0) & (dt < self.width_s)
            w[top, k] += self.peak_v[k]
            after = dt >= self.width_s
            if after.any():
                u = dt[after] - self.width_s
                shape = np.exp(-u / self.fall_s)
                shape += (
                    self.ring_sign
                    * self.ring_fraction
                    * np.exp(-u / self.ring_decay_s)
                    * np.sin(2.0 * math.pi * self.ring_hz * u)
                )
                w[after, k] += self.peak_v[k] * shape


# --------------------------------------------------------------------------- model


@dataclass
class _FeedModel:
    """The analog voltages one front-end sees, evaluable at any times."""

    sensor: Sensor
    vpk: float
    f0: float
    wander: np.ndarray  # (3, 3): amplitude Hz, angular frequency rad/s, phase rad
    swing: np.ndarray  # (3, 3): slow RMS variation, amplitude pu, angular frequency, phase
    coef: np.ndarray  # (8, 3): basis (sin/cos of θ, 3θ, 5θ, 7θ) -> phase volts
    dc: np.ndarray  # (3,) volts
    jumps: list[tuple[float, float]] = field(default_factory=list)  # (t_s, rad) from t_s on
    effects: list = field(default_factory=list)
    bursts: list[float] = field(default_factory=list)  # impulse arrival times (s)
    full_scale_pu: float = FULL_SCALE_PU  # the front-end's input range, in nominal peaks
    full_scale_drawn: bool = False

    @classmethod
    def build(cls, sensor: Sensor, rng: np.random.Generator) -> _FeedModel:
        vpk = math.sqrt(2.0) * sensor.nominal_v
        amps = rng.uniform(0.3, 1.0, 3)
        amps *= 0.02 / amps.sum()  # |Δf| <= 0.02 Hz
        periods = rng.uniform(40.0, 600.0, 3)
        wander = np.stack([amps, 2.0 * math.pi / periods, rng.uniform(0, 2 * math.pi, 3)])
        amps = rng.uniform(0.3, 1.0, 3)
        amps *= 0.004 / amps.sum()  # grid voltage drifts by a few tenths of a per cent
        periods = rng.uniform(30.0, 900.0, 3)
        swing = np.stack([amps, 2.0 * math.pi / periods, rng.uniform(0, 2 * math.pi, 3)])
        gain = 1.0 + rng.normal(0.0, 0.002, 3)
        coef = np.empty((8, 3))
        coef[0] = vpk * gain * np.cos(_PHASE_OFFSETS)
        coef[1] = vpk * gain * np.sin(_PHASE_OFFSETS)
        for j, (h, (lo, hi)) in enumerate(zip(_HARMONICS, _HARMONIC_PU, strict=True)):
            m, psi = rng.uniform(lo, hi), rng.uniform(0, 2 * math.pi)
            coef[2 + 2 * j] = vpk * gain * m * np.cos(h * _PHASE_OFFSETS + psi)
            coef[3 + 2 * j] = vpk * gain * m * np.sin(h * _PHASE_OFFSETS + psi)
        dc = rng.normal(0.0, 0.3, 3)
        return cls(sensor, vpk, sensor.nominal_hz, wander, swing, coef, dc)

    def theta(self, t: np.ndarray) -> np.ndarray:
        cycles = self.f0 * t
        cycles -= np.floor(cycles)  # keep the phase small: exact over an hour
        cycles += _slow(t, self._wander_cycles)
        theta = 2.0 * math.pi * cycles
        for t_jump, rad in self.jumps:
            theta += np.where(t >= t_jump, rad, 0.0)
        return theta

    def _wander_cycles(self, t: np.ndarray) -> np.ndarray:
        """∫Δf dt in cycles, Δf = Σ a·sin(w·t + p): closed form, so blocks join exactly."""
        a, w, p = self.wander
        out = np.zeros_like(t)
        for i in range(3):
            out += a[i] / w[i] * (math.cos(p[i]) - np.cos(w[i] * t + p[i]))
        return out

    def _level(self, t: np.ndarray) -> np.ndarray:
        a, w, p = self.swing
        out = np.ones_like(t)
        for i in range(3):
            out += a[i] * np.sin(w[i] * t + p[i])
        return out

    def fundamental(self, t_s: float) -> np.ndarray:
        """Instantaneous fundamental of each phase at one time (volts)."""
        th = float(self.theta(np.array([t_s]))[0])
        return self.coef[0] * math.sin(th) + self.coef[1] * math.cos(th)

    def wave(self, t: np.ndarray) -> np.ndarray:
        th = self.theta(t)
        # sin/cos of 3θ, 5θ, 7θ from powers of e^{iθ}: two trig calls instead of eight
        z1 = np.exp(1j * th)
        z2 = z1 * z1
        z3 = z2 * z1
        z5 = z3 * z2
        z7 = z5 * z2
        # Im(z·c) with c = coef_sin + i·coef_cos gives coef_sin·sin + coef_cos·cos.
        # Plain ufuncs, not a matrix product: a tall-skinny BLAS call is slower
        # here, and multithreaded BLAS thrashes on a shared edge box.
        c = self.coef[0::2] + 1j * self.coef[1::2]  # (4 orders, 3 phases)
        w = np.empty((len(t), 3))
        for k in range(3):
            acc = z1 * c[0, k]
            acc += z3 * c[1, k]
            acc += z5 * c[2, k]
            acc += z7 * c[3, k]
            w[:, k] = acc.imag
        w *= _slow(t, self._level)[:, None]
        w += self.dc
        if self.effects and len(t):
            lo, hi = float(t[0]), float(t[-1])
            for eff in self.effects:
                a, b = eff.span
                if b < lo or a > hi:
                    continue
                i0, i1 = np.searchsorted(t, [a, b], side="left")
                i1 = min(len(t), i1 + 1)
                eff.apply(t[i0:i1], w[i0:i1], self)
        return w


def _slow(t: np.ndarray, fn) -> np.ndarray:
    """``fn`` (varying over tens of seconds) at 20 ms knots, linearly interpolated.

    The interpolation error is below 1e-7 of the function's amplitude, and it
    saves evaluating several transcendental functions per sample.
    """
    if len(t) < 512:
        return fn(t)
    step = FRAME_SAMPLES / FS_HZ
    knots = np.arange(math.floor(t[0] / step), math.ceil(t[-1] / step) + 1) * step
    return np.interp(t, knots, fn(knots))


# --------------------------------------------------------------------------- links


class _SerialLink:
    """A UART at ``baud`` (10 bits a byte) and a reader polling it."""

    def __init__(self, sensor: Sensor, rng: np.random.Generator, t_base_ns: int):
        self.channel = sensor.id
        self.byte_ns = 10.0 * NS / (sensor.baud or DEFAULT_BAUD)
        self.rng = rng
        # Times are kept as float ns after t_base_ns: absolute ns in a float64
        # would round to 256 ns, more than we want between bytes 10.9 us apart.
        self.t_base_ns = t_base_ns
        self.free_ns = -math.inf  # when the line finishes its current byte queue
        self.poll_ns: float | None = None  # last reader poll
        self.dropped = 0

    def send(self, frames: list[tuple[int, bytes]]) -> list[FeedRow]:
        """``frames``: (ready_ns, COBS-framed bytes) in sending order -> chunk rows."""
        payloads, starts = [], []
        free = self.free_ns
        for ready_abs, data in frames:
            ready = float(ready_abs - self.t_base_ns)
            start = max(ready, free)
            if start - ready > MAX_QUEUE_NS:
                self.dropped += 1
                continue
            payloads.append(data)
            starts.append(start)
            free = start + len(data) * self.byte_ns
        self.free_ns = free
        if not payloads:
            return []
        lens = np.fromiter((len(p) for p in payloads), dtype=np.int64, count=len(payloads))
        offs = np.concatenate(([0], np.cumsum(lens)[:-1]))
        starts_a = np.asarray(starts)
        total = int(lens.sum())
        if self.poll_ns is None:
            self.poll_ns = starts_a[0]
        # Reader polls until everything sent so far has arrived.
        lo, hi = READ_INTERVAL_NS
        need = int((free - self.poll_ns) / lo) + 2
        polls = self.poll_ns + np.cumsum(self.rng.uniform(lo, hi, need))
        polls = polls[: int(np.searchsorted(polls, free)) + 1]
        self.poll_ns = float(polls[-1])
        # Bytes arrived by each poll: whole frames before it plus the part of the current one.
        j = np.searchsorted(starts_a, polls, side="right") - 1
        valid = j >= 0
        arrived = np.zeros(len(polls), dtype=np.int64)
        jj = j[valid]
        part = np.floor((polls[valid] - starts_a[jj]) / self.byte_ns).astype(np.int64)
        arrived[valid] = offs[jj] + np.minimum(part, lens[jj])
        buf = b"".join(payloads)
        rows = []
        prev = 0
        for t_poll, upto in zip(polls.tolist(), arrived.tolist(), strict=True):
            while upto > prev:  # a read returns at most READ_MAX_BYTES; the reader reads again
                end = min(upto, prev + READ_MAX_BYTES)
                rows.append(
                    FeedRow(
                        self.t_base_ns + math.ceil(t_poll), "serial", self.channel, buf[prev:end]
                    )
                )
                prev = end
        if prev < total:  # cannot happen: the last poll is after the last byte
            rows.append(
                FeedRow(self.t_base_ns + math.ceil(free), "serial", self.channel, buf[prev:])
            )
        return rows


class _MqttLink:
    def __init__(self, topic: str, rng: np.random.Generator):
        self.topic = topic
        self.rng = rng
        self.last_rx = 0

    def send(self, frames: list[tuple[int, bytes]]) -> list[FeedRow]:
        rows = []
        fixed, mean = MQTT_LATENCY_NS
        lat = fixed + self.rng.exponential(mean, len(frames))
        for (ready, data), d in zip(frames, lat.tolist(), strict=True):
            t_rx = max(self.last_rx + 1000, ready + int(d))  # one TCP connection keeps order
            self.last_rx = t_rx
            rows.append(FeedRow(t_rx, "mqtt", self.topic, data))
        return rows


# --------------------------------------------------------------------------- front-end


class _FrontEnd:
    def __init__(self, ctx: SimContext, sensor: Sensor, model: _FeedModel):
        self.ctx = ctx
        self.sensor = sensor
        self.model = model
        self.rng = ctx.rng("power:" + sensor.id)
        self.noise_rng = np.random.default_rng(self.rng.integers(1 << 63))
        link_rng = np.random.default_rng(self.rng.integers(1 << 63))
        self.scale = np.full(3, model.full_scale_pu * model.vpk / FULL_SCALE_POS, dtype=np.float32)
        self.burst_scale = np.full(
            3, BURST_FULL_SCALE_PU * model.vpk / FULL_SCALE_POS, dtype=np.float32
        )
        self.board = sensor.board if sensor.board is not None else 0
        self.seq = 0
        if sensor.transport == "serial":
            self.link = _SerialLink(sensor, link_rng, ctx.t0_ns)
            self.serial = True
        else:
            self.link = _MqttLink(stream_topic(ctx.site.site.id, sensor, "waveform"), link_rng)
            self.serial = False

    def block(self, b: int, n_frames_total: int) -> list[FeedRow]:
        f0 = b * BLOCK_FRAMES
        nf = min(BLOCK_FRAMES, n_frames_total - f0)
        if nf <= 0:
            return []
        n0 = f0 * FRAME_SAMPLES
        n = nf * FRAME_SAMPLES
        t = (n0 + np.arange(n, dtype=np.float64)) / FS_HZ
        w = self.model.wave(t)
        w += self.noise_rng.normal(0.0, NOISE_V, w.shape)
        counts = _to_counts(w, self.scale).reshape(nf, FRAME_SAMPLES, 3)
        clipped = (
            ((counts == FULL_SCALE_POS) | (counts == FULL_SCALE_NEG)).reshape(nf, -1).any(axis=1)
        )
        # (ready_ns, t0_ns, fs_hz, scale, counts, clipped, burst), in the order the board sends them
        pending: list[tuple[int, int, int, np.ndarray, np.ndarray, bool | None, bool]] = []
        t_block0 = self.ctx.t0_ns + f0 * FRAME_NS
        for k in range(nf):
            t0 = t_block0 + k * FRAME_NS
            ready = t0 + FRAME_NS + FRAME_PROCESSING_NS
            pending.append((ready, t0, FS_HZ, self.scale, counts[k], bool(clipped[k]), False))
        lo_s, hi_s = f0 * FRAME_NS / NS, (f0 + nf) * FRAME_NS / NS
        for t_imp in self.model.bursts:
            if lo_s <= t_imp < hi_s:
                pending.append(self._burst(t_imp))
        pending.sort(key=lambda p: p[0])
        frames = []
        for ready, t0, fs, scale, c, clip, burst in pending:
            data = encode_frame(self.board, self.seq, t0, fs, scale, c, clip, burst)
            self.seq += 1
            frames.append((ready, cobs.encode(data) + b"\x00" if self.serial else data))
        return self.link.send(frames)

    def _burst(self, t_imp: float) -> tuple[int, int, int, np.ndarray, np.ndarray, None, bool]:
        """The triggered high-rate capture around an impulse arriving at ``t_imp`` (s)."""
        t0_ns = self.ctx.t0_ns + round(t_imp * 1e6) * 1000 - BURST_PRE_NS
        t = (t0_ns - self.ctx.t0_ns) / NS + np.arange(BURST_SAMPLES, dtype=np.float64) / BURST_FS_HZ
        w = self.model.wave(t)
        w += self.noise_rng.normal(0.0, NOISE_V, w.shape)
        # The stream has priority: the board uploads the capture after the continuous
        # frame that holds the capture's end and the one after it (an impulse near a
        # frame's end is only over in the next). A 12 kB capture sent first would hold
        # the stream, and with it the earliest evidence, back by ~130 ms at 921 600 baud.
        t_end = t0_ns + BURST_SAMPLES * (NS // BURST_FS_HZ)
        frame_end = self.ctx.t0_ns + ((t_end - self.ctx.t0_ns) // FRAME_NS + 2) * FRAME_NS
        ready = max(t_end + BURST_PROCESSING_NS, frame_end + FRAME_PROCESSING_NS + 1000)
        return (
            ready,
            t0_ns,
            BURST_FS_HZ,
            self.burst_scale,
            _to_counts(w, self.burst_scale),
            None,
            True,
        )


def _to_counts(w: np.ndarray, scale: np.ndarray) -> np.ndarray:
    c = np.rint(w / scale.astype(np.float64))
    np.clip(c, FULL_SCALE_NEG, FULL_SCALE_POS, out=c)
    return c.astype(np.int16)


# --------------------------------------------------------------------------- events


@dataclass
class _Plan:
    models: dict[str, _FeedModel]  # sensor id -> model
    truth: list[TruthRow]
    switchgear: list[tuple[int, FeedRow]]  # (event time ns, row)


def _plan(
    ctx: SimContext,
    power_sensors: list[Sensor],
    switchgear_sensors: list[Sensor],
    events: list[PowerEvent],
) -> _Plan:
    models = {s.id: _FeedModel.build(s, ctx.rng("power:model:" + s.id)) for s in power_sensors}
    by_feed: dict[str, list[_FeedModel]] = {}
    for s in power_sensors:
        by_feed.setdefault(s.feed or "", []).append(models[s.id])
    truth: list[TruthRow] = []
    switch_rows: list[tuple[int, FeedRow]] = []
    for ev in sorted(events, key=lambda e: (e.t_s, e.object_id)):
        if not 0.0 <= ev.t_s < ctx.duration_s:
            log.warning(
                "power event %s at %.3f s is outside the scenario; ignored", ev.object_id, ev.t_s
            )
            continue
        feeds = [f for f in ev.feeds if f in by_feed]
        if not feeds:
            log.warning(
                "power event %s: no simulated front-end on feeds %s; ignored",
                ev.object_id,
                ev.feeds,
            )
            continue
        rng = ctx.rng("power:event:" + ev.object_id)
        planner = _EVENT_PLANNERS.get(ev.kind)
        if planner is None:
            log.warning("power event %s: unknown kind %r; ignored", ev.object_id, ev.kind)
            continue
        row, notices = planner(ctx, ev, rng, [(f, by_feed[f]) for f in feeds])
        truth.append(row)
        for t_ns, feed, event, detail in notices:
            gear = _switchgear_for(switchgear_sensors, feed)
            if gear is None:
                continue
            lat_lo, lat_hi = SWITCHGEAR_LATENCY_NS
            t_rx = t_ns + int(rng.uniform(lat_lo, lat_hi))
            body = {
                "sensor": gear.id,
                "t": round(t_ns / NS, 6),
                "event": event,
                "feed": feed,
                "detail": detail,
            }
            payload = json.dumps(body, separators=(",", ":")).encode()
            switch_rows.append(
                (
                    t_ns,
                    FeedRow(t_rx, "mqtt", stream_topic(ctx.site.site.id, gear, "events"), payload),
                )
            )
    for m in models.values():  # envelopes scale the waveform, then transients add to it
        m.effects.sort(key=lambda e: e.order)
    return _Plan(models, truth, switch_rows)


def _plan_emp(ctx, ev, rng, feeds):
    t_s = ev.t_s
    sign = 1.0 if rng.random() < 0.5 else -1.0
    arrivals = []
    for _feed, models in feeds:
        t_feed = t_s + rng.uniform(0.0, EMP_SPREAD_S)
        for m in models:
            t_k = t_feed + rng.uniform(0.0, EMP_PHASE_SPREAD_S, 3)
            m.effects.append(_Impulse(t_k, sign * EMP_PEAK_PU * ev.magnitude * m.vpk))
            m.bursts.append(float(t_k.min()))
            arrivals.extend(t_k.tolist())
    t0 = ctx.t0_ns + round(min(arrivals) * NS)
    t1 = ctx.t0_ns + round((max(arrivals) + 25 * EMP_DECAY_S) * NS)
    return TruthRow(ev.object_id, "power_transient_emp", t0, t1, True, t0 + 100_000_000), []


def _plan_emp_family(ctx, ev, rng, feeds):
    sign = 1.0 if rng.random() < 0.5 else -1.0
    lo, hi = FAMILY_PEAK_PU
    peak_pu = math.exp(rng.uniform(math.log(lo), math.log(hi))) * ev.magnitude
    period = 1.0 / FS_HZ
    if rng.random() < 0.5:  # one sample at 12.8 kS/s: a flat top one sample period long
        width, fall = period, rng.uniform(1e-6, 5e-6)
    else:
        width, fall = rng.uniform(1.0, 3.0) * period, rng.uniform(20e-6, 200e-6)
    ring = (
        rng.uniform(*FAMILY_RING_HZ),
        rng.uniform(*FAMILY_RING_FRACTION),
        rng.uniform(*FAMILY_RING_DECAY_S),
        1.0 if rng.random() < 0.5 else -1.0,
    )
    spread = rng.uniform(*FAMILY_SPREAD_S)
    arrivals = []
    for _feed, models in feeds:
        for m in models:
            if not m.full_scale_drawn:
                m.full_scale_pu = float(rng.uniform(*FAMILY_FULL_SCALE_PU))
                m.full_scale_drawn = True
            t_k = ev.t_s + rng.uniform(0.0, spread, 3)
            coupling = rng.uniform(*FAMILY_COUPLING, 3)
            m.effects.append(
                _FamilyImpulse(t_k, sign * peak_pu * coupling * m.vpk, width, fall, *ring)
            )
            m.bursts.append(float(t_k.min()))
            arrivals.extend(t_k.tolist())
    t0 = ctx.t0_ns + round(min(arrivals) * NS)
    t1 = ctx.t0_ns + round((max(arrivals) + width + 8 * max(fall, ring[2])) * NS)
    return TruthRow(ev.object_id, "power_transient_emp", t0, t1, True, t0 + 100_000_000), []


def _plan_cap(ctx, ev, rng, feeds):
    ring_hz = rng.uniform(300.0, 900.0)
    tau = ev.duration_s / 5.0 if ev.duration_s > 0 else rng.uniform(5e-3, 10e-3)
    peak_pu = 1.0 + rng.uniform(0.3, 0.8) * ev.magnitude
    t_first = math.inf
    for _feed, models in feeds:
        for m in models:
            # Close at a voltage peak of phase a: the worst case, and the usual
            # picture of an uncontrolled capacitor bank breaker.
            th = float(m.theta(np.array([ev.t_s]))[0])
            t_on = ev.t_s + ((math.pi / 2 - th) % (2 * math.pi)) / (2 * math.pi * m.f0)
            collapse = min(1.0, (peak_pu - 0.97) / math.exp(-1.0 / (2.0 * ring_hz * tau)))
            m.effects.append(_Ring(t_on, m.fundamental(t_on) * collapse, ring_hz, tau))
            t_first = min(t_first, t_on)
    t0 = ctx.t0_ns + round(t_first * NS)
    return TruthRow(ev.object_id, "switching", t0, t0 + round(6 * tau * NS), False, None), []


def _plan_ats(ctx, ev, rng, feeds):
    gap = ev.duration_s if ev.duration_s > 0 else rng.uniform(0.080, 0.150)
    decay = rng.uniform(0.015, 0.030)
    jump = math.radians(rng.uniform(5.0, 15.0)) * (1 if rng.random() < 0.5 else -1)
    dip, recover = rng.uniform(0.02, 0.06), rng.uniform(0.02, 0.05)
    t_off, t_on = ev.t_s, ev.t_s + gap
    notices = []
    for feed, models in feeds:
        for m in models:
            m.effects.append(_Envelope(t_off, t_on, (0.0, 0.0, 0.0), decay, dip, recover))
            m.jumps.append((t_on, jump))
        detail = {
            "from_source": f"utility-{feed}",
            "to_source": f"standby-{feed}",
            "interruption_ms": round(gap * 1e3, 1),
        }
        notices.append((ctx.at(t_on), feed, "ats_transfer", detail))
    t0 = ctx.at(t_off)
    return TruthRow(ev.object_id, "switching", t0, ctx.at(t_on + 8 * recover), False, None), notices


def _plan_sag(ctx, ev, rng, feeds):
    length = ev.duration_s if ev.duration_s > 0 else rng.uniform(0.100, 0.500)
    depth = min(0.9, rng.uniform(0.20, 0.50) * ev.magnitude)
    retained = 1.0 - depth
    for _feed, models in feeds:
        for m in models:
            m.effects.append(_Envelope(ev.t_s, ev.t_s + length, (retained,) * 3))
    return TruthRow(ev.object_id, "sag", ctx.at(ev.t_s), ctx.at(ev.t_s + length), False, None), []


def _plan_fault(ctx, ev, rng, feeds):
    length = ev.duration_s if ev.duration_s > 0 else rng.uniform(0.100, 0.200)
    phase = int(rng.integers(3))
    depth = min(0.95, rng.uniform(0.65, 0.90) * ev.magnitude)
    swell = 1.0 + rng.uniform(0.10, 0.30) * ev.magnitude
    gain = [swell] * 3
    gain[phase] = 1.0 - depth
    notices = []
    for feed, models in feeds:
        for m in models:
            m.effects.append(_Envelope(ev.t_s, ev.t_s + length, tuple(gain)))
        detail = {
            "phase": PHASES[phase],
            "cause": "earth_fault",
            "cleared_after_ms": round(length * 1e3, 1),
        }
        notices.append((ctx.at(ev.t_s + length), feed, "breaker_trip", detail))
    return TruthRow(
        ev.object_id, "fault", ctx.at(ev.t_s), ctx.at(ev.t_s + length), False, None
    ), notices


_EVENT_PLANNERS = {
    "emp": _plan_emp,
    "emp_family": _plan_emp_family,
    "cap_switching": _plan_cap,
    "ats_transfer": _plan_ats,
    "sag": _plan_sag,
    "fault": _plan_fault,
}


def _switchgear_for(sensors: list[Sensor], feed: str) -> Sensor | None:
    for s in sensors:
        if s.feed == feed:
            return s
    for s in sensors:
        if s.feed is None:
            return s
    return sensors[0] if sensors else None


# --------------------------------------------------------------------------- public


def power_truth(
    ctx: SimContext,
    power_sensors: list[Sensor],
    switchgear_sensors: list[Sensor],
    events: list[PowerEvent],
) -> list[TruthRow]:
    """The truth rows ``simulate_power`` writes, without generating waveforms."""
    return _plan(ctx, power_sensors, switchgear_sensors, events).truth


def power_feed_rows(
    ctx: SimContext,
    power_sensors: list[Sensor],
    switchgear_sensors: list[Sensor],
    events: list[PowerEvent],
) -> Iterator[FeedRow]:
    """Every received message of the power front-ends and switchgear, in ``t_rx_ns`` order.

    Generated 10 s at a time: memory stays at one block however long the
    scenario, for writers that stream rows to disk.
    """
    return _rows(ctx, power_sensors, _plan(ctx, power_sensors, switchgear_sensors, events))


def simulate_power(
    ctx: SimContext,
    power_sensors: list[Sensor],
    switchgear_sensors: list[Sensor],
    events: list[PowerEvent],
) -> SimOutput:
    """Power front-ends' waveforms and switchgear events for a scenario, with truth."""
    plan = _plan(ctx, power_sensors, switchgear_sensors, events)
    return SimOutput(feeds=list(_rows(ctx, power_sensors, plan)), truth=list(plan.truth))


def _rows(ctx: SimContext, power_sensors: list[Sensor], plan: _Plan) -> Iterator[FeedRow]:
    fronts = [_FrontEnd(ctx, s, plan.models[s.id]) for s in power_sensors]
    n_frames = math.floor(ctx.duration_s * NS / FRAME_NS + 1e-9)
    n_blocks = max(1, -(-n_frames // BLOCK_FRAMES))
    switch_rows = sorted(plan.switchgear, key=lambda r: r[0])
    heap: list[tuple[int, int, FeedRow]] = []
    order = 0
    for b in range(n_blocks):
        last = b == n_blocks - 1
        block_end = ctx.t0_ns + (b + 1) * BLOCK_NS
        for fe in fronts:
            for row in fe.block(b, n_frames):
                heapq.heappush(heap, (row.t_rx_ns, order, row))
                order += 1
        while switch_rows and (switch_rows[0][0] < block_end or last):
            row = switch_rows.pop(0)[1]
            heapq.heappush(heap, (row.t_rx_ns, order, row))
            order += 1
        # Whatever later blocks generate is received after this block ends.
        while heap and (heap[0][0] < block_end or last):
            yield heapq.heappop(heap)[2]
    for fe in fronts:
        if fe.serial and fe.link.dropped:
            log.warning(
                "%s: %d frames dropped, serial link too slow for the stream",
                fe.sensor.id,
                fe.link.dropped,
            )
