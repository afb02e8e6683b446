"""The HTML replay report: what each sensor sent, what was rejected, what was alerted.

``write_report`` writes ``index.html`` and its figures (PNG files beside it,
referenced by relative path, so the directory can be zipped or served as is).
The core figure, ``timeline.png``, has one lane per sensor: its decoded message
rate, red ticks where its input was rejected, and the alert incidents citing it
as bars from ``open`` to ``closed``, coloured by severity. Detectors add their
own figures through ``ReportPanel``.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas (never
pyplot), so a report can be written from a service or a test without a display
and without global figure state. Alert text is untrusted and always escaped.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import matplotlib.dates as mdates
import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from fusion.config import SiteConfig

if TYPE_CHECKING:
    from matplotlib.axes import Axes

log = logging.getLogger("rampart.report")

NS = 1_000_000_000
SEVERITIES = ("info", "low", "medium", "high", "critical")
SEVERITY_COLOURS = {
    "info": "#9e9e9e",
    "low": "#1f77b4",
    "medium": "#ff7f0e",
    "high": "#d62728",
    "critical": "#6a1b9a",
}
RATE_COLOUR = "#8fb3d9"
REJECT_COLOUR = "#e00000"
TIMELINE_PNG = "timeline.png"
DPI = 110
MAX_BINS = 3000  # activity bins across the timeline: per second up to 50 minutes
MAX_ALERT_ROWS = 5000  # alert table rows; the rest are counted, not listed
MAX_LABELLED_INCIDENTS = 80  # above this, kind labels would only be clutter


@dataclass(frozen=True, slots=True)
class ReportContext:
    """What a panel gets: the site, every alert message, and the report's time span."""

    site: SiteConfig
    alerts: tuple[dict, ...]
    t0_ns: int
    t1_ns: int

    @staticmethod
    def x(t_ns: Any) -> Any:
        """UTC nanoseconds -> matplotlib date numbers, for plotting against ``time_axis``."""
        return mdates.date2num(np.asarray(t_ns, dtype="int64").astype("datetime64[ns]"))

    def time_axis(self, ax: Axes) -> None:
        """Sets the report's time span on ``ax`` with readable UTC tick labels."""
        lo, hi = _padded_span(self.t0_ns, self.t1_ns)
        ax.set_xlim(self.x(lo), self.x(hi))
        _utc_axis(ax, hi - lo, self.t0_ns)


class ReportPanel(Protocol):
    """A figure a detector adds to the report, rendered after the timeline in the given order.

    ``figure`` builds a ``matplotlib.figure.Figure`` (not through pyplot) or
    returns None when it has nothing to show. A panel that raises is reported
    in the page, not fatal.
    """

    title: str

    def figure(self, ctx: ReportContext) -> Figure | None: ...


@dataclass(slots=True)
class _Incident:
    incident_id: str
    kind: str
    severity: str
    t_event_ns: int | None
    t_open_ns: int
    t_close_ns: int | None
    sensors: list[str] = field(default_factory=list)


