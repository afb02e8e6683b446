"""Protected zones in the site frame: distance, closing speed and time to reach each one.

A zone is its ground outline (contract §1 polygon of [lat, lon]) projected into
the site's ENU plane; height is ignored, so a drone above a hall is inside it.
For a track with position p, velocity v and covariance P (horizontal parts):

* ``distance_m``: distance from p to the polygon (0 inside), nearest edge point q.
* ``closing_mps`` = -g·v with g = (p - q)/|p - q| the outward normal at q: the
  rate at which the distance shrinks; its sigma is sqrt(g' P_vv g).
* ``eta_s``: time until the straight-line path p + v·t first crosses the polygon
  (ray-edge intersection), None when that path misses the zone. Its sigma is the
  first-order propagation of the position spread along the path and the speed
  spread: eta·sqrt((σ_along/L)² + (σ_speed/speed)²), L the path length.
* ``cpa_m``, ``t_cpa_s``: closest approach of the straight-line path to the
  zone's nearest point (a drone passing by, not entering).

Vectorised NumPy over tracks and edges: a site has a handful of zones and a
few tens of tracks near them, so no kernel is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusion.config import SiteConfig
from fusion.geo import EnuFrame


@dataclass(frozen=True, slots=True)
class ZoneGeometry:
    name: str
    polygon: np.ndarray  # (k, 2) east, north metres
    alert_radius_m: float


def zone_geometry(site: SiteConfig, frame: EnuFrame) -> list[ZoneGeometry]:
    out = []
    for z in site.zones:
        lat = np.array([p[0] for p in z.polygon], dtype=np.float64)
        lon = np.array([p[1] for p in z.polygon], dtype=np.float64)
        x, y, _ = frame.to_enu(lat, lon, np.full(len(lat), site.site.alt_m))
        out.append(ZoneGeometry(z.name, np.column_stack([x, y]), float(z.alert_radius_m)))
    return out


@dataclass(slots=True)
class ZoneThreats:
    """Per zone (rows) and track (columns)."""

    distance_m: np.ndarray
    inside: np.ndarray
    closing_mps: np.ndarray
    closing_sigma_mps: np.ndarray
    eta_s: np.ndarray  # NaN: the straight path misses the zone
    eta_sigma_s: np.ndarray
    cpa_m: np.ndarray
    t_cpa_s: np.ndarray


def polygon_distance(px: np.ndarray, py: np.ndarray, polygon: np.ndarray):
    """(distance, inside, nearest x, nearest y) of points to a polygon (even-odd rule)."""
    px = np.asarray(px, dtype=np.float64)
    py = np.asarray(py, dtype=np.float64)
    a = polygon
    b = np.roll(polygon, -1, axis=0)
    ex = (b[:, 0] - a[:, 0])[:, None]
    ey = (b[:, 1] - a[:, 1])[:, None]
    len2 = ex * ex + ey * ey
    dx = px[None, :] - a[:, 0:1]
    dy = py[None, :] - a[:, 1:2]
    u = np.clip(np.where(len2 > 0, (dx * ex + dy * ey) / np.where(len2 > 0, len2, 1.0), 0.0), 0, 1)
    qx = a[:, 0:1] + u * ex
    qy = a[:, 1:2] + u * ey
    d = np.hypot(px[None, :] - qx, py[None, :] - qy)
    k = np.argmin(d, axis=0)
    cols = np.arange(px.shape[0])
    ay, by = a[:, 1:2], b[:, 1:2]
    straddle = (ay > py[None, :]) != (by > py[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = a[:, 0:1] + (py[None, :] - ay) * ex / (by - ay)
    inside = (np.sum(straddle & (px[None, :] < x_cross), axis=0) % 2) == 1
    dist = np.where(inside, 0.0, d[k, cols])
    return dist, inside, qx[k, cols], qy[k, cols]


def ray_entry_time(px, py, vx, vy, polygon: np.ndarray) -> np.ndarray:
    """Time until p + v·t first crosses an edge of the polygon (NaN: never, for t > 0)."""
    px, py, vx, vy = (np.asarray(v, dtype=np.float64) for v in (px, py, vx, vy))
    a = polygon
    b = np.roll(polygon, -1, axis=0)
    ex = (b[:, 0] - a[:, 0])[:, None]
    ey = (b[:, 1] - a[:, 1])[:, None]
    # Solve p + v t = a + e s: [v, -e] [t, s]' = a - p.
    den = vx[None, :] * (-ey) - vy[None, :] * (-ex)
    rx = a[:, 0:1] - px[None, :]
    ry = a[:, 1:2] - py[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (rx * (-ey) - ry * (-ex)) / den
        s = (vx[None, :] * ry - vy[None, :] * rx) / den
    ok = (np.abs(den) > 1e-12) & (t > 0) & (s >= 0) & (s <= 1)
    t = np.where(ok, t, np.inf)
    best = t.min(axis=0)
    return np.where(np.isfinite(best), best, np.nan)


def assess(
    zones: list[ZoneGeometry], pos: np.ndarray, vel: np.ndarray, cov: np.ndarray
) -> ZoneThreats:
    """Threat geometry of tracks (pos/vel (n, 3), cov (n, 6, 6)) against every zone."""
    n = pos.shape[0]
    nz = len(zones)
    shape = (nz, n)
    out = ZoneThreats(*(np.full(shape, np.nan) for _ in range(8)))
    out.inside = np.zeros(shape, dtype=bool)
    if n == 0 or nz == 0:
        return out
    px, py = pos[:, 0], pos[:, 1]
    vx, vy = vel[:, 0], vel[:, 1]
    speed = np.hypot(vx, vy)
    Pp = cov[:, 0:2, 0:2]
    Pv = cov[:, 3:5, 3:5]
    for zi, z in enumerate(zones):
        dist, inside, qx, qy = polygon_distance(px, py, z.polygon)
        gx, gy = px - qx, py - qy
        norm = np.hypot(gx, gy)
        # Inside, "closing" is meaningless; use the direction to the nearest edge anyway.
        norm = np.where(norm > 1e-9, norm, 1.0)
        gx, gy = gx / norm, gy / norm
        closing = -(gx * vx + gy * vy)
        c_var = gx * gx * Pv[:, 0, 0] + 2 * gx * gy * Pv[:, 0, 1] + gy * gy * Pv[:, 1, 1]
        eta = np.where(inside, 0.0, ray_entry_time(px, py, vx, vy, z.polygon))
        # First-order spread of the ETA: position along the path and speed.
        ux = np.where(speed > 1e-9, vx / np.where(speed > 1e-9, speed, 1.0), 0.0)
        uy = np.where(speed > 1e-9, vy / np.where(speed > 1e-9, speed, 1.0), 0.0)
        along_var = ux * ux * Pp[:, 0, 0] + 2 * ux * uy * Pp[:, 0, 1] + uy * uy * Pp[:, 1, 1]
        speed_var = ux * ux * Pv[:, 0, 0] + 2 * ux * uy * Pv[:, 0, 1] + uy * uy * Pv[:, 1, 1]
        path = eta * speed
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.sqrt(
                along_var / np.maximum(path, 1.0) ** 2 + speed_var / np.maximum(speed, 0.1) ** 2
            )
        eta_sigma = np.where(np.isfinite(eta) & ~inside, eta * rel, np.where(inside, 0.0, np.nan))
        # Closest approach of the straight path to the nearest zone point.
        with np.errstate(divide="ignore", invalid="ignore"):
            t_cpa = np.where(
                speed > 0.1, -((px - qx) * vx + (py - qy) * vy) / np.maximum(speed, 0.1) ** 2, 0.0
            )
        t_cpa = np.maximum(t_cpa, 0.0)
        cx, cy = px + vx * t_cpa, py + vy * t_cpa
        cpa, _, _, _ = polygon_distance(cx, cy, z.polygon)
        out.distance_m[zi] = dist
        out.inside[zi] = inside
        out.closing_mps[zi] = closing
        out.closing_sigma_mps[zi] = np.sqrt(np.maximum(c_var, 0.0))
        out.eta_s[zi] = eta
        out.eta_sigma_s[zi] = eta_sigma
        out.cpa_m[zi] = np.minimum(cpa, dist)
        out.t_cpa_s[zi] = t_cpa
    return out
