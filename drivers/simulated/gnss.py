"""Simulated GNSS receivers: a u-blox-like dual-band receiver under jamming and spoofing.

Physics, kept simple but consistent:

- Sky: GPS (31 satellites, 6 planes at 55°, 26 560 km) and Galileo (24
  satellites, 3 planes at 56°, 29 600 km) on circular Walker-like orbits,
  phased from the GPS epoch so that the sky depends on the scenario's date;
  Earth rotation by the IAU 1982 GMST approximation. Azimuth and elevation
  come from the receiver's ECEF position (fusion.geo).
- Signal: C/N0 = 33 + 15·sin(el)^0.6 dB-Hz (about 36 at 5°, 48 at zenith),
  plus a fixed per-satellite offset (σ 1.5 dB) and per-epoch noise that is
  larger at low elevation (multipath). Satellites below 5° are not reported;
  tracking needs 20 dB-Hz, use in the fix 25 dB-Hz and 10° elevation; four
  used satellites make a 3-D fix, three a 2-D fix.
- Jamming: J/N (dB) ramps linearly from -10 dB at switch-on to the peak over
  ``ramp_s``, holds, and ramps down to the end. Noise-like jamming raises the
  noise density to N0·(1 + J/N), so every L1 satellite loses 10·log10(1 + J/N)
  dB of C/N0 (the effective-C/N0 model for wideband interference, as in Kaplan
  & Hegarty, "Understanding GPS/GNSS", interference chapter). The receiver has
  two RF blocks (MON-RF): block 0 = L1/E1, block 1 = L2/L5; a jammer on a band
  lowers that block's AGC count and raises its jamInd. The receivers of a site
  stand metres apart and the jammer far away, so all see the same J/N; the
  truth row (once per episode) runs from +3 dB up to +3 dB down, whatever the
  band, and an episode that never reaches +3 dB has none.
- Spoofing: from ``t_start_s`` the spoofer captures the visible satellites one
  by one over ``CAPTURE_S`` seconds, all at one uniform C/N0 (the median
  authentic level plus ``power_advantage_db``); once all are captured the
  clock bias jumps by ``clock_jump_ns`` and the position walks away at
  ``drift_mps`` on a random bearing. The added signal power lowers the AGC
  slightly; spoofDetState reports 2 or 3 in some epochs.
- Simulator from the first byte (``SimulatorStart``): the receiver is fed by
  a GNSS signal simulator (cable or radiated) from power-on: it has never
  seen the real sky. The simulator generates the true sky (right satellites,
  right time) at the site's own position, so the position and clock tests see
  nothing, and gives every satellite one C/N0 (``level_dbhz``) plus a fixed
  per-satellite offset of σ ``spread_db`` (a simulator that adds a little
  spread) and the receiver's estimation noise (σ 0.4 dB). The receiver starts
  with nothing tracked and acquires satellites one by one: four usable ones
  by the first fix at ``t_start_s`` (the truth start, deadline +10 s), the
  rest over the following ``ACQUIRE_AFTER_FIX_S``. Receivers listed in
  ``nmea_only`` send NMEA only (no UBX).
- Position: the surveyed antenna position plus AR(1) noise (τ 30 s) scaled by
  the DOPs of the used satellites and by their C/N0 (about 1-1.5 m
  horizontally on a quiet sky). NMEA altitudes are above mean sea level with
  a fixed geoid separation of ``GEOID_SEP_M``.

Each 1 Hz epoch emits UBX NAV-PVT, NAV-SAT, NAV-STATUS, NAV-CLOCK, MON-RF and
NMEA RMC, GGA, GSA (per system), GSV (per system, NMEA 4.11 with signal ids).
Frames are packed with ``struct`` after the u-blox interface description and
checksummed with pyubx2's / pynmeagps' own checksum helpers: building them
through ``UBXMessage(**kwargs)`` costs ~28 ms for one NAV-SAT (too slow for
hours of data); the tests decode every frame with pyubx2/pynmeagps and rebuild
samples with ``UBXMessage`` / ``NMEAMessage`` (byte for byte where pyubx2 does
not round scaled fields).

Transport: a serial receiver's epoch goes out 50-90 ms after the epoch at its
baud rate (10 bits a byte; an epoch that does not fit in a second delays the
next, as a UART queue does) and is read in random chunks of 32-512 bytes; an
MQTT receiver publishes one payload per epoch on its ``raw`` topic
(``rampart/<site>/gnss/<id>/raw`` unless the sensor names another).
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from dataclasses import dataclass

import numpy as np
from pynmeagps.nmeahelpers import calc_checksum as nmea_calc_checksum
from pyubx2.ubxhelpers import calc_checksum as ubx_calc_checksum
from scipy.signal import lfilter

from drivers.serial_import import GPS_EPOCH_NS, gps_leap_seconds
from drivers.simulated.base import (
    JN_SWITCH_ON_DB,
    NS,
    FeedRow,
    JammingEpisode,
    SimContext,
    SimOutput,
    SpoofingEpisode,
    TruthRow,
)
from drivers.topics import stream_topic
from fusion.config import Sensor
from fusion.geo import EnuFrame, geodetic_to_ecef

GEOID_SEP_M = (
    46.0  # geoid above the WGS-84 ellipsoid near the simulated site (EGM96 ~ 44-47 m in NL)
)
ELEV_MASK_DEG = 5.0  # reported
NAV_MASK_DEG = 10.0  # used in the fix
TRACK_CN0 = 20.0  # dB-Hz to keep tracking
USE_CN0 = 25.0  # dB-Hz to use in the fix
JN_TRUTH_DB = 3.0  # contract: jamming starts when it reaches +3 dB J/N
CAPTURE_S = 10.0  # spoofer's capture of all satellites
UERE_M = 1.5  # user equivalent range error on a quiet sky (1 sigma)
NOISE_TAU_S = 30.0
NOISE_BW_DBHZ = 63.0  # 2 MHz front-end bandwidth: signal power relative to noise = C/N0 - 63 dB
AGC_PER_DB = 90.0  # AGC counts lost per dB of extra in-band power
JAM_DEADLINE_S = 10.0
SPOOF_DEADLINE_S = 30.0
SIM_START_DEADLINE_S = 10.0  # a receiver under a simulator from its first byte: after the fix
ACQUIRE_BEFORE_FIX_S = 4.0  # the first fix's first two satellites are acquired up to this early
ACQUIRE_AFTER_FIX_S = 8.0  # ...and the rest of the visible sky over this long after it
SIM_CN0_NOISE_DB = 0.4  # a receiver's C/N0 estimate of a constant strong signal jitters this much
DEFAULT_BAUD = 9600
LEAP_S = 18

_MU = 3.986004418e14  # m^3/s^2
_OMEGA_E = 7.2921151467e-5  # rad/s

_GPS, _GAL = 0, 2  # UBX gnssId
_SIGNAL_ID = {_GPS: 1, _GAL: 7}  # NMEA 4.11 signal ids: GPS L1 C/A, Galileo E1 C/B
_SYSTEM_ID = {_GPS: 1, _GAL: 3}  # NMEA 4.11 GSA system ids
_TALKER = {_GPS: "GP", _GAL: "GA"}


@dataclass(frozen=True, slots=True)
class SimulatorStart(SpoofingEpisode):
    """A GNSS signal simulator (or spoofer) feeding receivers from their first byte.

    ``t_start_s`` is the receivers' first fix (they start, with nothing tracked, at the
    scenario start); the drift and clock-jump fields of ``SpoofingEpisode`` are not used:
    the simulator transmits the site's true position and time.
    """

    level_dbhz: float = 45.0  # the one C/N0 the simulator gives every satellite
    spread_db: float = 0.0  # sigma of the fixed per-satellite C/N0 offsets it adds
    receivers: tuple[str, ...] = ()  # the receivers it feeds (empty: all)
    nmea_only: tuple[str, ...] = ()  # receivers that send NMEA only

    def feeds(self, receiver_id: str) -> bool:
        return not self.receivers or receiver_id in self.receivers


@dataclass(frozen=True, slots=True)
class _Constellation:
    gnss_id: np.ndarray  # (S,) UBX gnssId
    sv_id: np.ndarray  # (S,)
    radius_m: np.ndarray
    incl: np.ndarray  # rad
    raan: np.ndarray  # rad
    phase0: np.ndarray  # rad at the GPS epoch
    mean_motion: np.ndarray  # rad/s


def _constellation() -> _Constellation:
    rows = []
    # GPS: 6 planes A-F, 5-6 slots each, 31 satellites; Walker phasing between planes.
    per_plane = (6, 5, 5, 5, 5, 5)
    sv = 1
    for p, n in enumerate(per_plane):
        for k in range(n):
            rows.append((_GPS, sv, 26_559_700.0, 55.0, 60.0 * p, 360.0 * k / n + 15.0 * p))
            sv += 1
    # Galileo: Walker 24/3/1 at 56°.
    sv = 1
    for p in range(3):
        for k in range(8):
            rows.append((_GAL, sv, 29_600_318.0, 56.0, 120.0 * p + 10.0, 45.0 * k + 15.0 * p))
            sv += 1
    a = np.array(rows, dtype=np.float64)
    radius = a[:, 2]
    return _Constellation(
        gnss_id=a[:, 0].astype(np.int64),
        sv_id=a[:, 1].astype(np.int64),
        radius_m=radius,
        incl=np.radians(a[:, 3]),
        raan=np.radians(a[:, 4]),
        phase0=np.radians(a[:, 5]),
        mean_motion=np.sqrt(_MU / radius**3),
    )


def _sky(const: _Constellation, t_utc_s: np.ndarray, lat: float, lon: float, alt: float):
    """Azimuth, elevation (deg) and ENU unit line-of-sight vectors, shape (T, S)."""
    t_gps = t_utc_s - GPS_EPOCH_NS / NS
    u = const.phase0[None, :] + const.mean_motion[None, :] * t_gps[:, None]
    cu, su = np.cos(u), np.sin(u)
    co, so = np.cos(const.raan), np.sin(const.raan)
    ci, si = np.cos(const.incl), np.sin(const.incl)
    r = const.radius_m
    x_eci = r * (co * cu - so * su * ci)
    y_eci = r * (so * cu + co * su * ci)
    z_eci = r * (su * si)
    # GMST (IAU 1982, linear term) rotates inertial to Earth-fixed.
    days_j2000 = (t_utc_s - 946_728_000.0) / 86_400.0
    theta = np.radians((280.46061837 + 360.98564736629 * days_j2000) % 360.0)[:, None]
    ct, st = np.cos(theta), np.sin(theta)
    x = ct * x_eci + st * y_eci
    y = -st * x_eci + ct * y_eci
    z = np.broadcast_to(z_eci, x.shape)
    rx = np.array(geodetic_to_ecef(lat, lon, alt))
    dx, dy, dz = x - rx[0], y - rx[1], z - rx[2]
    la, lo = math.radians(lat), math.radians(lon)
    sl, cl, sn, cn = math.sin(la), math.cos(la), math.sin(lo), math.cos(lo)
    e = -sn * dx + cn * dy
    n = -sl * cn * dx - sl * sn * dy + cl * dz
    up = cl * cn * dx + cl * sn * dy + sl * dz
    rng = np.sqrt(e * e + n * n + up * up)
    el = np.degrees(np.arcsin(up / rng))
    az = np.degrees(np.arctan2(e, n)) % 360.0
    return az, el, np.stack((e / rng, n / rng, up / rng), axis=-1)


def jamming_truth_span(ep: JammingEpisode) -> tuple[float, float] | None:
    """Scenario seconds when J/N first reaches and last leaves +3 dB; None if it never does."""
    if ep.peak_jn_db < JN_TRUTH_DB or ep.t_end_s <= ep.t_start_s:
        return None
    if ep.ramp_s <= 0:
        return ep.t_start_s, ep.t_end_s
    need = ep.ramp_s * (JN_TRUTH_DB - JN_SWITCH_ON_DB) / (ep.peak_jn_db - JN_SWITCH_ON_DB)
    start, end = ep.t_start_s + need, ep.t_end_s - need
    return (start, end) if start <= end else None


def _truth(
    ctx: SimContext, jamming: list[JammingEpisode], spoofing: list[SpoofingEpisode]
) -> list[TruthRow]:
    rows = []
    for ep in jamming:
        span = jamming_truth_span(ep)
        if span is None or span[0] >= ctx.duration_s:
            continue
        t0 = ctx.at(span[0])
        rows.append(
            TruthRow(
                ep.object_id,
                "gnss_jamming",
                t0,
                ctx.at(span[1]),
                True,
                t0 + int(JAM_DEADLINE_S * NS),
            )
        )
    for ep in spoofing:
        if ep.t_start_s >= ctx.duration_s or ep.t_end_s <= ep.t_start_s:
            continue
        t0 = ctx.at(ep.t_start_s)
        deadline_s = SIM_START_DEADLINE_S if isinstance(ep, SimulatorStart) else SPOOF_DEADLINE_S
        rows.append(
            TruthRow(
                ep.object_id,
                "gnss_spoofing",
                t0,
                ctx.at(ep.t_end_s),
                True,
                t0 + int(deadline_s * NS),
            )
        )
    return rows


# -- frame builders ------------------------------------------------------------------------


def _ubx(cls: int, msg_id: int, payload: bytes) -> bytes:
    body = struct.pack("<BBH", cls, msg_id, len(payload)) + payload
    return b"\xb5\x62" + body + ubx_calc_checksum(body)


def _nmea(talker: str, msg_id: str, fields: list[str]) -> bytes:
    content = ",".join([talker + msg_id, *fields])
    return f"${content}*{nmea_calc_checksum(content)}\r\n".encode("ascii")


def _nmea_lat(lat: float) -> tuple[str, str]:
    a = abs(lat)
    deg = int(a)
    return f"{deg:02d}{(a - deg) * 60.0:08.5f}", "N" if lat >= 0 else "S"


def _nmea_lon(lon: float) -> tuple[str, str]:
    a = abs(lon)
    deg = int(a)
    return f"{deg:03d}{(a - deg) * 60.0:08.5f}", "E" if lon >= 0 else "W"


@dataclass(slots=True)
class _Epoch:
    """Everything one epoch's messages say (already noisy)."""

    utc_ns: int
    itow_ms: int
    fix_type: int  # 0 none, 2 2-D, 3 3-D
    lat: float
    lon: float
    h_ell_m: float
    vel_enu: tuple[float, float, float]
    h_acc_m: float
    v_acc_m: float
    pdop: float
    hdop: float
    vdop: float
    clk_bias_ns: int
    clk_drift_nsps: int
    spoof_state: int
    sats: list[
        tuple[int, int, int, int, int, float, bool]
    ]  # gnssId, svId, cno, elev, azim, prRes, used
    rf: list[tuple[int, int, int, int]]  # per block: jammingState, noisePerMS, agcCnt, jamInd
    msss: int


