"""Radar plots (range, azimuth, elevation, radial velocity) into the site's ENU frame.

Method: *converted measurements with debiasing*. Each plot's polar position is
converted to Cartesian with the multiplicative debiasing of the unbiased
converted measurement (UCM), and given the "average true covariance"
conditioned on the measured values: L. Mo, X. Song, Y. Zhou, Z. K. Sun and
Y. Bar-Shalom, "Unbiased converted measurements for tracking", IEEE Trans. AES
34(3), 1998, §III (2-D), extended to 3-D as in J. Suchomski, "Three-dimensional
tracking with debiased consistent converted measurements", IEEE Trans. AES 35(2),
1999. The radial velocity is kept as measured and enters the filter through
an extended-Kalman row (``kernels``), after Z. Duan, C. Han and X. R. Li,
"Sequential nonlinear tracking filter with range-rate measurements in
spherical coordinates", FUSION 2004.

Why converted measurements rather than an EKF on the polar position: the
position update becomes linear, so the IMM's models share one exact update and
gating is a plain Mahalanobis test in metres. Debiasing matters here: with an
elevation error of 2° the consistency test of D. Lerro and Y. Bar-Shalom
("Tracking with debiased consistent converted measurements versus EKF",
IEEE Trans. AES 29(3), 1993), r·σ²/σ_r < 0.4, fails beyond about 1.6 km.

Angles are the radar's own (azimuth clockwise from true north, elevation
above its local horizontal); the radar's local ENU frame is rotated into the
site's, which matters for radars kilometres from the origin.

Accuracy follows a radar datasheet's two-point form: the spread at high SNR
(``snr_high_db`` and above) and at the detection threshold, linear in dB in
between (measurement error falls as 1/sqrt(SNR): M. I. Skolnik, *Introduction
to Radar Systems*, 3rd ed., ch. 6). A receiver clips strong returns: plots at
its saturation level (``snr_max_db``) carry only a lower bound on SNR and RCS,
so those two fields are dropped from them (censored) for the averages that
use them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from fusion.geo import EnuFrame

# Index of each accuracy parameter in the array handed to the kernel.
A_RANGE_HI, A_RANGE_LO = 0, 1  # range sigma (m) at high SNR / at threshold
A_AZ_HI, A_AZ_LO = 2, 3  # azimuth sigma (rad)
A_EL_HI, A_EL_LO = 4, 5  # elevation sigma (rad)
A_VR = 6  # radial velocity sigma (m/s)
A_SNR_HIGH = 7  # dB: the high-SNR accuracy applies from here up
A_THRESHOLD = 8  # dB: detection threshold (low accuracy, Swerling memoryless origin)
A_ASSUMED_Z = 9  # m (site ENU up) assumed height of plots without elevation
A_ASSUMED_Z_SIGMA = 10  # m
A_CLUTTER_POLAR = 11  # false plots per scan per (m·rad·rad) of range/azimuth/elevation
A_VR_SPAN = 12  # m/s: width of the Doppler interval false plots spread over
A_MIN_RANGE = 13  # m
A_SNR_MAX = 14  # dB: receiver saturation; plots at or above it carry no usable SNR/RCS (0: none)
N_ACC = 15


@dataclass(frozen=True, slots=True)
class RadarAccuracy:
    """A radar's measurement spread and false-plot density (datasheet figures)."""

    range_sigma_m: tuple[float, float] = (3.0, 5.0)  # at high SNR, at threshold
    az_sigma_deg: tuple[float, float] = (0.5, 1.0)
    el_sigma_deg: tuple[float, float] = (1.0, 2.0)
    vr_sigma_mps: float = 0.3
    snr_high_db: float = 25.0
    threshold_db: float = 13.0
    false_plots_per_scan: float = 2.0
    min_range_m: float = 30.0
    max_range_m: float = 5000.0
    el_min_deg: float = -5.0
    el_max_deg: float = 40.0
    vr_ambiguity_mps: float = 40.0  # false plots spread over +-this; 0: no Doppler folding model
    pd_default: float = 0.8  # detection probability when plots carry no SNR
    assumed_height_m: float = 60.0  # for plots without elevation (2-D radar), above the site origin
    assumed_height_sigma_m: float = 60.0
    snr_max_db: float = 60.0  # receiver saturation: a clipped SNR is only a lower bound (0: none)


