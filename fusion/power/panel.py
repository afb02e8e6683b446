"""Report panels of the power-transient detector (``ReportPanel``, fusion/report.py).

- ``PowerEnvelopePanel``: per front-end (feed), the U_rms(1/2) envelope of each
  phase over the whole replay (lowest and highest per plotted point), the
  sag / swell / interruption thresholds, and a marker at each
  ``power_transient`` alert, coloured by severity and labelled with its subtype.
- ``PowerZoomPanel``: the waveform around each alert (20 ms before to 40 ms
  after its start), and where the front-end sent a triggered burst capture,
  the impulse itself at microsecond scale beside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from fusion.report import SEVERITY_COLOURS, ReportContext

if TYPE_CHECKING:
    from fusion.power.detector import PowerTransientDetector

NS = 1_000_000_000
PHASE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
MAX_ZOOMS = 8


class PowerEnvelopePanel:
    title = "Power feeds: U_rms(1/2) envelope and events"

    def __init__(self, detector: PowerTransientDetector):
        self.detector = detector

    def figure(self, ctx: ReportContext) -> Figure | None:
        streams = [st for st in self.detector.streams() if st.envelope.data()[0].size]
        if not streams:
            return None
        s = self.detector.settings
        fig = Figure(figsize=(13, 1.2 + 2.3 * len(streams)), layout="constrained")
        axes = fig.subplots(len(streams), 1, sharex=True, squeeze=False)[:, 0]
        alerts = [
            a for a in ctx.alerts if a.get("kind") == "power_transient" and a.get("state") == "open"
        ]
        for ax, st in zip(axes, streams, strict=True):
            t, lo, hi = st.envelope.data()
            x = ctx.x(t)
            for k, name in enumerate(st.names):
                colour = PHASE_COLOURS[k % len(PHASE_COLOURS)]
                ax.fill_between(x, lo[:, k], hi[:, k], color=colour, alpha=0.35, lw=0, step="mid")
                ax.plot(x, hi[:, k], color=colour, lw=0.6, label=name)
            for level, style in ((s.swell_pu, "--"), (s.sag_pu, "--"), (s.interruption_pu, ":")):
                ax.axhline(level, color="#888888", lw=0.7, ls=style)
            top = max(1.5, float(np.nanmax(hi)) * 1.05) if hi.size else 1.5
            ax.set_ylim(0, top)
            ax.set_ylabel(f"{st.sensor.id}\nfeed {st.feed}\nU_rms (pu)", fontsize=8)
            for a in alerts:
                sensors = a.get("sensors") or []
                if st.sensor.id not in sensors:
                    continue
                sub = (a.get("details") or {}).get("subtype", "?")
                colour = SEVERITY_COLOURS.get(a.get("severity"), "#555555")
                xe = ctx.x(a["t_event_ns"])
                ax.axvline(xe, color=colour, lw=1.4, alpha=0.85)
                ax.text(xe, top * 0.97, f" {sub}", color=colour, fontsize=7, va="top", rotation=90)
            ax.legend(loc="lower left", fontsize=7, ncol=len(st.names), frameon=False)
            ax.grid(axis="y", color="#eeeeee")
        ctx.time_axis(axes[-1])
        fig.suptitle(self.title)
        return fig


class PowerZoomPanel:
    title = "Power: waveform around each alert"

    def __init__(self, detector: PowerTransientDetector):
        self.detector = detector

    def figure(self, ctx: ReportContext) -> Figure | None:
        snips = sorted(self.detector.snippets, key=lambda s: (s.t_event_ns, s.sensor))[:MAX_ZOOMS]
        if not snips:
            return None
        n = len(snips)
        bursts = any(s.burst is not None for s in snips)
        fig = Figure(figsize=(13, 2.4 * n), layout="constrained")
        if bursts:
            grid = fig.subplots(n, 2, squeeze=False, gridspec_kw={"width_ratios": [3, 2]})
        else:
            grid = fig.subplots(n, 1, squeeze=False)
        for row, snip in enumerate(snips):
            ax = grid[row][0]
            t_ms = (snip.t0_ns - snip.t_event_ns) / 1e6 + np.arange(
                len(snip.values)
            ) * 1e3 / snip.fs_hz
            for k, name in enumerate(snip.channels):
                ax.plot(t_ms, snip.values[:, k], lw=0.8, color=PHASE_COLOURS[k % 6], label=name)
            colour = SEVERITY_COLOURS.get(snip.severity, "#555555")
            ax.axvline(0.0, color=colour, lw=1.0, ls="--")
            when = _utc(snip.t_event_ns)
            ax.set_title(
                f"{snip.subtype} ({snip.severity}) — {snip.sensor}, feed {snip.feed}, {when}",
                fontsize=9,
                loc="left",
                color=colour,
            )
            ax.set_xlabel("ms from the event start", fontsize=8)
            ax.set_ylabel("V", fontsize=8)
            ax.legend(fontsize=7, loc="upper right", frameon=False)
            if not bursts:
                continue
            bx = grid[row][1]
            if snip.burst is None:
                bx.axis("off")
                bx.text(0.5, 0.5, "no burst capture", ha="center", va="center", color="#888888")
                continue
            b = snip.burst
            t_us = (b.t0_ns - snip.t_event_ns) / 1e3 + np.arange(len(b.values)) * 1e6 / b.fs_hz
            for k, name in enumerate(snip.channels[: b.values.shape[1]]):
                bx.plot(t_us, b.values[:, k], lw=0.8, color=PHASE_COLOURS[k % 6], label=name)
            peak = max((c.peak_pu for c in b.channels), default=0.0)
            rise = min((c.rise_us for c in b.channels if c.impulsive), default=float("nan"))
            step_us = 1e6 / b.fs_hz
            rise_text = f"< {step_us:g} us" if rise < step_us else f"{rise:.1f} us"
            bx.set_title(
                f"burst capture {b.fs_hz / 1e6:g} MS/s: peak {peak:.1f} pu, rise {rise_text}",
                fontsize=9,
                loc="left",
            )
            bx.set_xlabel("us from the event start", fontsize=8)
        fig.suptitle(self.title)
        return fig


def _utc(t_ns: int) -> str:
    from datetime import UTC, datetime

    dt = datetime.fromtimestamp(t_ns // NS, tz=UTC)
    return f"{dt:%H:%M:%S}.{(t_ns % NS) // 1_000_000:03d} UTC"
