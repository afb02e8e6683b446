"""``DroneDetector``: radar scans and RF reports in, ``drone_approach`` / ``drone_detected`` out.

Each radar scan goes through the tracker (``tracker``), every confirmed track
is classified (``classify``, with RF corroboration from ``rf_fusion``) and
measured against the zones (``zones``). A track becomes a *likely drone* when
its drone probability has stayed at or above ``p_drone_alert`` for
``p_drone_persist_s`` and it is old enough (``min_track_age_s``, ``min_hits``);
it stays one until the probability falls below ``p_drone_clear``.

One incident per drone contact:

* it opens as ``drone_detected`` (severity low) when a likely drone is not
  closing on any zone, or directly as ``drone_approach`` when it is inside a
  zone, or inside a zone's alert radius and closing at ``min_closing_mps`` or
  more (and by more than twice the closing speed's own spread);
* a ``drone_detected`` incident is upgraded in place to ``drone_approach`` when
  that becomes true; severity then follows the time to go (``eta_high_s``,
  ``eta_critical_s``; critical inside the zone);
* a ``drone_approach`` incident closes when the drone leaves every alert radius
  by ``leave_margin_m`` (a new ``drone_detected`` incident follows if it is still
  tracked), when its track is lost, or when it is no longer a likely drone.

Updates are throttled: a new message when kind or severity changes, else at
most every ``update_interval_s`` and only when something moved (50 m, 20 % of
the ETA, the class, the RF identity), and at least every ``heartbeat_s``.

RF-only contacts (a drone link or Remote ID heard ``min_reports`` times within
``window_s`` with no radar track matching it) get their own incident, from the
bearing (``drone_detected``) or the reported position (``drone_approach`` when
that closes on a zone as above). When a radar track later matches the
contact, the track takes over the incident, so the SOC sees one incident.

Everything is driven by data time; nothing reads a clock.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from fusion.config import SiteConfig
from fusion.detector import TRACKS_SCHEMA, Finding
from fusion.drone import kernels as K
from fusion.drone.classify import classify, flicker_index, median_nis, rcs_level_db
from fusion.drone.kinematics import TurnState
from fusion.drone.measurement import RadarGeometry
from fusion.drone.rf_fusion import RfContact, RfFusion, TrackSnapshot
from fusion.drone.settings import CLASSES, DroneSettings
from fusion.drone.tracker import MultiTargetTracker, ScanResult
from fusion.drone.zones import ZoneThreats, assess, zone_geometry
from fusion.geo import EnuFrame
from fusion.records import RadarScan, RfDetection, RfDetections

log = logging.getLogger("rampart.drone")

NS = 1_000_000_000
APPROACH, DETECTED = "drone_approach", "drone_detected"
SEV_ORDER = ("info", "low", "medium", "high", "critical")
COMPASS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
MOVE_UPDATE_M = 50.0  # a position change that justifies an update
ETA_UPDATE_FRACTION = 0.2
REACQUIRE_GATE2 = 13.8155  # chi-square(2) 99.9 % quantile
_WARM_UP_T0_NS = 1_000_000_000 * NS  # warm_up's synthetic scans: an arbitrary data time


@dataclass(slots=True)
class _TrackInfo:
    """Per confirmed track: classification persistence, sensors, incident link."""

    track_id: int
    likely_since_ns: int | None = None
    likely: bool = False
    below_since_ns: int | None = None  # a likely drone's probability below p_drone_clear since
    sensors: set[str] = field(default_factory=set)
    incident: str | None = None  # key of the incident about this track
    last_x: np.ndarray | None = None  # last state and covariance while it has an incident
    last_P: np.ndarray | None = None
    last_t_ns: int = 0
    last_max_disp_m: float = 0.0
    last_hover_s: float = 0.0


@dataclass(slots=True)
class _Lost:
    """A drone incident whose radar track was lost, waiting for a re-formed track."""

    key: str
    x: np.ndarray  # (6,) last state
    P: np.ndarray  # (6, 6)
    t_ns: int
    uas_id: str | None
    why: str
    max_disp_m: float  # the drone's features that a re-formed track inherits
    hover_s: float


@dataclass(slots=True)
class _Incident:
    key: str
    kind: str
    severity: str
    t_event_ns: int
    last_sent_ns: int
    last_pos: np.ndarray | None = None
    last_eta: float | None = None
    last_class: str = ""
    last_uas: str | None = None
    track_id: int | None = None
    contact_key: str | None = None
    approach_since_ns: int | None = None
    sensors: tuple[str, ...] = ()


@dataclass(slots=True)
class _Subject:
    """What an incident is about at this moment, ready to be judged against the zones."""

    pos: np.ndarray  # (3,)
    vel: np.ndarray  # (3,)
    cov: np.ndarray  # (6, 6)
    sensors: tuple[str, ...]
    confidence: float
    details: dict


def speed_and_spread(x: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal speed and its spread along the estimated course, u' P_vv u.

    Along the course, not averaged over directions: a track whose velocity is
    pinned radially by Doppler but loose across the line of sight (clutter at
    range) has a cross-range "speed" only as certain as that cross-range spread.
    """
    vx, vy = x[:, 3], x[:, 4]
    speed = np.hypot(vx, vy)
    moving = speed > 0.1
    ux = np.where(moving, vx / np.where(moving, speed, 1.0), 1.0 / np.sqrt(2.0))
    uy = np.where(moving, vy / np.where(moving, speed, 1.0), 1.0 / np.sqrt(2.0))
    var = ux * ux * P[:, 3, 3] + 2.0 * ux * uy * P[:, 3, 4] + uy * uy * P[:, 4, 4]
    return speed, np.sqrt(np.maximum(var, 0.0))


