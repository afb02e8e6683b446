"""The GNSS report panel: C/N0, AGC and jamming indicator, position offset, RF band power.

One figure with four stacked plots over the report's time span, one line per
receiver (or RF sensor and band), and the GNSS incidents of the replay
(``gnss_jamming``, ``gnss_spoofing``, antenna ``sensor_fault``) shaded from
open to close on every plot, so an analyst sees what the detector saw when it
decided.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from fusion.report import ReportContext

if TYPE_CHECKING:
    from fusion.gnss.detector import GnssDetector

GAP_S = 5.0  # no point for this long: the line is broken, not drawn across
KIND_COLOURS = {"gnss_jamming": "#d62728", "gnss_spoofing": "#6a1b9a", "sensor_fault": "#ff7f0e"}


def gnss_incident_spans(ctx: ReportContext) -> list[tuple[str, int, int]]:
    """(kind, first alert time, close time or report end) of every GNSS incident in ``ctx``."""
    spans: dict[str, list[int | str]] = {}
    for a in ctx.alerts:
        kind = a.get("kind")
        details = a.get("details") if isinstance(a.get("details"), dict) else {}
        if kind not in KIND_COLOURS:
            continue
        if kind == "sensor_fault" and details.get("reason") != "antenna":
            continue
        t = a.get("t_detect_ns")
        if not isinstance(t, int):
            continue
        key = str(a.get("incident_id"))
        span = spans.setdefault(key, [kind, t, ctx.t1_ns])
        span[1] = min(int(span[1]), t)
        if a.get("state") == "closed":
            span[2] = t
    return sorted((str(k), int(a), int(b)) for k, a, b in spans.values())


class GnssPanel:
    title = "GNSS receivers and RF band power"

    def __init__(self, detector: GnssDetector):
        self.detector = detector

    def figure(self, ctx: ReportContext) -> Figure | None:
        det = self.detector
        rx = [
            m
            for _, m in sorted(det.receivers.items())
            if len(m.series_cn0) or len(m.series_power) or len(m.series_offset)
        ]
        rf = [m for _, m in sorted(det.rf.items()) if any(len(s) for s in m.series.values())]
        if not rx and not rf:
            return None
        fig = Figure(figsize=(13, 10), dpi=110, layout="constrained")
        axes = fig.subplots(4, 1, sharex=True)
        titles = (
            "Median C/N0 of tracked satellites (dB-Hz); dashed: drop below baseline (dB)",
            "AGC count of the first RF block; dotted: CW jamming indicator (right axis)",
            "Horizontal position offset from the reference position (m)",
            "RF band power over the learned noise floor (dB)",
        )
        for ax, title in zip(axes, titles, strict=True):
            ax.set_title(title, loc="left", fontsize=9)
            ax.grid(color="#e8e8e8", lw=0.6)
        colours = [f"C{i}" for i in range(10)]
        jam_ax = axes[1].twinx()
        for i, m in enumerate(rx):
            col = colours[i % 10]
            t, v = _xy(ctx, m.series_cn0)
            axes[0].plot(t, v["cno_median"], color=col, lw=1.0, label=m.id)
            axes[0].plot(t, v["cn0_drop_db"], color=col, lw=0.8, ls="--")
            t, v = _xy(ctx, m.series_power)
            if len(t):
                axes[1].plot(t, v["agc"], color=col, lw=1.0, label=m.id)
                jam_ax.plot(t, v["jam_ind"], color=col, lw=0.8, ls=":")
            t, v = _xy(ctx, m.series_offset)
            if len(t):
                axes[2].plot(
                    t, v["offset_m"], color=col, lw=1.0, label=f"{m.id} ({m.reference_source})"
                )
        jam_ax.set_ylabel("jamInd", fontsize=8)
        k = 0
        for m in rf:
            for band, series in sorted(m.series.items()):
                if not len(series):
                    continue
                t, v = _xy(ctx, series)
                axes[3].plot(t, v["rise_db"], color=colours[k % 10], lw=1.0, label=f"{m.id} {band}")
                k += 1
        if det.rf:
            axes[3].axhline(det.s.rf_rise_db, color="#888", lw=0.8, ls="--")
        else:
            axes[3].text(
                0.5,
                0.5,
                "no RF sensor configured",
                ha="center",
                va="center",
                transform=axes[3].transAxes,
                fontsize=8,
                color="#666",
            )
        spans = gnss_incident_spans(ctx)
        for ax in axes:
            for kind, t0, t1 in spans:
                ax.axvspan(
                    ctx.x(t0), ctx.x(max(t1, t0 + 1)), color=KIND_COLOURS[kind], alpha=0.12, lw=0
                )
                ax.axvline(ctx.x(t0), color=KIND_COLOURS[kind], lw=0.8)
        for ax in axes:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper right", fontsize=7, ncol=4)
        kinds = sorted({k for k, _, _ in spans})
        if kinds:
            fig.legend(
                handles=[Patch(color=KIND_COLOURS[k], alpha=0.4, label=k) for k in kinds],
                loc="outside upper right",
                ncol=len(kinds),
                fontsize=8,
                frameon=False,
            )
        ctx.time_axis(axes[-1])
        return fig


def _xy(ctx: ReportContext, series) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Plot coordinates of a series, broken (NaN) across gaps of more than GAP_S."""
    t_ns = np.array(series.t_ns, dtype=np.int64)
    values = {c: np.array(v, dtype=float) for c, v in series.values.items()}
    gaps = np.flatnonzero(np.diff(t_ns) > GAP_S * 1_000_000_000) + 1
    if gaps.size:
        t_ns = np.insert(t_ns, gaps, t_ns[gaps - 1] + 1)
        values = {c: np.insert(v, gaps, np.nan) for c, v in values.items()}
    return (ctx.x(t_ns) if t_ns.size else np.array([])), values