@dataclass(frozen=True, slots=True)
class RadarGeometry:
    """Where a radar stands in the site frame and how its local axes turn into the site's."""

    sensor_id: str
    position_enu: np.ndarray  # (3,) metres
    rotation: np.ndarray  # (3, 3): site_enu = rotation @ local_enu
    accuracy: RadarAccuracy
    acc: np.ndarray  # (N_ACC,) float64, the kernel's view of ``accuracy``

    @staticmethod
    def build(
        sensor_id: str,
        frame: EnuFrame,
        lat_deg: float,
        lon_deg: float,
        alt_m: float,
        accuracy: RadarAccuracy,
    ) -> RadarGeometry:
        x, y, z = frame.to_enu(lat_deg, lon_deg, alt_m)
        pos = np.array([float(x), float(y), float(z)])
        rot = local_to_site_rotation(frame.origin[0], frame.origin[1], lat_deg, lon_deg)
        return RadarGeometry(sensor_id, pos, rot, accuracy, accuracy_array(accuracy))


def _ecef_rows(lat_deg: float, lon_deg: float) -> np.ndarray:
    """Rows: the east, north and up unit vectors of a point's local frame, in ECEF."""
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    sl, cl, so, co = math.sin(lat), math.cos(lat), math.sin(lon), math.cos(lon)
    return np.array([[-so, co, 0.0], [-sl * co, -sl * so, cl], [cl * co, cl * so, sl]])


def local_to_site_rotation(
    site_lat: float, site_lon: float, sensor_lat: float, sensor_lon: float
) -> np.ndarray:
    """Rotation taking a vector in a sensor's local ENU frame into the site's ENU frame."""
    return _ecef_rows(site_lat, site_lon) @ _ecef_rows(sensor_lat, sensor_lon).T


def accuracy_array(acc: RadarAccuracy) -> np.ndarray:
    out = np.zeros(N_ACC)
    out[A_RANGE_HI], out[A_RANGE_LO] = acc.range_sigma_m
    out[A_AZ_HI], out[A_AZ_LO] = np.radians(acc.az_sigma_deg)
    out[A_EL_HI], out[A_EL_LO] = np.radians(acc.el_sigma_deg)
    out[A_VR] = acc.vr_sigma_mps
    out[A_SNR_HIGH] = acc.snr_high_db
    out[A_THRESHOLD] = acc.threshold_db
    out[A_ASSUMED_Z] = acc.assumed_height_m
    out[A_ASSUMED_Z_SIGMA] = acc.assumed_height_sigma_m
    # False plots are taken as uniform in range, azimuth and elevation (a radar's
    # CFAR cells are), so their density in metres grows as 1/(r² cos el) near the radar.
    span = max(acc.max_range_m - acc.min_range_m, 1.0)
    el_span = max(math.radians(acc.el_max_deg - acc.el_min_deg), 1e-3)
    out[A_CLUTTER_POLAR] = max(acc.false_plots_per_scan, 1e-6) / (span * 2.0 * math.pi * el_span)
    out[A_VR_SPAN] = 2.0 * acc.vr_ambiguity_mps if acc.vr_ambiguity_mps > 0 else 100.0
    out[A_MIN_RANGE] = acc.min_range_m
    out[A_SNR_MAX] = acc.snr_max_db
    return out


@dataclass(slots=True)
class ConvertedPlots:
    """One scan's plots in the site frame, as arrays (one row per plot)."""

    z: np.ndarray  # (n, 3) debiased ENU position
    R: np.ndarray  # (n, 3, 3) its covariance
    vr: np.ndarray  # (n,) radial velocity (m/s; NaN when absent)
    vr_var: np.ndarray  # (n,)
    has_vr: np.ndarray  # (n,) int8
    los: np.ndarray  # (n, 3) unit line of sight from the radar, site frame
    clutter_density: np.ndarray  # (n,) false plots per m³ (per m³·m/s with Doppler)
    range_m: np.ndarray  # (n,)
    snr_lin: np.ndarray  # (n,) NaN when absent
    rcs_lin: np.ndarray  # (n,) m², NaN when absent

    @property
    def n(self) -> int:
        return int(self.z.shape[0])

    @staticmethod
    def from_buffers(out_f: np.ndarray, out_i: np.ndarray, n: int) -> ConvertedPlots:
        """Views of a ``_convert_into`` output (layout ``PLOT_FLOATS``): no copy but ``has_vr``."""
        cols = []
        o = 0
        for w in PLOT_FLOATS:
            block = out_f[o * n : (o + w) * n]
            cols.append(block.reshape((n, 3, 3) if w == 9 else (n, 3) if w == 3 else (n,)))
            o += w
        z, R, vr, vr_var, los, dens, rng_m, snr, rcs = cols
        has_vr = out_i[n : 2 * n].astype(np.int8)
        return ConvertedPlots(z, R, vr, vr_var, has_vr, los, dens, rng_m, snr, rcs)