def _epoch_bytes(ep: _Epoch, nmea_only: bool = False) -> bytes:
    """One epoch's output as a u-blox receiver sends it: UBX first, then NMEA."""
    if nmea_only:
        return b"".join(_nmea_sentences(ep))
    return b"".join(_ubx_frames(ep) + _nmea_sentences(ep))


def _ubx_frames(ep: _Epoch) -> list[bytes]:
    sec, nano = divmod(ep.utc_ns, NS)
    tm = _gmtime(sec)
    fix = ep.fix_type >= 2
    n_used = sum(1 for s in ep.sats if s[6])
    ve, vn, vu = ep.vel_enu
    g_speed = math.hypot(ve, vn)
    head = math.degrees(math.atan2(ve, vn)) % 360.0
    out = []
    pvt = struct.pack(
        "<IHBBBBBBIiBBBBiiiiIIiiiiiIIHHIihH",
        ep.itow_ms,
        *tm,
        0b0111,  # valid: validDate, validTime, fullyResolved
        20 if fix else 500_000,  # tAcc ns
        nano,
        ep.fix_type,
        1 if fix else 0,  # flags: gnssFixOK
        0b1110_0000,  # flags2: confirmedAvai, confirmedDate, confirmedTime
        n_used,
        round(ep.lon * 1e7),
        round(ep.lat * 1e7),
        round(ep.h_ell_m * 1000),
        round((ep.h_ell_m - GEOID_SEP_M) * 1000),
        min(round(ep.h_acc_m * 1000), 0xFFFFFFFF),
        min(round(ep.v_acc_m * 1000), 0xFFFFFFFF),
        round(vn * 1000),
        round(ve * 1000),
        round(-vu * 1000),
        round(g_speed * 1000),
        round(head * 1e5),
        80 if fix else 20_000,  # sAcc mm/s
        round((15.0 if g_speed < 0.5 else 1.0) * 1e5),  # headAcc
        round(min(ep.pdop, 99.99) * 100),
        0 if fix else 1,  # flags3: invalidLlh
        0,  # reserved0
        0,  # headVeh
        0,  # magDec
        0,  # magAcc
    )
    out.append(_ubx(0x01, 0x07, pvt))
    sat_payload = [struct.pack("<IBBH", ep.itow_ms, 1, len(ep.sats), 0)]
    for gnss, sv, cno, elev, azim, prres, used in ep.sats:
        quality = 7 if cno >= USE_CN0 else 4 if cno >= TRACK_CN0 else 1
        flags = quality | (int(used) << 3) | (1 << 4) | (1 << 8) | (1 << 11) | (1 << 12)
        sat_payload.append(
            struct.pack("<BBBbhhI", gnss, sv, cno, elev, azim, round(prres * 10), flags)
        )
    out.append(_ubx(0x01, 0x35, b"".join(sat_payload)))
    status_flags = (1 if fix else 0) | 0b1100  # gpsFixOk, wknSet, towSet
    out.append(
        _ubx(
            0x01,
            0x03,
            struct.pack(
                "<IBBBBII",
                ep.itow_ms,
                ep.fix_type,
                status_flags,
                0,
                ep.spoof_state << 3,
                26_000,
                ep.msss,
            ),
        )
    )
    out.append(
        _ubx(
            0x01,
            0x22,
            struct.pack("<IiiII", ep.itow_ms, ep.clk_bias_ns, ep.clk_drift_nsps, 20, 300),
        )
    )
    rf = [struct.pack("<BBBB", 0, len(ep.rf), 0, 0)]
    for block, (jam_state, noise, agc, jam_ind) in enumerate(ep.rf):
        rf.append(
            struct.pack(
                "<BBBBIIHHBbBbB3s",
                block,
                jam_state,
                2,
                1,
                0,
                0,
                noise,
                agc,
                jam_ind,
                2,
                130,
                -3,
                128,
                b"\0\0\0",
            )
        )
    out.append(_ubx(0x0A, 0x38, b"".join(rf)))
    return out