def write_report(
    out_dir: Path,
    *,
    title: str,
    site: SiteConfig,
    alerts: list[dict],
    activity: pl.DataFrame,
    rejects: dict[str, dict[str, int]],
    panels: Sequence[ReportPanel] = (),
    summary: dict | None = None,
) -> Path:
    """Writes ``out_dir/index.html`` with ``timeline.png`` and one PNG per panel; returns the HTML path.

    ``activity`` has one row per decoded record (``ok``) or rejected input (not
    ``ok``): columns ``t_ns`` Int64, ``sensor`` Utf8, ``ok`` Boolean.
    ``rejects`` counts rejections per source and reason (``RejectLedger.by_source``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("panel-[0-9][0-9]-*.png"):
        stale.unlink()

    alerts = [a for a in alerts if isinstance(a, dict)]
    act = _clean_activity(activity)
    incidents = _incidents(alerts)
    t0, t1 = _span(act, alerts)
    ctx = ReportContext(site=site, alerts=tuple(alerts), t0_ns=t0, t1_ns=t1)

    timeline = _timeline_figure(ctx, act, incidents, title)
    _save(timeline, out_dir / TIMELINE_PNG)

    panel_html = []
    for n, panel in enumerate(panels, start=1):
        p_title = str(getattr(panel, "title", f"panel {n}"))
        name = f"panel-{n:02d}-{_slug(p_title)}.png"
        try:
            fig = panel.figure(ctx)
        except Exception as exc:  # a broken panel must not cost the whole report
            log.exception("report panel %r failed", p_title)
            panel_html.append(
                _section(p_title, f'<p class="err">panel failed: {_e(repr(exc))}</p>')
            )
            continue
        if fig is None:
            panel_html.append(_section(p_title, '<p class="note">nothing to show</p>'))
            continue
        if not fig.get_suptitle():
            fig.suptitle(p_title)
        _save(fig, out_dir / name)
        panel_html.append(_section(p_title, f'<img src="{name}" alt="{_e(p_title)}">'))

    page = _page(title, site, ctx, alerts, incidents, rejects, summary, panel_html)
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


# --- data ------------------------------------------------------------------


def _clean_activity(activity: pl.DataFrame | None) -> pl.DataFrame:
    schema = {"t_ns": pl.Int64, "sensor": pl.Utf8, "ok": pl.Boolean}
    if activity is None or activity.height == 0 or not set(schema) <= set(activity.columns):
        return pl.DataFrame(schema=schema)
    return activity.select(
        pl.col("t_ns").cast(pl.Int64), pl.col("sensor").cast(pl.Utf8), pl.col("ok").cast(pl.Boolean)
    ).drop_nulls()


def _incidents(alerts: list[dict]) -> list[_Incident]:
    groups: dict[str, list[dict]] = {}
    for a in alerts:
        if not _is_int(a.get("t_detect_ns")):
            continue
        key = a.get("incident_id") or a.get("alert_id") or f"#{len(groups)}"
        groups.setdefault(str(key), []).append(a)
    out = []
    for inc_id, msgs in groups.items():
        msgs.sort(key=lambda a: (_int_or(a.get("seq"), 0), a["t_detect_ns"]))
        first = msgs[0]
        closed = [a["t_detect_ns"] for a in msgs if a.get("state") == "closed"]
        sensors: list[str] = []
        for a in msgs:
            for s in a.get("sensors") or []:
                if str(s) not in sensors:
                    sensors.append(str(s))
        sev = max(
            (str(a.get("severity")) for a in msgs),
            key=lambda s: SEVERITIES.index(s) if s in SEVERITIES else -1,
        )
        t_event = first.get("t_event_ns")
        out.append(
            _Incident(
                incident_id=inc_id,
                kind=_kind_label(first),
                severity=sev if sev in SEVERITIES else "info",
                t_event_ns=t_event if _is_int(t_event) else None,
                t_open_ns=first["t_detect_ns"],
                t_close_ns=max(closed) if closed else None,
                sensors=sensors,
            )
        )
    out.sort(key=lambda i: (i.t_open_ns, i.incident_id))
    return out


def _span(act: pl.DataFrame, alerts: list[dict]) -> tuple[int, int]:
    times = []
    if act.height:
        times += [int(act["t_ns"].min()), int(act["t_ns"].max())]
    for a in alerts:
        times += [a[k] for k in ("t_event_ns", "t_detect_ns") if _is_int(a.get(k))]
    return (min(times), max(times)) if times else (0, 0)


def _lanes(site: SiteConfig, act: pl.DataFrame, incidents: list[_Incident]) -> list[str]:
    lanes = [s.id for s in site.sensors]
    extra = set(act["sensor"].unique().to_list()) if act.height else set()
    for inc in incidents:
        extra.update(inc.sensors)
    lanes += sorted(extra - set(lanes))
    if any(not (set(inc.sensors) & set(lanes)) for inc in incidents):
        lanes.insert(0, "(site)")
    return lanes


def _binned(
    act: pl.DataFrame, t0: int, t1: int
) -> tuple[int, int, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Bins activity: (bin width ns, bin count, sensor -> (ok counts, reject counts))."""
    span_s = max((t1 - t0) / NS, 1.0)
    bin_s = max(1, math.ceil(span_s / MAX_BINS))
    bin_ns = bin_s * NS
    n_bins = int((t1 - t0) // bin_ns) + 1
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if act.height == 0:
        return bin_ns, n_bins, out
    agg = (
        act.with_columns(((pl.col("t_ns") - t0) // bin_ns).alias("bin"))
        .group_by("sensor", "bin")
        .agg(pl.col("ok").sum().alias("n_ok"), (~pl.col("ok")).sum().alias("n_bad"))
        .sort("sensor", "bin")
    )
    for (sensor,), g in agg.group_by("sensor", maintain_order=True):
        ok = np.zeros(n_bins)
        bad = np.zeros(n_bins)
        idx = np.clip(g["bin"].to_numpy(), 0, n_bins - 1)
        np.add.at(ok, idx, g["n_ok"].to_numpy())
        np.add.at(bad, idx, g["n_bad"].to_numpy())
        out[str(sensor)] = (ok, bad)
    return bin_ns, n_bins, out


# --- figures ---------------------------------------------------------------


def _timeline_figure(
    ctx: ReportContext, act: pl.DataFrame, incidents: list[_Incident], title: str
) -> Figure:
    lanes = _lanes(ctx.site, act, incidents)
    n = max(len(lanes), 1)
    fig = Figure(figsize=(13, 1.4 + 0.75 * n), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(f"Alert timeline per sensor — {title}", loc="left", fontsize=11, pad=24)
    t0, t1 = ctx.t0_ns, ctx.t1_ns
    ax.set_ylim(0, n)
    if act.height == 0 and not incidents:
        ax.text(
            0.5, 0.5, "no activity and no alerts", ha="center", va="center", transform=ax.transAxes
        )
        ax.set_xticks([])
        ax.set_yticks([])
        return fig
    ctx.time_axis(ax)

    y_of = {s: n - 1 - i for i, s in enumerate(lanes)}  # first lane on top
    kinds = {s.id: s.kind for s in ctx.site.sensors}
    ax.set_yticks([y + 0.5 for y in y_of.values()])
    ax.set_yticklabels([f"{s}\n({kinds[s]})" if s in kinds else s for s in y_of], fontsize=8)
    ax.tick_params(axis="y", length=0)
    for y in range(1, n):
        ax.axhline(y, color="#d0d0d0", lw=0.8)

    bin_ns, n_bins, bins = _binned(act, t0, t1)
    edges = ctx.x(t0 + bin_ns * np.arange(n_bins + 1))
    for sensor, (ok, bad) in bins.items():
        y0 = y_of[sensor]
        rate = ok / (bin_ns / NS)
        peak = float(rate.max())
        if peak > 0:
            level = np.append(rate, rate[-1]) / peak * 0.4
            ax.fill_between(
                edges, y0 + 0.04, y0 + 0.04 + level, step="post", color=RATE_COLOUR, lw=0
            )
            ax.text(
                1.002,
                y0 + 0.25,
                f"{peak:.3g}/s",
                transform=ax.get_yaxis_transform(),
                fontsize=7,
                va="center",
            )
        hit = np.flatnonzero(bad)
        if hit.size:
            ax.vlines(
                edges[hit] + (edges[1] - edges[0]) / 2,
                y0 + 0.02,
                y0 + 0.22,
                color=REJECT_COLOUR,
                lw=1.0,
            )

    _draw_incidents(ax, ctx, incidents, y_of)

    handles = [Patch(color=RATE_COLOUR, label="decoded messages/s (lane max at right)")]
    handles.append(Line2D([], [], color=REJECT_COLOUR, lw=1.2, label="rejected input"))
    handles += [Patch(color=SEVERITY_COLOURS[s], label=s) for s in SEVERITIES]
    ax.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncol=len(handles),
        frameon=False,
        fontsize=8,
        handlelength=1.4,
        borderaxespad=0.2,
    )
    return fig


def _draw_incidents(
    ax: Axes, ctx: ReportContext, incidents: list[_Incident], y_of: dict[str, int]
) -> None:
    t0, t1 = ctx.t0_ns, ctx.t1_ns
    min_w = max((t1 - t0) // 300, NS // 2)  # keep a one-message incident visible
    slots: dict[str, list[int]] = {}  # lane -> end time of the last bar in each slot
    n_slots = 3
    label = len(incidents) <= MAX_LABELLED_INCIDENTS
    for inc in incidents:
        start = inc.t_open_ns
        end = max(inc.t_close_ns if inc.t_close_ns is not None else t1, start + min_w)
        colour = SEVERITY_COLOURS[inc.severity]
        lanes = [s for s in inc.sensors if s in y_of] or ["(site)"]
        for lane in lanes:
            ends = slots.setdefault(lane, [])
            k = next((i for i, e in enumerate(ends) if e < start), None)
            if k is None:
                k = len(ends) if len(ends) < n_slots else int(np.argmin(ends))
                if k == len(ends):
                    ends.append(end)
            ends[k] = end
            h = 0.46 / n_slots
            yc = y_of[lane] + 0.5 + h * (k + 0.5)
            x0, x1 = ctx.x(start), ctx.x(end)
            ax.barh(yc, x1 - x0, left=x0, height=h * 0.85, color=colour, alpha=0.9, lw=0)
            if inc.t_close_ns is None:  # still open at the end of the replay
                ax.plot([x1], [yc], marker=">", color=colour, ms=4)
            if inc.t_event_ns is not None and inc.t_event_ns < start:
                ax.plot(
                    [ctx.x(inc.t_event_ns), x0], [yc, yc], color=colour, lw=0.8, alpha=0.6, ls=":"
                )
            if label:
                ax.text(
                    x0,
                    yc,
                    f" {inc.kind}",
                    fontsize=6.5,
                    va="center",
                    ha="left",
                    clip_on=True,
                    color="#202020",
                )


def _utc_axis(ax: Axes, span_ns: int, t0_ns: int) -> None:
    locator = mdates.AutoDateLocator(tz=UTC, minticks=6, maxticks=14)
    ax.xaxis.set_major_locator(locator)
    fmt = "%m-%d %H:%M" if span_ns > 86400 * NS else "%H:%M:%S"
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz=UTC))
    day = datetime.fromtimestamp(t0_ns / NS, tz=UTC).strftime("%Y-%m-%d")
    ax.set_xlabel(f"time (UTC, {day})", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="#e8e8e8", lw=0.6)
    ax.set_axisbelow(True)


def _padded_span(t0: int, t1: int) -> tuple[int, int]:
    pad = max((t1 - t0) // 50, NS)
    return t0 - pad, t1 + pad


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    # A tight box keeps a panel's axis labels even when it set no layout engine.
    fig.savefig(path, dpi=DPI, format="png", bbox_inches="tight", pad_inches=0.15)


# --- HTML ------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;max-width:1500px;
color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:.9em}img{max-width:100%;border:1px solid #eee}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.mono{font-family:ui-monospace,Consolas,monospace;font-size:.9em}
.sev{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:.85em}
.note{color:#666}.err{color:#b00}
"""


def _page(
    title: str,
    site: SiteConfig,
    ctx: ReportContext,
    alerts: list[dict],
    incidents: list[_Incident],
    rejects: dict[str, dict[str, int]],
    summary: dict | None,
    panel_html: list[str],
) -> str:
    span = (
        f"{_utc(ctx.t0_ns)} — {_utc(ctx.t1_ns)} UTC" if ctx.t1_ns or ctx.t0_ns else "no timed data"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">site {_e(site.site.id)} · {_e(span)} · {len(alerts)} alert messages in '
        f"{len(incidents)} incidents · {sum(sum(r.values()) for r in rejects.values())} rejected inputs</p>",
        _section(
            "Alert timeline per sensor",
            f'<img src="{TIMELINE_PNG}" alt="alert timeline per sensor">',
        ),
    ]
    if summary:
        parts.append(_section("Summary", _summary_table(summary)))
    parts.append(_section("Alerts", _alerts_table(alerts)))
    parts.append(_section("Rejected input", _rejects_table(rejects)))
    parts += panel_html
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{_e(title)}</h2>\n{body}\n</section>"


def _alerts_table(alerts: list[dict]) -> str:
    if not alerts:
        return '<p class="note">no alerts</p>'
    rows = sorted(
        alerts,
        key=lambda a: (
            _int_or(a.get("t_detect_ns"), 0),
            str(a.get("incident_id")),
            _int_or(a.get("seq"), 0),
        ),
    )
    shown = rows[:MAX_ALERT_ROWS]
    out = [
        "<table><tr><th>time (UTC)</th><th>kind</th><th>severity</th><th>state</th>"
        "<th>sensors</th><th>summary</th><th>incident</th></tr>"
    ]
    for a in shown:
        sev = str(a.get("severity", ""))
        colour = SEVERITY_COLOURS.get(sev, "#555")
        t = a.get("t_detect_ns")
        sensors = a.get("sensors") or []
        out.append(
            "<tr>"
            f'<td class="mono">{_e(_utc(t) if _is_int(t) else "?")}</td>'
            f"<td>{_e(_kind_label(a))}</td>"
            f'<td><span class="sev" style="background:{colour}">{_e(sev)}</span></td>'
            f"<td>{_e(a.get('state', ''))}</td>"
            f"<td>{_e(', '.join(str(s) for s in sensors) if isinstance(sensors, list) else sensors)}</td>"
            f"<td>{_e(a.get('summary', ''))}</td>"
            f'<td class="mono">{_e(a.get("incident_id", ""))} #{_e(a.get("seq", ""))}</td>'
            "</tr>"
        )
    out.append("</table>")
    if len(rows) > len(shown):
        out.append(f'<p class="note">{len(rows) - len(shown)} more alert messages not listed</p>')
    return "\n".join(out)


def _rejects_table(rejects: dict[str, dict[str, int]]) -> str:
    items = [
        (str(src), str(reason), int(n))
        for src, by_reason in sorted(rejects.items(), key=lambda kv: str(kv[0]))
        for reason, n in sorted(by_reason.items(), key=lambda kv: str(kv[0]))
    ]
    if not items:
        return '<p class="note">no input was rejected</p>'
    out = ["<table><tr><th>sensor / source</th><th>reason</th><th>count</th></tr>"]
    out += [
        f'<tr><td>{_e(s)}</td><td class="mono">{_e(r)}</td><td class="num">{n}</td></tr>'
        for s, r, n in items
    ]
    out.append(
        f'<tr><th colspan="2">total</th><th class="num">{sum(n for _, _, n in items)}</th></tr>'
    )
    out.append("</table>")
    return "\n".join(out)


def _summary_table(summary: dict) -> str:
    flat: list[tuple[str, Any]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k in value:
                walk(f"{prefix}.{k}" if prefix else str(k), value[k])
        else:
            flat.append((prefix, value))

    walk("", summary)
    out = ["<table><tr><th>item</th><th>value</th></tr>"]
    for k, v in flat:
        text = v if isinstance(v, str) else json.dumps(v, default=str)
        cls = ' class="num"' if isinstance(v, int | float) and not isinstance(v, bool) else ""
        out.append(f"<tr><td>{_e(k)}</td><td{cls}>{_e(text)}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


# --- small helpers ---------------------------------------------------------


def _kind_label(alert: dict) -> str:
    kind = str(alert.get("kind", "?"))
    details = alert.get("details")
    if kind == "power_transient" and isinstance(details, dict) and details.get("subtype"):
        return f"{kind}/{details['subtype']}"
    return kind


def _utc(t_ns: int) -> str:
    dt = datetime.fromtimestamp(t_ns // NS, tz=UTC)
    return f"{dt:%Y-%m-%d %H:%M:%S}.{(t_ns % NS) // 1_000_000:03d}"


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40] or "panel"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_or(v: Any, default: int) -> int:
    return v if _is_int(v) else default
