"""The report's drone map: zones and alert radii, radar plots, tracks by class, drone alerts.

A plan view of the site frame (east, north in metres, origin at the site):
each zone filled, its alert radius as a dashed outline; every radar plot as
a dot (grey: left unexplained, pale blue: taken by a track); every confirmed
track as a line coloured by its class at the end of the replay; where each
drone incident opened (and where its first ``drone_approach`` message was),
a marker coloured by severity and labelled with the track id; the radars and
RF sensors as black symbols.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon

from fusion.drone.settings import CLASSES
from fusion.drone.zones import ZoneGeometry, polygon_distance
from fusion.report import SEVERITY_COLOURS, ReportContext

if TYPE_CHECKING:
    from fusion.drone.detector import DroneDetector

CLASS_COLOURS = {"drone": "#d62728", "bird": "#2ca02c", "aircraft": "#1f77b4", "clutter": "#8c8c8c"}
MAX_PLOTS_DRAWN = 150_000


def alert_outline(zone: ZoneGeometry, n_rays: int = 360) -> np.ndarray:
    """Points at the alert radius around a zone, found by bisection along rays from its centroid."""
    c = zone.polygon.mean(axis=0)
    theta = np.linspace(0.0, 2.0 * np.pi, n_rays, endpoint=False)
    ux, uy = np.sin(theta), np.cos(theta)
    lo = np.zeros(n_rays)
    span = float(np.max(np.hypot(*(zone.polygon - c).T))) + zone.alert_radius_m + 1.0
    hi = np.full(n_rays, span)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        d, _, _, _ = polygon_distance(c[0] + mid * ux, c[1] + mid * uy, zone.polygon)
        inside = d <= zone.alert_radius_m
        lo = np.where(inside, mid, lo)
        hi = np.where(inside, hi, mid)
    r = 0.5 * (lo + hi)
    return np.column_stack([c[0] + r * ux, c[1] + r * uy])


def _incident_markers(alerts) -> list[tuple[str, dict]]:
    """Per drone incident: a circle where it opened, a triangle at its first drone_approach."""
    msgs = sorted(
        (a for a in alerts if a.get("kind") in ("drone_approach", "drone_detected")),
        key=lambda a: (a.get("t_detect_ns") or 0, a.get("seq") or 0),
    )
    seen_open: set = set()
    seen_approach: set = set()
    out = []
    for a in msgs:
        d = a.get("details") or {}
        if a.get("state") == "closed" or not d.get("enu_m") or d.get("position_unknown"):
            continue
        inc = a.get("incident_id")
        if inc not in seen_open:
            seen_open.add(inc)
            if a.get("kind") == "drone_detected":
                out.append(("o", a))
        if a.get("kind") == "drone_approach" and inc not in seen_approach:
            seen_approach.add(inc)
            out.append(("^", a))
    return out


class DroneMapPanel:
    title = "Drone map: zones, radar plots, tracks by class, drone alerts"

    def __init__(self, detector: DroneDetector):
        self.det = detector

    def figure(self, ctx: ReportContext) -> Figure | None:
        det = self.det
        tracks = det.tracks_frame()
        if not det.zones and tracks.height == 0 and not det.plot_history:
            return None
        fig = Figure(figsize=(11, 10), dpi=110, layout="constrained")
        ax = fig.add_subplot()
        ax.set_aspect("equal")
        ax.set_xlabel("east of site origin (m)")
        ax.set_ylabel("north of site origin (m)")
        ax.grid(color="#eeeeee", lw=0.6)
        extent = [0.0]
        for z in det.zones:
            ax.add_patch(
                Polygon(z.polygon, closed=True, fc="#ffd8a8", ec="#e67700", lw=1.2, zorder=2)
            )
            ring = alert_outline(z)
            ax.plot(*np.vstack([ring, ring[:1]]).T, color="#e67700", lw=1.0, ls="--", zorder=2)
            c = z.polygon.mean(axis=0)
            ax.text(c[0], c[1], z.name, ha="center", va="center", fontsize=8, zorder=3)
            extent.append(float(np.abs(ring).max()))
        if det.plot_history:
            pts = np.concatenate(det.plot_history)
            if pts.shape[0] > MAX_PLOTS_DRAWN:
                pts = pts[:: int(np.ceil(pts.shape[0] / MAX_PLOTS_DRAWN))]
            took = pts[:, 3] > 0
            ax.scatter(pts[~took, 0], pts[~took, 1], s=1, c="#bdbdbd", lw=0, zorder=1)
            ax.scatter(pts[took, 0], pts[took, 1], s=1, c="#9ecae1", lw=0, zorder=1)
        if tracks.height:
            for (tid,), g in tracks.group_by("track_id", maintain_order=True):
                g = g.sort("t_ns")
                cls = g["class"][-1]
                colour = CLASS_COLOURS.get(cls, "#000000")
                lw = 1.6 if cls == "drone" else 0.8
                ax.plot(g["x_m"].to_numpy(), g["y_m"].to_numpy(), color=colour, lw=lw, zorder=4)
                if cls in ("drone", "aircraft"):
                    ax.text(
                        g["x_m"][-1], g["y_m"][-1], f" {tid}", fontsize=7, color=colour, zorder=5
                    )
            moving = tracks.filter(tracks["class"] != "clutter")
            if moving.height:
                extent.append(float(np.percentile(np.abs(moving[["x_m", "y_m"]].to_numpy()), 99)))
        for marker, a in _incident_markers(ctx.alerts):
            d = a.get("details") or {}
            enu = d["enu_m"]
            colour = SEVERITY_COLOURS.get(a.get("severity"), "#000000")
            ax.scatter(
                [enu[0]], [enu[1]], s=70, marker=marker, c=colour, ec="black", lw=0.6, zorder=6
            )
            label = d.get("track_id") if d.get("track_id") is not None else d.get("uas_id") or "RF"
            ax.annotate(
                str(label),
                (enu[0], enu[1]),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=7,
                zorder=6,
            )
        for sid, r in det.tracker.radars.items():
            ax.scatter(
                [r.position_enu[0]], [r.position_enu[1]], marker="s", c="black", s=30, zorder=7
            )
            ax.annotate(
                sid, r.position_enu[:2], xytext=(4, -10), textcoords="offset points", fontsize=7
            )
        for sid, p in det.rf.sensors.items():
            ax.scatter([p[0]], [p[1]], marker="D", c="black", s=22, zorder=7)
            ax.annotate(sid, p[:2], xytext=(4, 4), textcoords="offset points", fontsize=7)
        half = max(extent) * 1.08 if max(extent) > 0 else 1000.0
        half = min(half, 12_000.0)
        ax.set_xlim(-half, half)
        ax.set_ylim(-half, half)
        handles = [
            Line2D([], [], color=CLASS_COLOURS[c], lw=2, label=f"track: {c}") for c in CLASSES
        ]
        handles += [
            Patch(fc="#ffd8a8", ec="#e67700", label="zone"),
            Line2D([], [], color="#e67700", ls="--", label="alert radius"),
            Line2D([], [], marker=".", ls="", color="#bdbdbd", label="radar plot"),
            Line2D(
                [],
                [],
                marker="^",
                ls="",
                color="#d62728",
                mec="black",
                label="drone_approach (by severity)",
            ),
            Line2D([], [], marker="o", ls="", color="#1f77b4", mec="black", label="drone_detected"),
        ]
        ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.9)
        return fig