def _nmea_sentences(ep: _Epoch) -> list[bytes]:
    sec, frac = divmod(ep.utc_ns, NS)
    tm = _gmtime(sec)
    fix = ep.fix_type >= 2
    n_used = sum(1 for s in ep.sats if s[6])
    ve, vn, _ = ep.vel_enu
    g_speed = math.hypot(ve, vn)
    head = math.degrees(math.atan2(ve, vn)) % 360.0
    out = []
    hhmmss = f"{tm[3]:02d}{tm[4]:02d}{tm[5]:02d}.{frac // 10_000_000:02d}"
    ddmmyy = f"{tm[2]:02d}{tm[1]:02d}{tm[0] % 100:02d}"
    if fix:
        lat_s, ns = _nmea_lat(ep.lat)
        lon_s, ew = _nmea_lon(ep.lon)
        knots = f"{g_speed * 1.943844:.3f}"
        cog = f"{head:.2f}" if g_speed >= 0.5 else ""
        out.append(
            _nmea(
                "GN",
                "RMC",
                [hhmmss, "A", lat_s, ns, lon_s, ew, knots, cog, ddmmyy, "", "", "A", "V"],
            )
        )
        out.append(
            _nmea(
                "GN",
                "GGA",
                [
                    hhmmss,
                    lat_s,
                    ns,
                    lon_s,
                    ew,
                    "1",
                    f"{n_used:02d}",
                    f"{ep.hdop:.2f}",
                    f"{ep.h_ell_m - GEOID_SEP_M:.1f}",
                    "M",
                    f"{GEOID_SEP_M:.1f}",
                    "M",
                    "",
                    "",
                ],
            )
        )
    else:
        out.append(
            _nmea("GN", "RMC", [hhmmss, "V", "", "", "", "", "", "", ddmmyy, "", "", "N", "V"])
        )
        out.append(
            _nmea("GN", "GGA", [hhmmss, "", "", "", "", "0", "00", "99.99", "", "", "", "", "", ""])
        )
    nav_mode = "3" if ep.fix_type == 3 else "2" if ep.fix_type == 2 else "1"
    dops = (
        [f"{ep.pdop:.2f}", f"{ep.hdop:.2f}", f"{ep.vdop:.2f}"]
        if fix
        else ["99.99", "99.99", "99.99"]
    )
    for gnss in (_GPS, _GAL):
        used = [f"{s[1]:02d}" for s in ep.sats if s[0] == gnss and s[6]]
        for k in range(0, max(len(used), 1), 12):
            svs = used[k : k + 12]
            out.append(
                _nmea(
                    "GN",
                    "GSA",
                    ["A", nav_mode, *svs, *([""] * (12 - len(svs))), *dops, str(_SYSTEM_ID[gnss])],
                )
            )
    for gnss in (_GPS, _GAL):
        sats = [s for s in ep.sats if s[0] == gnss]
        n_msg = max(1, (len(sats) + 3) // 4)
        for m in range(n_msg):
            fields = [str(n_msg), str(m + 1), f"{len(sats):02d}"]
            for s in sats[4 * m : 4 * m + 4]:
                fields += [
                    f"{s[1]:02d}",
                    f"{s[3]:02d}",
                    f"{s[4]:03d}",
                    f"{s[2]:02d}" if s[2] > 0 else "",
                ]
            fields.append(str(_SIGNAL_ID[gnss]))
            out.append(_nmea(_TALKER[gnss], "GSV", fields))
    return out


def _gmtime(sec: int) -> tuple[int, int, int, int, int, int]:
    days, rem = divmod(sec, 86_400)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    # civil-from-days (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms")
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    return y, m, d, hh, mm, ss


# -- the receiver model --------------------------------------------------------------------


def _epoch_times(ctx: SimContext) -> np.ndarray:
    """UTC ns of the 1 Hz epochs (whole seconds) inside the scenario."""
    first = -(-ctx.t0_ns // NS) * NS
    end = ctx.t0_ns + round(ctx.duration_s * NS)
    return np.arange(first, end, NS, dtype=np.int64)


def _dops(los: np.ndarray, used: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PDOP, HDOP, VDOP from the used satellites' line-of-sight vectors (batched (GᵀG)⁻¹)."""
    t, s = used.shape
    g = np.concatenate((-los, np.ones((t, s, 1))), axis=-1) * used[..., None]
    gtg = np.einsum("tsi,tsj->tij", g, g)
    ok = used.sum(axis=1) >= 4
    gtg[~ok] = np.eye(4)
    q = np.linalg.inv(gtg)
    hdop = np.sqrt(np.maximum(q[:, 0, 0] + q[:, 1, 1], 0.0))
    vdop = np.sqrt(np.maximum(q[:, 2, 2], 0.0))
    pdop = np.sqrt(hdop**2 + vdop**2)
    bad = np.full(t, 99.99)
    return np.where(ok, pdop, bad), np.where(ok, hdop, bad), np.where(ok, vdop, bad)


def _ar1(rng: np.random.Generator, n: int, tau_s: float) -> np.ndarray:
    """Unit-variance first-order Gauss-Markov noise at 1 Hz, started in its stationary state."""
    rho = math.exp(-1.0 / tau_s)
    w = rng.standard_normal(n) * math.sqrt(1.0 - rho * rho)
    x0 = rng.standard_normal()
    out, _ = lfilter([1.0], [1.0, -rho], w, zi=[rho * x0])
    return out


def _receiver_epochs(
    ctx: SimContext,
    sensor: Sensor,
    const: _Constellation,
    epochs_ns: np.ndarray,
    jamming: list[JammingEpisode],
    spoofing: list[SpoofingEpisode],
    rng: np.random.Generator,
) -> list[_Epoch]:
    site = ctx.site.site
    lat0 = sensor.lat if sensor.lat is not None else site.lat
    lon0 = sensor.lon if sensor.lon is not None else site.lon
    alt0 = sensor.alt_m if sensor.alt_m is not None else site.alt_m
    t_s = (epochs_ns - ctx.t0_ns) / NS
    n_t, n_s = len(epochs_ns), len(const.sv_id)
    az, el, los = _sky(const, epochs_ns / NS, lat0, lon0, alt0)

    # Authentic C/N0.
    sin_el = np.sin(np.radians(np.clip(el, 0.0, 90.0)))
    cn0 = 33.0 + 15.0 * sin_el**0.6 + rng.normal(0.0, 1.5, n_s)[None, :]
    cn0 += rng.standard_normal((n_t, n_s)) * (0.6 + 1.2 * (1.0 - sin_el))
    visible = el >= ELEV_MASK_DEG

    # Spoofing: capture order, uniform spoofed C/N0, drift and clock jump.
    offset_enu = np.zeros((n_t, 3))
    vel_enu = np.zeros((n_t, 3))
    clock_jump = np.zeros(n_t)
    spoof_state = np.ones(n_t, dtype=np.int64)
    extra_power = np.zeros(n_t)  # spoofer's in-band signal power relative to noise (linear)
    for ep in spoofing:
        if isinstance(ep, SimulatorStart):
            continue
        k0 = int(np.searchsorted(t_s, ep.t_start_s))
        if k0 >= n_t:
            continue
        order = rng.permutation(np.flatnonzero(visible[k0]))
        capture_t = np.full(n_s, ep.t_start_s + CAPTURE_S)
        if len(order):
            capture_t[order] = ep.t_start_s + CAPTURE_S * np.arange(len(order)) / len(order)
        level = float(np.median(cn0[k0, visible[k0]])) if visible[k0].any() else 42.0
        level += ep.power_advantage_db
        active = (t_s >= ep.t_start_s) & (t_s < ep.t_end_s)
        captured = active[:, None] & (t_s[:, None] >= capture_t[None, :])
        spoofed_cn0 = level + rng.normal(0.0, 0.3, (n_t, n_s))
        cn0 = np.where(captured, spoofed_cn0, cn0)
        extra_power += np.where(
            captured & visible, 10.0 ** ((spoofed_cn0 - NOISE_BW_DBHZ) / 10.0), 0.0
        ).sum(axis=1)
        t_full = ep.t_start_s + CAPTURE_S
        bearing = rng.uniform(0.0, 2.0 * math.pi)
        drifting = active & (t_s >= t_full)
        walk = np.where(drifting, ep.drift_mps * (t_s - t_full), 0.0)
        offset_enu[:, 0] += walk * math.sin(bearing)
        offset_enu[:, 1] += walk * math.cos(bearing)
        vel_enu[drifting, 0] += ep.drift_mps * math.sin(bearing)
        vel_enu[drifting, 1] += ep.drift_mps * math.cos(bearing)
        clock_jump += np.where(drifting, ep.clock_jump_ns, 0.0)
        u = rng.uniform(size=n_t)
        p2, p3 = np.where(drifting, 0.3, 0.2), np.where(drifting, 0.1, 0.03)
        spoof_state = np.where(
            active & (u < p3), 3, np.where(active & (u < p2 + p3), 2, spoof_state)
        )

    # A simulator from the first byte: its own C/N0, and satellites acquired from power-on.
    for ep in spoofing:
        if isinstance(ep, SimulatorStart) and ep.feeds(sensor.id):
            sim_cn0, acquired = _simulator_sky(ep, t_s, el, visible, rng)
            on = (t_s < ep.t_end_s)[:, None]
            cn0 = np.where(on, sim_cn0, cn0)
            visible &= acquired | ~on
            extra_power += np.where(
                on & visible, 10.0 ** ((sim_cn0 - NOISE_BW_DBHZ) / 10.0), 0.0
            ).sum(axis=1)

    # Jamming: J/N per band, summed over episodes.
    jn_l1 = np.zeros(n_t)
    jn_l2 = np.zeros(n_t)
    for ep in jamming:
        lin = 10.0 ** (ep.jn_db(t_s) / 10.0)
        if "L1" in ep.bands:
            jn_l1 += lin
        if "L2" in ep.bands or "L5" in ep.bands:
            jn_l2 += lin
    loss_l1 = 10.0 * np.log10(1.0 + jn_l1)
    loss_l2 = 10.0 * np.log10(1.0 + jn_l2)
    cn0 = cn0 - loss_l1[:, None]

    tracked = visible & (cn0 >= TRACK_CN0)
    used = tracked & (cn0 >= USE_CN0) & (el >= NAV_MASK_DEG)
    n_used = used.sum(axis=1)
    fix_type = np.where(n_used >= 4, 3, np.where(n_used == 3, 2, 0))
    pdop, hdop, vdop = _dops(los, used)
    mean_cn0 = np.where(n_used > 0, (cn0 * used).sum(axis=1) / np.maximum(n_used, 1), 0.0)
    degrade = np.clip(10.0 ** ((43.0 - mean_cn0) / 20.0), 0.5, 20.0)

    sigma_h = np.minimum(hdop, 10.0) * UERE_M * degrade / math.sqrt(2.0)
    sigma_v = np.minimum(vdop, 10.0) * UERE_M * degrade
    noise = np.stack([_ar1(rng, n_t, NOISE_TAU_S) for _ in range(3)], axis=1)
    enu = noise * np.stack((sigma_h, sigma_h, sigma_v), axis=1) + offset_enu
    local = EnuFrame(lat0, lon0, alt0)
    lat, lon, h = local.to_geodetic(enu[:, 0], enu[:, 1], enu[:, 2])
    vel = vel_enu + rng.normal(0.0, 0.02, (n_t, 3))

    clk_drift = rng.uniform(-80.0, 80.0)
    clk_bias = rng.uniform(-4e5, 4e5) + clk_drift * t_s + rng.normal(0.0, 3.0, n_t) + clock_jump

    # MON-RF per block: quiet baselines per receiver, then in-band power.
    agc0 = rng.uniform(4600.0, 5200.0), rng.uniform(3900.0, 4500.0)
    jam0 = rng.uniform(15.0, 30.0), rng.uniform(8.0, 16.0)
    noise0 = rng.uniform(80.0, 95.0), rng.uniform(70.0, 85.0)
    rise = (
        10.0 * np.log10(1.0 + jn_l1 + extra_power),
        10.0 * np.log10(1.0 + jn_l2),
    )
    jam_loss = (loss_l1, loss_l2)
    rf_blocks = []
    for b in range(2):
        agc = np.clip(agc0[b] - AGC_PER_DB * rise[b] + rng.normal(0.0, 25.0, n_t), 100.0, 8191.0)
        jam_ind = np.clip(jam0[b] + 5.5 * jam_loss[b] + rng.normal(0.0, 2.0, n_t), 0.0, 255.0)
        noise_ms = noise0[b] + 3.0 * jam_loss[b] + rng.normal(0.0, 1.5, n_t)
        state = np.where(jam_ind >= 80.0, np.where(fix_type >= 2, 2, 3), 1)
        rf_blocks.append((state, noise_ms, agc, jam_ind))

    leap = gps_leap_seconds(_date_of(int(epochs_ns[0]))) if n_t else LEAP_S
    prres = rng.normal(0.0, 0.6, (n_t, n_s))
    sat_order = np.lexsort((const.sv_id, const.gnss_id))
    last_fix = (lat0, lon0, alt0)
    out: list[_Epoch] = []
    for k in range(n_t):
        utc = int(epochs_ns[k])
        gps_ms = (utc - GPS_EPOCH_NS) // 1_000_000 + leap * 1000
        sats = []
        for s in sat_order:
            if not visible[k, s]:
                continue
            cno = round(cn0[k, s]) if tracked[k, s] else 0
            sats.append(
                (
                    int(const.gnss_id[s]),
                    int(const.sv_id[s]),
                    max(0, min(cno, 99)),
                    round(el[k, s]),
                    round(az[k, s]) % 360,
                    float(prres[k, s]) if used[k, s] else 0.0,
                    bool(used[k, s]),
                )
            )
        if fix_type[k] >= 2:
            last_fix = (float(lat[k]), float(lon[k]), float(h[k]))
        out.append(
            _Epoch(
                utc_ns=utc,
                itow_ms=int(gps_ms % 604_800_000),
                fix_type=int(fix_type[k]),
                lat=last_fix[0],
                lon=last_fix[1],
                h_ell_m=last_fix[2],
                vel_enu=(float(vel[k, 0]), float(vel[k, 1]), float(vel[k, 2])),
                h_acc_m=float(2.0 * sigma_h[k]) if fix_type[k] >= 2 else 99_999.0,
                v_acc_m=float(2.0 * sigma_v[k]) if fix_type[k] >= 2 else 99_999.0,
                pdop=float(pdop[k]),
                hdop=float(hdop[k]),
                vdop=float(vdop[k]),
                clk_bias_ns=round(clk_bias[k]),
                clk_drift_nsps=round(clk_drift),
                spoof_state=int(spoof_state[k]),
                sats=sats,
                rf=[
                    (int(st[k]), round(nz[k]), round(ag[k]), round(ji[k]))
                    for st, nz, ag, ji in rf_blocks
                ],
                msss=int(600_000 + (utc - int(epochs_ns[0])) // 1_000_000),
            )
        )
    return out


def _simulator_sky(
    ep: SimulatorStart,
    t_s: np.ndarray,
    el: np.ndarray,
    visible: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """C/N0 (T, S) under the simulator and which satellites the receiver has acquired."""
    n_t, n_s = el.shape
    offsets = rng.normal(0.0, ep.spread_db, n_s) if ep.spread_db > 0 else np.zeros(n_s)
    cn0 = ep.level_dbhz + offsets[None, :] + rng.normal(0.0, SIM_CN0_NOISE_DB, (n_t, n_s))
    k_fix = min(int(np.searchsorted(t_s, ep.t_start_s)), n_t - 1)
    t_fix = float(t_s[k_fix])
    # The first fix's four satellites are well above the navigation mask; the rest follow.
    high = rng.permutation(np.flatnonzero(visible[k_fix] & (el[k_fix] >= NAV_MASK_DEG + 5.0)))
    first = high[:4]
    acquire_t = t_fix + rng.uniform(0.5, ACQUIRE_AFTER_FIX_S, n_s)
    # The first two come earlier; the third and fourth at the fix (three would make a 2-D fix).
    acquire_t[first] = t_fix
    acquire_t[first[:2]] = t_fix - rng.uniform(1.0, ACQUIRE_BEFORE_FIX_S, len(first[:2]))
    return cn0, t_s[:, None] >= acquire_t[None, :]


def _date_of(utc_ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(utc_ns // NS, dt.UTC).date()


def _transport(
    ctx: SimContext,
    sensor: Sensor,
    epochs: list[_Epoch],
    rng: np.random.Generator,
    nmea_only: bool = False,
) -> list[FeedRow]:
    rows: list[FeedRow] = []
    if sensor.transport == "serial":
        byte_ns = 10 * NS / (sensor.baud or DEFAULT_BAUD)
        line_free = 0.0  # the UART sends one epoch after the other
        for ep in epochs:
            data = _epoch_bytes(ep, nmea_only)
            start = max(ep.utc_ns + rng.uniform(50e6, 90e6), line_free)
            pos = 0
            while pos < len(data):
                size = int(rng.integers(32, 513))
                end = min(len(data), pos + size)
                t_rx = start + end * byte_ns + rng.uniform(0.2e6, 1.5e6)
                rows.append(FeedRow(int(t_rx), "serial", sensor.id, data[pos:end]))
                pos = end
            line_free = start + len(data) * byte_ns
    else:
        topic = stream_topic(ctx.site.site.id, sensor, "raw")
        for ep in epochs:
            t_rx = ep.utc_ns + rng.uniform(60e6, 110e6) + rng.uniform(3e6, 25e6)
            rows.append(FeedRow(int(t_rx), "mqtt", topic, _epoch_bytes(ep, nmea_only)))
    # Receive times never go backwards on one stream (USB jitter is smaller than a read).
    last = -1
    out = []
    for r in rows:
        t = max(r.t_rx_ns, last)
        out.append(r if t == r.t_rx_ns else FeedRow(t, r.transport, r.channel, r.payload))
        last = t
    return out


def simulate_gnss(
    ctx: SimContext,
    sensors: list[Sensor],
    jamming: list[JammingEpisode],
    spoofing: list[SpoofingEpisode],
) -> SimOutput:
    """Byte streams of every GNSS receiver in ``sensors`` plus one truth row per episode."""
    out = SimOutput()
    const = _constellation()
    epochs_ns = _epoch_times(ctx)
    for sensor in sensors:
        if sensor.kind != "gnss":
            continue
        rng = ctx.rng("gnss:" + sensor.id)
        epochs = _receiver_epochs(ctx, sensor, const, epochs_ns, list(jamming), list(spoofing), rng)
        nmea_only = any(
            isinstance(ep, SimulatorStart) and sensor.id in ep.nmea_only for ep in spoofing
        )
        out.feeds.extend(_transport(ctx, sensor, epochs, rng, nmea_only))
    out.feeds.sort(key=lambda r: r.t_rx_ns)
    out.truth.extend(_truth(ctx, list(jamming), list(spoofing)))
    return out