def _r(x: float | None, nd: int = 1) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), nd)


def _compass(dx: float, dy: float) -> str:
    b = math.degrees(math.atan2(dx, dy)) % 360.0
    return COMPASS[int((b + 22.5) // 45) % 8]


class DroneDetector:
    """Drone approach detection over every radar and RF sensor of a site."""

    name = "drone"
    consumes = (RadarScan, RfDetections)

    def __init__(self, site: SiteConfig, settings: DroneSettings | None = None):
        self.site = site
        self.settings = settings if settings is not None else DroneSettings.from_site(site)
        s = site.site
        self.frame = EnuFrame(s.lat, s.lon, s.alt_m)
        radars = {}
        rf_pos = {}
        for sensor in site.sensors:
            if sensor.lat is None or sensor.lon is None:
                continue
            alt = s.alt_m if sensor.alt_m is None else sensor.alt_m
            if sensor.kind == "radar":
                radars[sensor.id] = RadarGeometry.build(
                    sensor.id,
                    self.frame,
                    sensor.lat,
                    sensor.lon,
                    alt,
                    self.settings.radar(sensor.id),
                )
            elif sensor.kind == "rf":
                x, y, z = self.frame.to_enu(sensor.lat, sensor.lon, alt)
                rf_pos[sensor.id] = np.array([float(x), float(y), float(z)])
        self.tracker = MultiTargetTracker(radars, self.settings.tracker)
        self.turns = TurnState(self.tracker.arrays.tid.shape[0])
        self.rf = RfFusion(self.frame, rf_pos, self.settings.rf)
        self.zones = zone_geometry(site, self.frame)
        self.infos: dict[int, _TrackInfo] = {}
        self.incidents: dict[str, _Incident] = {}
        self.contact_incident: dict[str, str] = {}  # RF contact key -> key of the incident it owns
        self.lost: dict[str, _Lost] = {}  # incident key -> its drone's lost track
        self.last_scan_ns: int | None = None
        # Latest classification of confirmed tracks (for RF matching and the panel).
        self._snap_tid = np.zeros(0, dtype=np.int64)
        self._snap_slots = np.zeros(0, dtype=np.int64)
        self._snap_probs = np.zeros((0, 4))
        # History for tracks_frame() and the report panel.
        self._hist: list[tuple[np.ndarray, ...]] = []
        self._hist_rows = 0
        self._hist_full = False
        self.plot_history: list[np.ndarray] = []  # per scan: (n, 4) x, y, z, assigned
        self._plot_points = 0
        self.max_plot_points = 400_000
        self.keep_history = True  # for --tracks-out and the report; the service turns it off

    # ======================================================================================
    # Detector interface

    def on_record(self, record) -> list[Finding]:
        if isinstance(record, RadarScan):
            return self._on_scan(record)
        if isinstance(record, RfDetections):
            return self._on_rf(record)
        return []

    def on_tick(self, watermark_ns: int) -> list[Finding]:
        out: list[Finding] = []
        for tid in self.tracker.expire(watermark_ns):
            out += self._track_gone(tid, watermark_ns, "radar track lost (no plots)")
        out += self._expire_lost(watermark_ns)
        for c in self.rf.expire(watermark_ns):
            out += self._contact_gone(c, watermark_ns)
        return out

    def warm_up(self) -> None:
        """Compiles (or loads from Numba's cache) the tracker's kernels (plot conversion, the
        scan update and what they call) before live data needs them (the service calls this
        before /readyz).

        A scratch detector for the same site and settings (its own tracker and RF fusion) is
        fed, per radar, a few scans of two plots (one with elevation and Doppler, one
        without) and an empty scan, and an RF report per RF sensor, then dropped. Plots are
        float64 (n, 6) arrays built as ``drivers.json_feeds`` builds them, so the kernels are
        specialised for what live scans carry. This detector's state is not touched and
        nothing is emitted.
        """
        scratch = DroneDetector(self.site, self.settings)
        nan = math.nan
        t_ns = _WARM_UP_T0_NS
        for i in range(4):
            for sid in scratch.tracker.radars:
                t_ns += NS // 4
                rows = (
                    []
                    if i == 3
                    else [
                        (1500.0 - 10.0 * i, 40.0, 3.0, -10.0, -15.0, 18.0),
                        (2500.0 + 5.0 * i, 200.0, nan, nan, nan, nan),
                    ]
                )
                plots = np.array(rows, dtype=np.float64).reshape(len(rows), 6)
                scratch.on_record(RadarScan(sid, t_ns, t_ns, i, plots))
            for sid in scratch.rf.sensors:
                t_ns += NS // 4
                det = RfDetection(2.44e9, -60.0, 10e6, 40.0, "ocusync")
                scratch.on_record(RfDetections(sid, t_ns, t_ns, (det,)))
        scratch.on_tick(t_ns + 60 * NS)

    # ======================================================================================
    # radar

    def _on_scan(self, scan: RadarScan) -> list[Finding]:
        res = self.tracker.process_scan(scan.sensor, scan.t_ns, scan.plots)
        if res is None:
            return []
        out: list[Finding] = []
        t = scan.t_ns
        self.last_scan_ns = t
        for tid in res.deleted:
            out += self._track_gone(tid, t, "radar track lost")
        out += self._expire_lost(t)
        a = self.tracker.arrays
        slots = self.tracker.confirmed_slots()
        tids = a.tid[slots]
        self._snap_slots, self._snap_tid = slots, tids
        self._snap_probs = np.zeros((slots.size, 4))
        self._record_plots(res)
        for slot in res.plot_slot[res.plot_slot >= 0].tolist():
            if a.status[slot] == K.CONFIRMED:
                info = self.infos.setdefault(int(a.tid[slot]), _TrackInfo(int(a.tid[slot])))
                info.sensors.add(scan.sensor)
        if slots.size == 0:
            return out
        probs = self._classify(slots, tids, t)
        self._snap_probs = probs
        self._record_tracks(t, slots, tids, probs)
        al = self.settings.alerts
        age = (t - self.tracker.t0_ns) / NS - a.t_birth[slots]
        threats = assess(self.zones, a.xc[slots, 0:3], a.xc[slots, 3:6], a.Pc[slots])
        for k, (slot, tid) in enumerate(zip(slots.tolist(), tids.tolist(), strict=True)):
            info = self.infos.setdefault(tid, _TrackInfo(tid))
            p = float(probs[k, 0])
            if p >= al.p_drone_alert:
                if info.likely_since_ns is None:
                    info.likely_since_ns = t
                if (
                    not info.likely
                    and (t - info.likely_since_ns) / NS >= al.p_drone_persist_s
                    and age[k] >= al.min_track_age_s
                    and a.n_hits[slot] >= al.min_hits
                ):
                    info.likely = True
            else:
                info.likely_since_ns = None
            if p >= al.p_drone_clear:
                info.below_since_ns = None
            elif info.likely:
                # One doubtful stretch (a hover in clutter, a gust) does not end a drone:
                # it must stay below p_drone_clear for p_drone_clear_s.
                if info.below_since_ns is None:
                    info.below_since_ns = t
                if (t - info.below_since_ns) / NS >= al.p_drone_clear_s:
                    info.likely = False
            if info.incident is None and self.lost and probs[k, 2] < 0.5:
                self._reacquire(info, slot, t)
            if info.incident is None and not info.likely:
                continue
            info.last_x = a.xc[slot].copy()
            info.last_P = a.Pc[slot].copy()
            info.last_t_ns = t
            info.last_max_disp_m = float(a.feats[slot, K.F_MAX_DISP])
            info.last_hover_s = float(a.feats[slot, K.F_HOVER_S])
            subject = self._track_subject(slot, tid, probs[k], age[k], t, info)
            out += self._judge(info, subject, threats, k, t, still_drone=info.likely)
        return out

    def _classify(self, slots: np.ndarray, tids: np.ndarray, t_ns: int) -> np.ndarray:
        a = self.tracker.arrays
        speed, speed_sigma = speed_and_spread(a.xc[slots], a.Pc[slots])
        age = (t_ns - self.tracker.t0_ns) / NS - a.t_birth[slots]
        rf_b, rf_rid = self.rf.flags(tids, t_ns)
        self.turns.update(
            slots,
            tids,
            (t_ns - self.tracker.t0_ns) / NS,
            a.xc[slots, 3],
            a.xc[slots, 4],
            speed_sigma,
        )
        return classify(
            a.feats[slots],
            speed,
            speed_sigma,
            a.Pc[slots, 2, 2],
            age,
            self.settings.prior,
            self.settings.tracker.moved_m,
            rf_b,
            rf_rid,
            self.turns.circled_s(slots),
        )

    def _track_subject(
        self, slot: int, tid: int, probs: np.ndarray, age_s: float, t_ns: int, info: _TrackInfo
    ) -> _Subject:
        a = self.tracker.arrays
        x = a.xc[slot]
        P = a.Pc[slot]
        f = a.feats[slot]
        contact = self.rf.contact_of_track(tid, t_ns)
        sensors = set(info.sensors)
        if contact is not None:
            sensors.add(contact.sensor)
        rcs_db = float(rcs_level_db(f[None])[0]) if f[K.F_RCS] > 0 else None
        nis_med, nis_n = median_nis(f[None])
        details = {
            "source": "radar",
            "track_id": tid,
            "class": CLASSES[int(np.argmax(probs))],
            "class_probabilities": {
                c: round(float(p), 4) for c, p in zip(CLASSES, probs, strict=True)
            },
            "existence": round(float(a.exist[slot]), 4),
            "track_age_s": _r(age_s),
            "hits": int(a.n_hits[slot]),
            "rcs_dbsm": _r(rcs_db),
            "rcs_flicker": _r(float(flicker_index(f[None])[0]), 2) if f[K.F_N_RCS] >= 8 else None,
            "doppler_nis_median": _r(float(nis_med[0]), 2) if nis_n[0] >= 3 else None,
            "hover_s": _r(f[K.F_HOVER_S]),
            "circled_s": _r(float(self.turns.circled_s(np.array([slot]))[0])),
            "rf": contact.identity() if contact is not None else None,
            "uas_id": contact.uas_id if contact is not None else None,
            "operator_lat": contact.operator_lat if contact is not None else None,
            "operator_lon": contact.operator_lon if contact is not None else None,
        }
        return _Subject(
            x[0:3].copy(), x[3:6].copy(), P.copy(), tuple(sorted(sensors)), float(probs[0]), details
        )

    # ======================================================================================
    # incidents

    def _judge(
        self,
        info: _TrackInfo | None,
        subj: _Subject,
        threats: ZoneThreats,
        k: int,
        t_ns: int,
        still_drone: bool,
        contact: RfContact | None = None,
    ) -> list[Finding]:
        """Opens, updates, upgrades or closes the incident of one subject."""
        al = self.settings.alerts
        if info is not None:
            key = info.incident
        else:
            key = self.contact_incident.get(contact.key) if contact is not None else None
        inc = self.incidents.get(key) if key is not None else None
        if not still_drone:
            if inc is not None:
                return [
                    self._close(inc, t_ns, subj, "no longer classified as a drone", info, contact)
                ]
            return []
        bearing_only = bool(subj.details.get("position_unknown"))
        if bearing_only:
            geo: dict = {"zone": None}
        else:
            _, geo = self._worst_zone(threats, k)
        approach_now = False
        # A bearing says nothing about range: an approach carried by a bearing-only RF
        # link has not been seen to leave.
        within_leave = bearing_only
        for zi, z in enumerate(self.zones):
            if bearing_only:
                break
            d = threats.distance_m[zi, k]
            if threats.inside[zi, k]:
                approach_now = True
            c = threats.closing_mps[zi, k]
            cs = threats.closing_sigma_mps[zi, k]
            if d <= z.alert_radius_m and c >= max(al.min_closing_mps, 2.0 * cs):
                approach_now = True
            if d <= z.alert_radius_m + al.leave_margin_m:
                within_leave = True
        out: list[Finding] = []
        if inc is not None and inc.kind == APPROACH and not within_leave:
            out.append(self._close(inc, t_ns, subj, "drone left the alert area", info, contact))
            inc = None
            if info is not None:
                info.incident = None
            key = None
        if inc is not None and inc.kind == APPROACH:
            kind = APPROACH
        else:
            kind = APPROACH if approach_now else DETECTED
        details = dict(subj.details)
        if not bearing_only:
            details.update(self._position_details(subj))
        details.update(geo)
        severity, summary = self._severity_summary(kind, details, subj)
        if inc is None:
            key = self._new_key(info, contact)
            inc = _Incident(
                key,
                kind,
                severity,
                t_ns,
                t_ns,
                track_id=info.track_id if info else None,
                contact_key=contact.key if contact else None,
            )
            self.incidents[key] = inc
            if info is not None:
                info.incident = key
            elif contact is not None:
                self.contact_incident[contact.key] = key
            if kind == APPROACH:
                inc.approach_since_ns = t_ns
            state = "open"
        else:
            changed = kind != inc.kind or severity != inc.severity
            if kind == APPROACH and inc.kind != APPROACH:
                inc.approach_since_ns = t_ns
            since = (t_ns - inc.last_sent_ns) / NS
            eta = details.get("eta_s")
            moved = (
                inc.last_pos is None
                or float(np.linalg.norm(subj.pos - inc.last_pos)) >= MOVE_UPDATE_M
            )
            eta_moved = (eta is None) != (inc.last_eta is None) or (
                eta is not None
                and inc.last_eta is not None
                and abs(eta - inc.last_eta) > ETA_UPDATE_FRACTION * max(inc.last_eta, 5.0)
            )
            material = (
                moved
                or eta_moved
                or details.get("class") != inc.last_class
                or details.get("uas_id") != inc.last_uas
            )
            due = changed or (since >= al.update_interval_s and material) or since >= al.heartbeat_s
            if not due:
                return out
            state = "update"
        inc.kind = kind
        inc.severity = severity
        inc.last_sent_ns = t_ns
        inc.last_pos = subj.pos.copy()
        inc.last_eta = details.get("eta_s")
        inc.last_class = details.get("class", "")
        inc.last_uas = details.get("uas_id")
        inc.sensors = subj.sensors
        if inc.approach_since_ns is not None:
            details["approach_since_ns"] = inc.approach_since_ns
        out.append(
            Finding(
                key=inc.key,
                state=state,
                kind=kind,
                severity=severity,
                confidence=round(subj.confidence, 4),
                sensors=subj.sensors,
                t_event_ns=inc.t_event_ns,
                summary=summary,
                details=details,
            )
        )
        return out

    def _worst_zone(self, th: ZoneThreats, k: int) -> tuple[int | None, dict]:
        if not self.zones:
            return None, {"zone": None}
        best, best_key = 0, None
        for zi in range(len(self.zones)):
            inside = bool(th.inside[zi, k])
            eta = th.eta_s[zi, k]
            go = self._time_to_go(th, zi, k)
            key = (
                0 if inside else 1,
                go if math.isfinite(go) else math.inf,
                th.distance_m[zi, k],
                eta,
            )
            if best_key is None or key[:3] < best_key[:3]:
                best, best_key = zi, key
        zi = best
        zones = [
            {
                "zone": z.name,
                "range_m": _r(th.distance_m[j, k]),
                "inside": bool(th.inside[j, k]),
                "closing_mps": _r(th.closing_mps[j, k], 2),
                "eta_s": _r(th.eta_s[j, k]),
                "within_alert_radius": bool(th.distance_m[j, k] <= z.alert_radius_m),
            }
            for j, z in enumerate(self.zones)
        ]
        return zi, {
            "zone": self.zones[zi].name,
            "range_to_zone_m": _r(th.distance_m[zi, k]),
            "inside_zone": bool(th.inside[zi, k]),
            "alert_radius_m": self.zones[zi].alert_radius_m,
            "closing_mps": _r(th.closing_mps[zi, k], 2),
            "closing_sigma_mps": _r(th.closing_sigma_mps[zi, k], 2),
            "eta_s": _r(th.eta_s[zi, k]),
            "eta_sigma_s": _r(th.eta_sigma_s[zi, k]),
            "time_to_go_s": _r(self._time_to_go(th, zi, k)),
            "cpa_m": _r(th.cpa_m[zi, k]),
            "zones": zones,
        }

    @staticmethod
    def _time_to_go(th: ZoneThreats, zi: int, k: int) -> float:
        """ETA along the path when it enters the zone, else distance over closing speed."""
        if th.inside[zi, k]:
            return 0.0
        eta = th.eta_s[zi, k]
        if math.isfinite(eta):
            return float(eta)
        c = th.closing_mps[zi, k]
        return float(th.distance_m[zi, k] / c) if c > 0.1 else math.inf

    def _position_details(self, subj: _Subject) -> dict:
        lat, lon, alt = self.frame.to_geodetic(subj.pos[0], subj.pos[1], subj.pos[2])
        v = subj.vel
        return {
            "lat": round(float(lat), 7),
            "lon": round(float(lon), 7),
            "alt_m": _r(float(alt)),
            "enu_m": [_r(float(c)) for c in subj.pos],
            "velocity_mps": [_r(float(c), 2) for c in v],
            "speed_mps": _r(float(math.hypot(v[0], v[1])), 2),
            "heading_deg": _r(math.degrees(math.atan2(v[0], v[1])) % 360.0),
            "position_sigma_m": _r(math.sqrt(max(subj.cov[0, 0] + subj.cov[1, 1], 0.0))),
        }

    def _severity_summary(self, kind: str, d: dict, subj: _Subject) -> tuple[str, str]:
        al = self.settings.alerts
        who = (
            f"track {d['track_id']}"
            if d.get("track_id") is not None
            else f"RF contact {d.get('rf', {}).get('protocol', '?')}"
        )
        ident = f", Remote ID {d['uas_id']}" if d.get("uas_id") else ""
        if kind == APPROACH:
            go = d.get("time_to_go_s")
            zone = d.get("zone")
            if d.get("inside_zone"):
                return "critical", f"Drone inside zone {zone} ({who}{ident})"
            sev = "medium"
            if go is not None and go <= al.eta_critical_s:
                sev = "critical"
            elif go is not None and go <= al.eta_high_s:
                sev = "high"
            rng = d.get("range_to_zone_m") or 0.0
            if d.get("eta_s") is not None:
                text = f"Drone closing on zone {zone}: {rng:.0f} m, ETA {d['eta_s']:.0f} s"
            elif (d.get("closing_mps") or 0.0) > 0.5:
                text = f"Drone closing on zone {zone}: {rng:.0f} m, {d['closing_mps']:.1f} m/s"
            elif (d.get("closing_mps") or 0.0) < -0.5:
                text = f"Drone moving away from zone {zone}: {rng:.0f} m"
            else:
                text = f"Drone holding {rng:.0f} m from zone {zone}"
            return sev, f"{text} ({who}{ident})"
        if d.get("position_unknown"):
            rf = d.get("rf") or {}
            return "low", (
                f"Drone link ({rf.get('protocol')}) heard at bearing {rf.get('bearing_deg')}° "
                f"from {rf.get('rf_sensor')}, no radar track{ident}"
            )
        x, y = float(subj.pos[0]), float(subj.pos[1])
        where = f"{math.hypot(x, y) / 1000:.1f} km {_compass(x, y)} of site"
        speed = d.get("speed_mps")
        sp = f", {speed:.0f} m/s" if speed is not None else ""
        return "low", f"Drone detected {where}{sp}, not closing on a zone ({who}{ident})"

    def _new_key(self, info: _TrackInfo | None, contact: RfContact | None) -> str:
        if info is not None:
            return f"track-{info.track_id}"
        return f"rf-{contact.key}" if contact is not None else "drone"

    def _close(
        self, inc: _Incident, t_ns: int, subj: _Subject | None, why: str, info, contact
    ) -> Finding:
        self.incidents.pop(inc.key, None)
        if info is not None and info.incident == inc.key:
            info.incident = None
        for ck in [ck for ck, ik in self.contact_incident.items() if ik == inc.key]:
            del self.contact_incident[ck]
        details = {"reason": why, "track_id": inc.track_id, "rf_contact": inc.contact_key}
        if subj is not None and not subj.details.get("position_unknown"):
            details.update(self._position_details(subj))
        return Finding(
            key=inc.key,
            state="closed",
            kind=inc.kind,
            severity=inc.severity,
            confidence=1.0,
            sensors=inc.sensors or (subj.sensors if subj else ()),
            t_event_ns=inc.t_event_ns,
            summary=f"Drone incident closed: {why}",
            details=details,
        )

    def _track_gone(self, tid: int, t_ns: int, why: str) -> list[Finding]:
        info = self.infos.pop(tid, None)
        contact = self.rf.contact_of_track(tid, t_ns)
        self.rf.forget_track(tid)
        if info is None or info.incident is None:
            return []
        inc = self.incidents.get(info.incident)
        if inc is None:
            return []
        if contact is not None and contact.key not in self.contact_incident:
            # The radar lost it but its link is still heard: the RF contact carries on.
            inc.track_id = None
            inc.contact_key = contact.key
            self.contact_incident[contact.key] = inc.key
            return []
        if self.settings.alerts.reacquire_s > 0.0 and info.last_x is not None:
            # Tracks break (a hover in clutter, a turn, missed scans): the drone keeps its
            # incident for a while, for a re-formed track of it to take over.
            inc.track_id = None
            self.lost[inc.key] = _Lost(
                inc.key,
                info.last_x,
                info.last_P,
                info.last_t_ns,
                inc.last_uas,
                why,
                info.last_max_disp_m,
                info.last_hover_s,
            )
            return []
        return [self._close(inc, t_ns, None, why, info, None)]

    def _expire_lost(self, t_ns: int) -> list[Finding]:
        out: list[Finding] = []
        limit = int(self.settings.alerts.reacquire_s * NS)
        for key in [k for k, v in self.lost.items() if t_ns - v.t_ns > limit]:
            lost = self.lost.pop(key)
            inc = self.incidents.get(key)
            if inc is not None and inc.track_id is None and inc.contact_key is None:
                out.append(self._close(inc, t_ns, None, lost.why, None, None))
        return out

    def _reacquire(self, info: _TrackInfo, slot: int, t_ns: int) -> None:
        """Gives a new track the incident of a recently lost drone track it continues.

        Same drone when the Remote ID / DroneID serial matches, else when the new track's
        position and velocity fall within the 99.9 % gates of the lost track's prediction
        (constant velocity, widened by ``reacquire_accel_mps2`` of unknown manoeuvre over
        the gap), each gate in the horizontal plane.
        """
        a = self.tracker.arrays
        x, P = a.xc[slot], a.Pc[slot]
        contact = self.rf.contact_of_track(info.track_id, t_ns)
        uas = contact.uas_id if contact is not None else None
        acc = self.settings.alerts.reacquire_accel_mps2
        best, best_d2 = None, math.inf
        for key, lost in self.lost.items():
            if key not in self.incidents:
                continue
            if uas is not None and lost.uas_id == uas:
                best, best_d2 = key, -1.0
                break
            dt = max(0.0, (t_ns - lost.t_ns) / NS)
            pred = lost.x[0:2] + lost.x[3:5] * dt
            man_p = (0.5 * acc * dt * dt) ** 2
            man_v = (acc * dt) ** 2
            S_p = lost.P[0:2, 0:2] + lost.P[3:5, 3:5] * dt * dt + P[0:2, 0:2]
            S_p = S_p + np.eye(2) * (man_p + 1.0)
            S_v = lost.P[3:5, 3:5] + P[3:5, 3:5] + np.eye(2) * (man_v + 0.25)
            d_p = x[0:2] - pred
            d_v = x[3:5] - lost.x[3:5]
            d2_p = float(d_p @ np.linalg.solve(S_p, d_p))
            d2_v = float(d_v @ np.linalg.solve(S_v, d_v))
            if d2_p <= REACQUIRE_GATE2 and d2_v <= REACQUIRE_GATE2 and d2_p + d2_v < best_d2:
                best, best_d2 = key, d2_p + d2_v
        if best is None:
            return
        lost = self.lost.pop(best)
        inc = self.incidents[best]
        inc.track_id = info.track_id
        info.incident = best
        info.likely = True
        # The same drone: what it did before the break (it had flown somewhere, it had
        # hovered) is still true of it, so a re-formed track hovering where the old one was
        # lost is not taken for clutter that never moved.
        f = a.feats[slot]
        f[K.F_MAX_DISP] = max(f[K.F_MAX_DISP], lost.max_disp_m)
        f[K.F_HOVER_S] = max(f[K.F_HOVER_S], lost.hover_s)

    def _contact_gone(self, c: RfContact, t_ns: int) -> list[Finding]:
        key = self.contact_incident.get(c.key)
        inc = self.incidents.get(key) if key is not None else None
        if inc is None:
            return []
        return [self._close(inc, t_ns, None, "RF link no longer heard", None, c)]

    # ======================================================================================
    # RF

    def _on_rf(self, rec: RfDetections) -> list[Finding]:
        snap = self._track_snapshot(rec.t_ns)
        touched = self.rf.update(rec, snap)
        out: list[Finding] = []
        rs = self.settings.rf
        window_ns = int(rs.window_s * NS)
        seen: set[str] = set()
        for c in touched:
            if c.key in seen:
                continue
            seen.add(c.key)
            rf_key = self.contact_incident.get(c.key)
            rf_inc = self.incidents.get(rf_key) if rf_key is not None else None
            if not self.rf.unmatched(c, rec.t_ns) and c.track_id is not None:
                # A radar track carries this drone now: hand the RF incident over, or merge.
                info = self.infos.get(c.track_id)
                if rf_inc is not None and info is not None:
                    if info.incident is None:
                        del self.contact_incident[c.key]
                        rf_inc.track_id = c.track_id
                        rf_inc.contact_key = None
                        info.incident = rf_inc.key
                        info.likely = True
                    else:
                        why = f"merged with radar track {c.track_id}"
                        out.append(self._close(rf_inc, rec.t_ns, None, why, None, c))
                continue
            if not c.established(rec.t_ns, window_ns, rs.min_reports):
                continue
            subj = self._contact_subject(c, rec.t_ns)
            if subj is None:
                continue
            threats = assess(self.zones, subj.pos[None], subj.vel[None], subj.cov[None])
            out += self._judge(None, subj, threats, 0, rec.t_ns, still_drone=True, contact=c)
        return out

    def _track_snapshot(self, t_ns: int) -> TrackSnapshot:
        a = self.tracker.arrays
        slots = self._snap_slots
        slots = slots[a.status[slots] == K.CONFIRMED] if slots.size else slots
        dt = 0.0 if self.last_scan_ns is None else max(0.0, (t_ns - self.last_scan_ns) / NS)
        pos = a.xc[slots, 0:3] + a.xc[slots, 3:6] * dt
        probs = self._snap_probs
        if probs.shape[0] != slots.size:
            probs = np.zeros((slots.size, 4))
        candidate = (probs[:, 3] < 0.5) & (probs[:, 2] < 0.5)
        return TrackSnapshot(a.tid[slots], pos, a.Pc[slots, 0:3, 0:3], candidate)

    def _contact_subject(self, c: RfContact, t_ns: int) -> _Subject | None:
        rs = self.settings.rf
        details = {
            "source": "rf",
            "track_id": None,
            "class": "drone",
            "class_probabilities": {"drone": 1.0, "bird": 0.0, "aircraft": 0.0, "clutter": 0.0},
            "rf": c.identity(),
            "uas_id": c.uas_id,
            "operator_lat": c.operator_lat,
            "operator_lon": c.operator_lon,
        }
        cov = np.zeros((6, 6))
        if c.uas_enu is not None and t_ns - c.uas_t_ns <= int(rs.window_s * NS):
            vel = c.uas_vel if c.uas_vel is not None else np.zeros(3)
            dt = (t_ns - c.uas_t_ns) / NS
            pos = c.uas_enu + vel * dt
            cov[0:3, 0:3] = np.eye(3) * rs.remote_id_sigma_m**2
            cov[3:6, 3:6] = np.eye(3) * (4.0 if c.uas_vel is not None else 400.0)
            if c.uas_vel is None:
                vel = np.zeros(3)
            confidence = 0.95
            return _Subject(pos, vel, cov, (c.sensor,), confidence, details)
        if c.bearing_deg is None:
            return None
        # Bearing only: no range, so no zone judgement. The subject's "position" is a
        # point 1 km out along the bearing: update throttling then sees a bearing
        # change of about 3 degrees as a 50 m move; it is never reported.
        sensor_pos = self.rf.sensors.get(c.sensor, np.zeros(3))
        b = math.radians(c.bearing_deg)
        pos = sensor_pos + 1000.0 * np.array([math.sin(b), math.cos(b), 0.0])
        cov[0:3, 0:3] = np.eye(3) * 1e12
        cov[3:6, 3:6] = np.eye(3) * 1e4
        details["position_unknown"] = True
        return _Subject(pos, np.zeros(3), cov, (c.sensor,), 0.7, details)

    # ======================================================================================
    # history: --tracks-out and the report panel

    def _record_tracks(
        self, t_ns: int, slots: np.ndarray, tids: np.ndarray, probs: np.ndarray
    ) -> None:
        if self._hist_full or not self.keep_history:
            return
        limit = self.settings.alerts.tracks_history_max_rows
        if self._hist_rows + slots.size > limit:
            self._hist_full = True
            log.warning("drone: track history reached %d rows; later scans are not kept", limit)
            return
        a = self.tracker.arrays
        cls = np.argmax(probs, axis=1).astype(np.int8)
        self._hist.append(
            (
                np.full(slots.size, t_ns, dtype=np.int64),
                tids.copy(),
                a.xc[slots].copy(),
                cls,
                probs[:, 0].copy(),
            )
        )
        self._hist_rows += slots.size

    def _record_plots(self, res: ScanResult) -> None:
        if not self.keep_history or self._plot_points >= self.max_plot_points or res.n_plots == 0:
            return
        arr = np.column_stack([res.plots.z, (res.plot_slot >= 0).astype(np.float64)])
        self.plot_history.append(arr)
        self._plot_points += arr.shape[0]

    def tracks_frame(self) -> pl.DataFrame:
        """Confirmed tracks at every scan: the contract's ``--tracks-out`` columns."""
        if not self._hist:
            return pl.DataFrame(schema=TRACKS_SCHEMA)
        t = np.concatenate([h[0] for h in self._hist])
        tid = np.concatenate([h[1] for h in self._hist])
        x = np.concatenate([h[2] for h in self._hist])
        cls = np.concatenate([h[3] for h in self._hist])
        pd_ = np.concatenate([h[4] for h in self._hist])
        names = np.array(CLASSES)[cls]
        return pl.DataFrame(
            {
                "t_ns": t,
                "track_id": tid,
                "x_m": x[:, 0],
                "y_m": x[:, 1],
                "z_m": x[:, 2],
                "vx_mps": x[:, 3],
                "vy_mps": x[:, 4],
                "vz_mps": x[:, 5],
                "class": names.tolist(),
                "p_drone": pd_,
            },
            schema=TRACKS_SCHEMA,
        )

    def report_panels(self) -> list:
        from fusion.drone.panel import DroneMapPanel

        return [DroneMapPanel(self)]

    def stats(self) -> dict:
        tent, conf = self.tracker.n_tracks()
        return {
            "scans": self.tracker.scans,
            "stale_scans": self.tracker.stale_scans,
            "unknown_radar_scans": self.tracker.unknown_radar_scans,
            "tracks_tentative": tent,
            "tracks_confirmed": conf,
            "rf_contacts": len(self.rf.contacts),
            "rf_ignored_reports": self.rf.ignored_reports,
            **{f"tracker_{k}": v for k, v in self.tracker.totals.items()},
        }
