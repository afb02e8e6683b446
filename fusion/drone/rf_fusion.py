"""RF drone-link, Remote ID and DroneID detections: contacts, and their match to radar tracks.

An RF sensor reports drone links it hears (contract §2.2): a frequency, a
received power, often a bearing and a protocol name, and, when it decodes
Remote ID (ASTM F3411 broadcast) or DJI DroneID, the aircraft's serial number,
its position and its pilot's. This module keeps **RF contacts** (one per
emitter heard) and matches each report to the confirmed radar tracks:

* A report with a position (Remote ID / DroneID) matches the track nearest in
  horizontal Mahalanobis distance, with the track's own position covariance
  plus ``remote_id_sigma_m`` (GNSS error and latency), inside the 99.9 %
  chi-square(2) gate. The track gains the ``uas_id`` and operator location.
* A report with only a bearing matches a track whose bearing from the RF
  sensor lies within 3 sigma, sigma² = ``bearing_sigma_deg``² + the track's own
  bearing variance (its cross-range spread over range). With several tracks in
  the gate the nearest wins and the match is flagged ambiguous.

Only links whose protocol is a drone protocol (``[drone.rf] protocols``) or
that carry Remote ID fields count. Contacts without position are keyed by
sensor, protocol and band and told apart by bearing (a frequency-hopping link
changes channel every report); contacts with a serial number by that number.

A track is *RF-corroborated* when at least ``corroborate_min`` unambiguous
bearing matches fell within ``window_s``; a Remote ID position match counts at
once. Repeated matching keeps a coincidental bird-in-the-beam from inheriting a
drone's link for long.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from fusion.drone.settings import RfSettings
from fusion.geo import EnuFrame
from fusion.records import RfDetection, RfDetections

NS = 1_000_000_000
CHI2_2_999 = 13.8155  # 99.9 % gate, 2 degrees of freedom


@dataclass(slots=True)
class RfContact:
    """One emitter as the RF sensors hear it."""

    key: str
    sensor: str
    protocol: str
    uas_id: str | None
    first_ns: int
    last_ns: int
    reports: deque = field(default_factory=deque)  # report times within the window
    bearing_deg: float | None = None
    freq_hz: float = 0.0
    rssi_dbm: float = 0.0
    uas_enu: np.ndarray | None = None  # last reported position (site ENU)
    uas_t_ns: int = 0
    uas_vel: np.ndarray | None = None  # from successive reported positions
    uas_lat: float | None = None
    uas_lon: float | None = None
    uas_alt_m: float | None = None
    operator_lat: float | None = None
    operator_lon: float | None = None
    track_id: int | None = None  # radar track it last matched
    track_match_ns: int = -(1 << 62)

    def established(self, now_ns: int, window_ns: int, min_reports: int) -> bool:
        return sum(1 for t in self.reports if now_ns - t <= window_ns) >= min_reports

    def identity(self) -> dict:
        return {
            "rf_sensor": self.sensor,
            "protocol": self.protocol,
            "uas_id": self.uas_id,
            "freq_mhz": round(self.freq_hz / 1e6, 1),
            "rssi_dbm": round(self.rssi_dbm, 1),
            "bearing_deg": None if self.bearing_deg is None else round(self.bearing_deg, 1),
            "uas_lat": self.uas_lat,
            "uas_lon": self.uas_lon,
            "uas_alt_m": self.uas_alt_m,
            "operator_lat": self.operator_lat,
            "operator_lon": self.operator_lon,
        }


@dataclass(slots=True)
class TrackRf:
    """What the RF side knows about one radar track."""

    bearing_hits: deque = field(default_factory=deque)  # unambiguous bearing-match times
    remote_id_ns: int = -(1 << 62)  # last Remote ID position match
    contact_key: str | None = None

    def corroborated(self, now_ns: int, window_ns: int, min_hits: int) -> bool:
        recent = sum(1 for t in self.bearing_hits if now_ns - t <= window_ns)
        return recent >= min_hits or now_ns - self.remote_id_ns <= window_ns

    def remote_id(self, now_ns: int, window_ns: int) -> bool:
        return now_ns - self.remote_id_ns <= window_ns


@dataclass(frozen=True, slots=True)
class TrackSnapshot:
    """Confirmed radar tracks as the RF matcher needs them."""

    track_id: np.ndarray  # (n,)
    pos: np.ndarray  # (n, 3) site ENU
    pos_cov: np.ndarray  # (n, 3, 3)
    candidate: np.ndarray  # (n,) bool: could carry a drone link (not clutter, not aircraft)


def _band(freq_hz: float) -> str:
    for lo, hi, name in ((0.4e9, 1.0e9, "sub-GHz"), (2.3e9, 2.5e9, "2.4G"), (5.1e9, 5.9e9, "5.8G")):
        if lo <= freq_hz <= hi:
            return name
    return f"{freq_hz / 1e9:.1f}G"


def _wrap_deg(d: float) -> float:
    return (d + 180.0) % 360.0 - 180.0


class RfFusion:
    """RF contacts and their matches to radar tracks (see module docstring)."""

    def __init__(self, frame: EnuFrame, rf_sensors: dict[str, np.ndarray], settings: RfSettings):
        self.frame = frame
        self.sensors = rf_sensors  # sensor id -> ENU position
        self.settings = settings
        self.window_ns = int(settings.window_s * NS)
        self.contacts: dict[str, RfContact] = {}
        self.tracks: dict[int, TrackRf] = {}
        self._serial = 0
        self.ignored_reports = 0  # not a drone protocol and no Remote ID

    # --- contacts ------------------------------------------------------------------------
    def _is_drone_link(self, d: RfDetection) -> bool:
        if d.uas_id or (d.uas_lat is not None and d.uas_lon is not None):
            return True
        return d.protocol is not None and d.protocol.lower() in self.settings.protocols

    def _contact_for(self, sensor: str, d: RfDetection, t_ns: int) -> RfContact:
        protocol = (d.protocol or "unknown").lower()
        if d.uas_id:
            key = f"rid:{d.uas_id}"
            c = self.contacts.get(key)
            if c is None:
                c = RfContact(key, sensor, protocol, d.uas_id, t_ns, t_ns)
                self.contacts[key] = c
            return c
        # Without a serial number (DroneID is not decoded in every report), the same
        # emitter is the contact of this sensor, protocol and band in the same direction.
        band = _band(d.freq_hz)
        best, best_d = None, math.inf
        for c in self.contacts.values():
            if c.sensor != sensor or c.protocol != protocol or _band(c.freq_hz) != band:
                continue
            if t_ns - c.last_ns > self.window_ns:
                continue
            if d.bearing_deg is None or c.bearing_deg is None:
                dd = 0.0
            else:
                dd = abs(_wrap_deg(d.bearing_deg - c.bearing_deg))
                if dd > 3.0 * self.settings.bearing_sigma_deg:
                    continue
            if dd < best_d:
                best, best_d = c, dd
        if best is not None:
            return best
        self._serial += 1
        key = f"rf:{sensor}:{protocol}:{band}:{self._serial}"
        c = RfContact(key, sensor, protocol, None, t_ns, t_ns)
        self.contacts[key] = c
        return c

    def _update_contact(self, c: RfContact, d: RfDetection, t_ns: int) -> None:
        c.last_ns = t_ns
        c.reports.append(t_ns)
        while c.reports and t_ns - c.reports[0] > self.window_ns:
            c.reports.popleft()
        c.freq_hz = d.freq_hz
        c.rssi_dbm = d.rssi_dbm
        if d.bearing_deg is not None:
            if c.bearing_deg is None:
                c.bearing_deg = d.bearing_deg
            else:
                # A light average: the contact's direction, not each noisy report.
                c.bearing_deg = (
                    c.bearing_deg + 0.5 * _wrap_deg(d.bearing_deg - c.bearing_deg)
                ) % 360.0
        if d.uas_lat is not None and d.uas_lon is not None:
            alt = d.uas_alt_m if d.uas_alt_m is not None else self.frame.origin[2]
            x, y, z = self.frame.to_enu(d.uas_lat, d.uas_lon, alt)
            pos = np.array([float(x), float(y), float(z)])
            if c.uas_enu is not None and t_ns - c.uas_t_ns > 0:
                dt = (t_ns - c.uas_t_ns) / NS
                if dt <= self.settings.window_s:
                    v = (pos - c.uas_enu) / dt
                    c.uas_vel = v if c.uas_vel is None else c.uas_vel + 0.5 * (v - c.uas_vel)
                else:
                    c.uas_vel = None
            c.uas_enu = pos
            c.uas_t_ns = t_ns
            c.uas_lat, c.uas_lon = float(d.uas_lat), float(d.uas_lon)
            c.uas_alt_m = None if d.uas_alt_m is None else float(d.uas_alt_m)
        if d.operator_lat is not None and d.operator_lon is not None:
            c.operator_lat, c.operator_lon = float(d.operator_lat), float(d.operator_lon)

    # --- matching --------------------------------------------------------------------------
    def _match_position(self, c: RfContact, tracks: TrackSnapshot) -> int | None:
        if c.uas_enu is None or tracks.track_id.size == 0:
            return None
        s2 = self.settings.remote_id_sigma_m**2
        d = tracks.pos[:, :2] - c.uas_enu[None, :2]
        S = tracks.pos_cov[:, :2, :2] + s2 * np.eye(2)[None]
        det = S[:, 0, 0] * S[:, 1, 1] - S[:, 0, 1] * S[:, 1, 0]
        inv00, inv11, inv01 = S[:, 1, 1] / det, S[:, 0, 0] / det, -S[:, 0, 1] / det
        d2 = d[:, 0] ** 2 * inv00 + 2 * d[:, 0] * d[:, 1] * inv01 + d[:, 1] ** 2 * inv11
        k = int(np.argmin(d2))
        return int(tracks.track_id[k]) if d2[k] <= CHI2_2_999 else None

    def _match_bearing(
        self, sensor_pos: np.ndarray, bearing: float, tracks: TrackSnapshot
    ) -> tuple[int | None, bool]:
        if tracks.track_id.size == 0:
            return None, False
        if not tracks.candidate.any():
            return None, False
        rel = tracks.pos[:, :2] - sensor_pos[None, :2]
        rng = np.maximum(np.hypot(rel[:, 0], rel[:, 1]), 1.0)
        brg = np.degrees(np.arctan2(rel[:, 0], rel[:, 1])) % 360.0
        # Track bearing variance: position spread across the line of sight over range.
        tx, ty = rel[:, 1] / rng, -rel[:, 0] / rng
        P = tracks.pos_cov
        cross = tx * tx * P[:, 0, 0] + 2 * tx * ty * P[:, 0, 1] + ty * ty * P[:, 1, 1]
        var = (
            self.settings.bearing_sigma_deg**2
            + np.degrees(np.sqrt(np.maximum(cross, 0.0)) / rng) ** 2
        )
        k_sigma = np.abs((bearing - brg + 180.0) % 360.0 - 180.0) / np.sqrt(var)
        inside = np.flatnonzero((k_sigma <= 3.0) & tracks.candidate)
        if inside.size == 0:
            return None, False
        best = inside[np.argmin(k_sigma[inside])]
        return int(tracks.track_id[best]), inside.size > 1

    def update(self, record: RfDetections, tracks: TrackSnapshot) -> list[RfContact]:
        """Takes one RF report; returns the contacts it updated (matched or not)."""
        t_ns = record.t_ns
        sensor_pos = self.sensors.get(record.sensor)
        touched: list[RfContact] = []
        for d in record.detections:
            if not self._is_drone_link(d):
                self.ignored_reports += 1
                continue
            c = self._contact_for(record.sensor, d, t_ns)
            self._update_contact(c, d, t_ns)
            touched.append(c)
            has_position = d.uas_lat is not None and d.uas_lon is not None
            tid = self._match_position(c, tracks) if has_position else None
            if tid is not None:
                tr = self.tracks.setdefault(tid, TrackRf())
                tr.remote_id_ns = t_ns
                tr.contact_key = c.key
            elif not has_position and d.bearing_deg is not None and sensor_pos is not None:
                # A reported position outranks a bearing: no bearing match when one was given.
                tid, ambiguous = self._match_bearing(sensor_pos, d.bearing_deg, tracks)
                if tid is not None and not ambiguous:
                    tr = self.tracks.setdefault(tid, TrackRf())
                    tr.bearing_hits.append(t_ns)
                    while tr.bearing_hits and t_ns - tr.bearing_hits[0] > self.window_ns:
                        tr.bearing_hits.popleft()
                    if tr.corroborated(t_ns, self.window_ns, self.settings.corroborate_min):
                        tr.contact_key = c.key
                else:
                    tid = None
            if tid is not None:
                c.track_id = tid
                c.track_match_ns = t_ns
        return touched

    def flags(self, track_ids: np.ndarray, now_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """(bearing-corroborated, Remote-ID-matched) booleans for tracks."""
        n = track_ids.size
        bearing = np.zeros(n, dtype=bool)
        rid = np.zeros(n, dtype=bool)
        for k, tid in enumerate(track_ids.tolist()):
            tr = self.tracks.get(tid)
            if tr is None:
                continue
            bearing[k] = tr.corroborated(now_ns, self.window_ns, self.settings.corroborate_min)
            rid[k] = tr.remote_id(now_ns, self.window_ns)
        return bearing, rid

    def contact_of_track(self, tid: int, now_ns: int) -> RfContact | None:
        tr = self.tracks.get(tid)
        if tr is None or tr.contact_key is None:
            return None
        if not tr.corroborated(now_ns, self.window_ns, self.settings.corroborate_min):
            return None
        return self.contacts.get(tr.contact_key)

    def forget_track(self, tid: int) -> None:
        self.tracks.pop(tid, None)

    def expire(self, now_ns: int) -> list[RfContact]:
        """Drops contacts unheard for a window; returns them."""
        gone = [c for c in self.contacts.values() if now_ns - c.last_ns > self.window_ns]
        for c in gone:
            del self.contacts[c.key]
        return gone

    def unmatched(self, c: RfContact, now_ns: int) -> bool:
        """True when the contact has not matched a radar track within the window."""
        return now_ns - c.track_match_ns > self.window_ns