# Float columns of a converted scan, each a block of n rows in one buffer: z, R, vr,
# vr_var, los, clutter density, range, SNR, RCS. Ints: plot_slot (n), has_vr (n).
PLOT_FLOATS = (3, 9, 1, 1, 3, 1, 1, 1, 1)
N_PLOT_FLOATS = sum(PLOT_FLOATS)


def convert_plots(plots: np.ndarray, radar: RadarGeometry) -> ConvertedPlots:
    """Converts a ``RadarScan.plots`` array (columns ``PLOT_COLUMNS``) into the site frame."""
    plots = np.ascontiguousarray(plots, dtype=np.float64).reshape(-1, 6)
    n = plots.shape[0]
    out_f = np.empty(n * N_PLOT_FLOATS)
    out_i = np.empty(2 * n, dtype=np.int64)
    _convert_into(plots, radar.position_enu, radar.rotation, radar.acc, out_f, out_i)
    return ConvertedPlots.from_buffers(out_f, out_i, n)


@njit(cache=True, error_model="numpy")
def _plot_views(out_f, out_i, n):
    """(z, R, vr, vr_var, has_vr, los, density, range, snr, rcs) as views (layout ``PLOT_FLOATS``)."""
    z = out_f[0 : 3 * n].reshape((n, 3))
    R = out_f[3 * n : 12 * n].reshape((n, 3, 3))
    vr = out_f[12 * n : 13 * n]
    vr_var = out_f[13 * n : 14 * n]
    los = out_f[14 * n : 17 * n].reshape((n, 3))
    dens = out_f[17 * n : 18 * n]
    rng_m = out_f[18 * n : 19 * n]
    snr = out_f[19 * n : 20 * n]
    rcs = out_f[20 * n : 21 * n]
    has_vr = out_i[n : 2 * n]
    return z, R, vr, vr_var, has_vr, los, dens, rng_m, snr, rcs


@njit(cache=True, error_model="numpy")
def _convert_into(plots, sensor_pos, rot, acc, out_f, out_i):
    """``_convert_plots`` into one float and one int buffer (layout ``_plot_views``)."""
    z, R, vr, vr_var, has_vr, los, dens, rng_m, snr, rcs = _plot_views(out_f, out_i, plots.shape[0])
    _convert_plots(
        plots, sensor_pos, rot, acc, z, R, vr, vr_var, has_vr, los, dens, rng_m, snr, rcs
    )


@njit(cache=True, error_model="numpy")
def _sigma_at(snr_db: float, hi: float, lo: float, snr_high: float, threshold: float) -> float:
    """Datasheet accuracy: ``hi`` at ``snr_high`` and above, ``lo`` at threshold, linear in dB."""
    if not np.isfinite(snr_db) or snr_high <= threshold:
        return lo
    q = (snr_high - snr_db) / (snr_high - threshold)
    q = min(1.0, max(0.0, q))
    return hi + (lo - hi) * q


