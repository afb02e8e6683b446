"""WGS-84 geodetic <-> ECEF <-> local ENU (contract: x east, y north, z up).

Closed-form forward transform and Bowring's iteration-free inverse, after
J. Zhu, "Conversion of Earth-centered Earth-fixed coordinates to geodetic
coordinates", IEEE Trans. AES 30(3), 1994, and the ENU rotation of
B. Hofmann-Wellenhof et al., GNSS (Springer 2008) §10.2.
"""

from __future__ import annotations

import numpy as np

WGS84_A = 6378137.0
WGS84_F = 1.0 / 298.257223563
WGS84_B = WGS84_A * (1.0 - WGS84_F)
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
WGS84_EP2 = WGS84_E2 / (1.0 - WGS84_E2)


def geodetic_to_ecef(lat_deg, lon_deg, alt_m):
    lat = np.radians(lat_deg)
    lon = np.radians(lon_deg)
    sin_lat = np.sin(lat)
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sin_lat * sin_lat)
    x = (n + alt_m) * np.cos(lat) * np.cos(lon)
    y = (n + alt_m) * np.cos(lat) * np.sin(lon)
    z = (n * (1.0 - WGS84_E2) + alt_m) * sin_lat
    return x, y, z


def ecef_to_geodetic(x, y, z):
    p = np.hypot(x, y)
    theta = np.arctan2(z * WGS84_A, p * WGS84_B)
    lon = np.arctan2(y, x)
    lat = np.arctan2(
        z + WGS84_EP2 * WGS84_B * np.sin(theta) ** 3,
        p - WGS84_E2 * WGS84_A * np.cos(theta) ** 3,
    )
    sin_lat = np.sin(lat)
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sin_lat * sin_lat)
    # Near the poles p/cos(lat) is ill-conditioned; use the z form there.
    cos_lat = np.cos(lat)
    alt = np.where(
        np.abs(cos_lat) > 1e-6,
        p / np.where(np.abs(cos_lat) > 1e-6, cos_lat, 1.0) - n,
        np.abs(z) / np.maximum(np.abs(sin_lat), 1e-12) - n * (1.0 - WGS84_E2),
    )
    return np.degrees(lat), np.degrees(lon), alt


class EnuFrame:
    """The site's local tangent plane, centred on an origin (lat, lon, alt_m)."""

    def __init__(self, lat_deg: float, lon_deg: float, alt_m: float):
        self.origin = (float(lat_deg), float(lon_deg), float(alt_m))
        self._o = np.array(geodetic_to_ecef(lat_deg, lon_deg, alt_m), dtype=np.float64)
        lat, lon = np.radians(lat_deg), np.radians(lon_deg)
        sl, cl, so, co = np.sin(lat), np.cos(lat), np.sin(lon), np.cos(lon)
        # Rows: east, north, up unit vectors in ECEF.
        self._r = np.array(
            [[-so, co, 0.0], [-sl * co, -sl * so, cl], [cl * co, cl * so, sl]], dtype=np.float64
        )

    def to_enu(self, lat_deg, lon_deg, alt_m):
        ecef = np.stack(np.broadcast_arrays(*geodetic_to_ecef(lat_deg, lon_deg, alt_m)), axis=-1)
        enu = (ecef - self._o) @ self._r.T
        return enu[..., 0], enu[..., 1], enu[..., 2]

    def to_geodetic(self, x, y, z):
        enu = np.stack(
            np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float), np.asarray(z, float)),
            axis=-1,
        )
        ecef = enu @ self._r + self._o
        return ecef_to_geodetic(ecef[..., 0], ecef[..., 1], ecef[..., 2])


def polar_to_enu(range_m, az_deg, el_deg):
    """Sensor-centred range/azimuth (clockwise from north)/elevation to ENU offsets."""
    az = np.radians(az_deg)
    el = np.radians(el_deg)
    horiz = range_m * np.cos(el)
    return horiz * np.sin(az), horiz * np.cos(az), range_m * np.sin(el)


def enu_to_polar(x, y, z):
    horiz = np.hypot(x, y)
    rng = np.sqrt(horiz * horiz + z * z)
    az = np.degrees(np.arctan2(x, y)) % 360.0
    el = np.degrees(np.arctan2(z, horiz))
    return rng, az, el