@njit(cache=True, error_model="numpy")
def _convert_plots(
    plots,
    sensor_pos,
    rot,
    acc,
    z_out,
    R_out,
    vr_out,
    vr_var_out,
    has_vr_out,
    los_out,
    dens_out,
    range_out,
    snr_out,
    rcs_out,
):
    """Debiased polar -> ENU conversion with the measured-value average true covariance."""
    n = plots.shape[0]
    zl = np.empty(3)
    Rl = np.empty((3, 3))
    tmp = np.empty((3, 3))
    for k in range(n):
        r = max(plots[k, 0], 1.0)
        a = math.radians(plots[k, 1])
        snr_db = plots[k, 5]
        sr = _sigma_at(snr_db, acc[A_RANGE_HI], acc[A_RANGE_LO], acc[A_SNR_HIGH], acc[A_THRESHOLD])
        sa = _sigma_at(snr_db, acc[A_AZ_HI], acc[A_AZ_LO], acc[A_SNR_HIGH], acc[A_THRESHOLD])
        el_known = np.isfinite(plots[k, 2])
        if el_known:
            e = math.radians(plots[k, 2])
            se = _sigma_at(snr_db, acc[A_EL_HI], acc[A_EL_LO], acc[A_SNR_HIGH], acc[A_THRESHOLD])
        else:
            # A 2-D radar: place the plot at the assumed height, with that height's spread.
            dz = acc[A_ASSUMED_Z] - sensor_pos[2]
            e = math.asin(min(1.0, max(-1.0, dz / r)))
            se = min(0.3, acc[A_ASSUMED_Z_SIGMA] / r)
        le = math.exp(-0.5 * se * se)  # E[cos(elevation error)]
        le2 = math.exp(-2.0 * se * se)
        ce = le if el_known else 1.0  # the factor applied (none for an assumed angle)
        la = math.exp(-0.5 * sa * sa)
        la2 = math.exp(-2.0 * sa * sa)
        ce_, sne, ca, sna = math.cos(e), math.sin(e), math.cos(a), math.sin(a)
        xm, ym, zm = r * ce_ * sna, r * ce_ * ca, r * sne
        # Applied (A, B) and true (At, Bt) multiplicative factors of the horizontal and
        # vertical components: x_u = x_m / A, E[x_true | measured] = At · x_m.
        A = la * ce
        B = ce
        At = la * le
        Bt = le
        zl[0] = xm / A
        zl[1] = ym / A
        zl[2] = zm / B
        r2 = r * r + sr * sr
        c2e, s2e, c2a, s2a = math.cos(2 * e), math.sin(2 * e), math.cos(2 * a), math.sin(2 * a)
        ecos = 0.5 * (1.0 + c2e * le2)  # E[cos² e_true | measured]
        esin = 0.5 * (1.0 - c2e * le2)
        # R = (x_u - E[x|m])(x_u - E[x|m])' + Cov(x|m), written out per entry.
        fh = 1.0 / (A * A) - 2.0 * At / A
        Rl[0, 0] = xm * xm * fh + r2 * ecos * 0.5 * (1.0 - c2a * la2)
        Rl[1, 1] = ym * ym * fh + r2 * ecos * 0.5 * (1.0 + c2a * la2)
        Rl[0, 1] = xm * ym * fh + r2 * ecos * 0.5 * s2a * la2
        Rl[1, 0] = Rl[0, 1]
        Rl[2, 2] = zm * zm * (1.0 / (B * B) - 2.0 * Bt / B) + r2 * esin
        fxz = 1.0 / (A * B) - Bt / A - At / B
        Rl[0, 2] = xm * zm * fxz + r2 * 0.5 * s2e * le2 * la * sna
        Rl[1, 2] = ym * zm * fxz + r2 * 0.5 * s2e * le2 * la * ca
        Rl[2, 0] = Rl[0, 2]
        Rl[2, 1] = Rl[1, 2]
        # Into the site frame: z = s + Rot zl, R = Rot Rl Rot'.
        for i in range(3):
            z_out[k, i] = sensor_pos[i] + rot[i, 0] * zl[0] + rot[i, 1] * zl[1] + rot[i, 2] * zl[2]
            los_out[k, i] = rot[i, 0] * ce_ * sna + rot[i, 1] * ce_ * ca + rot[i, 2] * sne
        for i in range(3):
            for j in range(3):
                tmp[i, j] = Rl[i, 0] * rot[j, 0] + Rl[i, 1] * rot[j, 1] + Rl[i, 2] * rot[j, 2]
        for i in range(3):
            for j in range(3):
                R_out[k, i, j] = (
                    rot[i, 0] * tmp[0, j] + rot[i, 1] * tmp[1, j] + rot[i, 2] * tmp[2, j]
                )
        for i in range(3):
            for j in range(i + 1, 3):
                s = 0.5 * (R_out[k, i, j] + R_out[k, j, i])
                R_out[k, i, j] = s
                R_out[k, j, i] = s
        vr = plots[k, 3]
        if np.isfinite(vr):
            vr_out[k] = vr
            vr_var_out[k] = acc[A_VR] * acc[A_VR]
            has_vr_out[k] = 1
        else:
            vr_out[k] = np.nan
            vr_var_out[k] = np.nan
            has_vr_out[k] = 0
        rr = max(r, acc[A_MIN_RANGE])
        dens = acc[A_CLUTTER_POLAR] / (rr * rr * max(math.cos(e), 0.05))
        if has_vr_out[k] == 1:
            dens /= acc[A_VR_SPAN]
        dens_out[k] = dens
        range_out[k] = r
        # A saturated receiver clips the SNR: the RCS derived from it is only a lower
        # bound, so such plots are censored out of the SNR and RCS averages.
        saturated = np.isfinite(snr_db) and acc[A_SNR_MAX] > 0.0 and snr_db >= acc[A_SNR_MAX] - 0.05
        snr_out[k] = 10.0 ** (snr_db / 10.0) if np.isfinite(snr_db) and not saturated else np.nan
        rcs = plots[k, 4]
        rcs_out[k] = 10.0 ** (rcs / 10.0) if np.isfinite(rcs) and not saturated else np.nan
