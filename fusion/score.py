"""Scoring alerts against truth (``rampart score``): detection, latency, false alarms, GOSPA.

The rules are written for integrators in ``docs/scoring.md``; in short:

* Alert messages are grouped into incidents by ``incident_id``. An incident is
  an *attack* incident when one of its messages has an attack kind
  (``drone_approach``, ``gnss_jamming``, ``gnss_spoofing``,
  ``coordinated_attack``, or ``power_transient`` with subtype ``emp_like``);
  its detection time is the ``t_detect_ns`` of its first such message.
* A ``must_alert`` truth row is detected by an incident of its kind whose
  detection time lies in ``[t_start - pre_tolerance, t_end + post_tolerance]``.
  Rows and incidents of a kind are paired one-to-one: the pairing that detects
  the most rows, and among those the one with the least total |latency|.
  A ``coordinated_attack`` incident detects any row still undetected whose
  window holds it.
* Attack incidents that fall in no window of their kind are false alarms,
  attributed to the must-not truth row they coincide with (a bird, a sag...);
  extra incidents inside an already detected row's window are duplicates.
* Non-attack alerts are counted per kind under ``other_alerts``.
* With tracks and truth tracks, GOSPA is computed per truth scan time.

Everything returned is plain JSON data with sorted keys and rounded floats, and
the same inputs always give the same output.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment

from fusion.gospa import gospa

NS = 1_000_000_000
NS_PER_HOUR = 3600 * NS

# Truth kinds that must raise an alert, and the scored kind of the alerts that satisfy them.
# A truth kind not listed here is satisfied by alerts of the same kind name.
MUST_ALERT_KINDS = ("drone_approach", "gnss_jamming", "gnss_spoofing", "power_transient_emp")
COORDINATED = "coordinated_attack"
EMP_SUBTYPE = "emp_like"

# Which must-not truth kinds can plausibly cause a false alarm of each scored kind; a
# false alarm is blamed on a related truth row first, on any coinciding one otherwise.
RELATED_MUST_NOT: dict[str, tuple[str, ...]] = {
    "drone_approach": ("bird", "aircraft", "drone_far", "clutter"),
    "gnss_jamming": (),
    "gnss_spoofing": (),
    "power_transient_emp": ("switching", "sag", "fault"),
    COORDINATED: (),
}


@dataclass(frozen=True, slots=True)
class ScoreSettings:
    """Knobs of the scorer; defaults are argued in docs/scoring.md."""

    # A detector may legitimately decide a little before the modelled truth start
    # (its threshold differs from the truth's: +3 dB J/N, the alert radius), and a
    # decision may trail a short event (a power impulse lasts milliseconds).
    pre_tolerance_s: float = 5.0
    post_tolerance_s: float = 10.0
    gospa_c_m: float = 100.0
    gospa_p: float = 2.0
    gospa_alpha: float = 2.0
    # A track scan within this of a truth time stands for that truth time.
    gospa_time_tolerance_s: float = 0.5
    # Truth objects and tracks whose ``class`` is in this set take part in GOSPA;
    # None: every object and every track.
    gospa_classes: tuple[str, ...] | None = ("drone",)
    latency_percentile: float = 90.0


@dataclass(slots=True)
class _Incident:
    incident_id: str
    scored_kind: str | None  # None: not an attack incident
    other_key: str  # kind (or power_transient/<subtype>) when not an attack
    t_detect_ns: int
    t_event_ns: int | None
    summary: str
    n_messages: int


@dataclass(slots=True)
class _TruthRow:
    object_id: str
    kind: str
    t_start_ns: int
    t_end_ns: int
    must_alert: bool
    deadline_ns: int | None


def score(
    truth: pl.DataFrame,
    alerts: list[dict],
    span_ns: tuple[int, int],
    tracks: pl.DataFrame | None = None,
    truth_tracks: pl.DataFrame | None = None,
    settings: ScoreSettings = ScoreSettings(),
) -> dict:
    """Score ``alerts`` (contract §4 objects) against ``truth`` (contract §3) over ``span_ns``.

    ``span_ns`` is the recording's time span (first and last receive time); it
    sets the hours behind the false alarms per hour. Returns a JSON-ready dict.
    """
    pre_ns = round(settings.pre_tolerance_s * NS)
    post_ns = round(settings.post_tolerance_s * NS)
    rows = _truth_rows(truth)
    must = [r for r in rows if r.must_alert]
    extra_kinds = frozenset(r.kind for r in must) - set(MUST_ALERT_KINDS)
    incidents, malformed = _incidents(alerts, extra_kinds)
    must_not = [r for r in rows if not r.must_alert]

    def in_window(r: _TruthRow, t_ns: int) -> bool:
        return r.t_start_ns - pre_ns <= t_ns <= r.t_end_ns + post_ns

    attack = [i for i in incidents if i.scored_kind is not None]
    kinds = list(MUST_ALERT_KINDS)
    kinds += sorted(extra_kinds)

    # One-to-one pairing per kind.
    detection: dict[int, tuple[_Incident, str]] = {}  # id(row) -> (incident, how)
    duplicates: Counter[str] = Counter()
    false_alarms: list[_Incident] = []
    for kind in kinds:
        k_rows = [r for r in must if r.kind == kind]
        k_inc = [i for i in attack if i.scored_kind == kind]
        pairs = _pair(k_rows, k_inc, in_window)
        used = set()
        for ri, ii in pairs:
            detection[id(k_rows[ri])] = (k_inc[ii], "own_kind")
            used.add(ii)
        for ii, inc in enumerate(k_inc):
            if ii in used:
                continue
            if any(in_window(r, inc.t_detect_ns) for r in k_rows):
                duplicates[kind] += 1
            else:
                false_alarms.append(inc)

    # Coordinated-attack incidents fill in rows no incident of their own kind detected.
    coordinated = [i for i in attack if i.scored_kind == COORDINATED]
    for r in must:
        if id(r) in detection:
            continue
        for inc in coordinated:  # sorted by detection time: the earliest wins
            if in_window(r, inc.t_detect_ns):
                detection[id(r)] = (inc, COORDINATED)
                break
    coordinated_true = 0
    for inc in coordinated:
        if any(in_window(r, inc.t_detect_ns) for r in must):
            coordinated_true += 1
        else:
            false_alarms.append(inc)
    false_alarms.sort(key=lambda i: (i.t_detect_ns, i.incident_id))

    # Per-row outcome.
    row_out = []
    for r in sorted(must, key=lambda r: (r.t_start_ns, r.object_id, r.kind)):
        inc, how = detection.get(id(r), (None, None))
        entry: dict[str, Any] = {
            "object_id": r.object_id,
            "kind": r.kind,
            "t_start_ns": r.t_start_ns,
            "t_end_ns": r.t_end_ns,
            "deadline_ns": r.deadline_ns,
            "detected": inc is not None,
            "incident_id": None,
            "matched_by": None,
            "t_detect_ns": None,
            "latency_s": None,
            "latency_raw_s": None,
            "timely": False,
        }
        if inc is not None:
            raw_s = (inc.t_detect_ns - r.t_start_ns) / NS
            entry.update(
                incident_id=inc.incident_id,
                matched_by=how,
                t_detect_ns=inc.t_detect_ns,
                latency_s=max(raw_s, 0.0),
                latency_raw_s=raw_s,
                timely=r.deadline_ns is None or inc.t_detect_ns <= r.deadline_ns,
            )
        row_out.append(entry)

    # False alarms and what they coincided with.
    hours = max(span_ns[1] - span_ns[0], 0) / NS_PER_HOUR
    fa_out = []
    fa_during: Counter[str] = Counter()
    for inc in false_alarms:
        related = RELATED_MUST_NOT.get(inc.scored_kind or "", ())
        during = [r for r in must_not if in_window(r, inc.t_detect_ns)]
        preferred = [r for r in during if r.kind in related] or during
        cause = (
            min(preferred, key=lambda r: (abs(inc.t_detect_ns - r.t_start_ns), r.object_id))
            if preferred
            else None
        )
        fa_during[cause.kind if cause else "none"] += 1
        fa_out.append(
            {
                "incident_id": inc.incident_id,
                "kind": inc.scored_kind,
                "t_detect_ns": inc.t_detect_ns,
                "summary": inc.summary,
                "during": cause.kind if cause else None,
                "during_object_id": cause.object_id if cause else None,
                "overlapping": sorted(f"{r.kind}:{r.object_id}" for r in during),
            }
        )

    def alarm_stats(kind: str) -> dict[str, Any]:
        k_fa = [f for f in fa_out if f["kind"] == kind]
        return {
            "incidents": sum(1 for i in attack if i.scored_kind == kind),
            "false_alarms": len(k_fa),
            "false_alarms_per_hour": _per_hour(len(k_fa), hours),
            "false_alarms_during": dict(Counter(f["during"] or "none" for f in k_fa)),
        }

    per_kind: dict[str, Any] = {}
    for kind in kinds:
        stats = _detection_stats(
            [e for e in row_out if e["kind"] == kind], settings.latency_percentile
        )
        stats.update(alarm_stats(kind), duplicates=duplicates.get(kind, 0))
        per_kind[kind] = stats
    # Coordinated incidents have no truth rows of their own: they corroborate
    # (fall in some attack row's window), detect rows nothing else did, or are false.
    per_kind[COORDINATED] = {
        **alarm_stats(COORDINATED),
        "corroborating": coordinated_true,
        "rows_detected": sum(1 for e in row_out if e["matched_by"] == COORDINATED),
    }

    totals = _detection_stats(row_out, settings.latency_percentile)
    totals.update(
        incidents=len(attack),
        false_alarms=len(fa_out),
        false_alarms_per_hour=_per_hour(len(fa_out), hours),
        false_alarms_during=dict(fa_during),
        duplicates=sum(duplicates.values()),
    )

    other = Counter(i.other_key for i in incidents if i.scored_kind is None)
    result: dict[str, Any] = {
        "span": {"t0_ns": int(span_ns[0]), "t1_ns": int(span_ns[1]), "hours": hours},
        "settings": asdict(settings),
        "kinds": per_kind,
        "totals": totals,
        "truth_rows": row_out,
        "false_alarms": fa_out,
        "other_alerts": dict(other),
        "inputs": {
            "truth_rows": len(rows),
            "must_alert_rows": len(must),
            "must_not_rows": len(must_not),
            "alert_messages": len(alerts),
            "malformed_alerts": malformed,
            "incidents": len(incidents),
        },
    }
    if tracks is not None and truth_tracks is not None:
        result["tracking"] = score_tracks(tracks, truth_tracks, settings)
    return _tidy(result)


def score_tracks(
    tracks: pl.DataFrame,
    truth_tracks: pl.DataFrame,
    settings: ScoreSettings = ScoreSettings(),
) -> dict:
    """Mean GOSPA of confirmed tracks (``--tracks-out``) against ``truth_tracks``.

    Scan times are the truth times (every class); each takes the nearest track
    time within ``gospa_time_tolerance_s``, with track positions carried to the
    truth time at their own velocity. Track times far from every truth time are
    scans of their own with an empty truth set. Only objects and tracks whose
    class is in ``gospa_classes`` are compared.
    """
    tol_ns = round(settings.gospa_time_tolerance_s * NS)
    classes = settings.gospa_classes
    t_truth, truth_groups = _groups(truth_tracks, ("x_m", "y_m", "z_m"), classes)
    t_trk, trk_groups = _groups(
        tracks, ("x_m", "y_m", "z_m", "vx_mps", "vy_mps", "vz_mps"), classes
    )

    empty3 = np.zeros((0, 3))
    scans: list[tuple[np.ndarray, np.ndarray]] = []
    for k, t in enumerate(t_truth):
        est = empty3
        j = _nearest(t_trk, t)
        if j >= 0 and abs(int(t_trk[j]) - int(t)) <= tol_ns:
            g = trk_groups[j]
            vel = np.nan_to_num(g[:, 3:6])
            est = g[:, 0:3] + vel * ((int(t) - int(t_trk[j])) / NS)
        scans.append((truth_groups[k], est))
    for j, t in enumerate(t_trk):
        k = _nearest(t_truth, t)
        if k < 0 or abs(int(t_truth[k]) - int(t)) > tol_ns:
            scans.append((empty3, trk_groups[j][:, 0:3]))

    c, p, alpha = settings.gospa_c_m, settings.gospa_p, settings.gospa_alpha
    dist, loc, missed, false = [], [], [], []
    n_assigned = n_missed = n_false = 0
    loc_sum = 0.0
    for truth_xyz, est_xyz in scans:
        g = gospa(truth_xyz, est_xyz, c=c, p=p, alpha=alpha)
        dist.append(g.distance)
        loc.append(g.localisation)
        missed.append(g.missed)
        false.append(g.false)
        n_assigned += g.n_assigned
        n_missed += len(truth_xyz) - g.n_assigned
        n_false += len(est_xyz) - g.n_assigned
        loc_sum += g.localisation
    n = len(scans)
    return {
        "scans": n,
        "classes": list(classes) if classes is not None else None,
        "c_m": c,
        "p": p,
        "alpha": alpha,
        "gospa_mean_m": float(np.mean(dist)) if n else None,
        "gospa_max_m": float(np.max(dist)) if n else None,
        # Means of the three terms of GOSPA**p (m**p); they add up to mean(GOSPA**p).
        "localisation_mean": float(np.mean(loc)) if n else None,
        "missed_mean": float(np.mean(missed)) if n else None,
        "false_mean": float(np.mean(false)) if n else None,
        "localisation_error_m": (loc_sum / n_assigned) ** (1.0 / p) if n_assigned else None,
        "assigned": n_assigned,
        "missed": n_missed,
        "false": n_false,
        "missed_per_scan": n_missed / n if n else None,
        "false_per_scan": n_false / n if n else None,
    }


# ---------------------------------------------------------------------------


def scored_kind(alert: dict, extra_kinds: frozenset[str] = frozenset()) -> str | None:
    """The attack kind an alert message counts as, or None when it is not an attack alert.

    ``extra_kinds`` are must-alert truth kinds beyond the contract's, each satisfied
    by alerts of the same kind name.
    """
    kind = alert.get("kind")
    if (
        kind in ("drone_approach", "gnss_jamming", "gnss_spoofing", COORDINATED)
        or kind in extra_kinds
    ):
        return kind
    if kind == "power_transient" and _subtype(alert) == EMP_SUBTYPE:
        return "power_transient_emp"
    return None


def _subtype(alert: dict) -> str | None:
    details = alert.get("details")
    if isinstance(details, dict):
        st = details.get("subtype")
        return st if isinstance(st, str) else None
    return None


def _incidents(
    alerts: Iterable[dict], extra_kinds: frozenset[str] = frozenset()
) -> tuple[list[_Incident], int]:
    """Groups alert messages by incident; returns incidents (by detection time) and the malformed count."""
    malformed = 0
    seen_ids: set[str] = set()
    by_incident: dict[str, list[dict]] = defaultdict(list)
    for a in alerts:
        if not isinstance(a, dict) or not _is_int(a.get("t_detect_ns")):
            malformed += 1
            continue
        inc_id = a.get("incident_id") or a.get("alert_id")
        if not isinstance(inc_id, str):
            malformed += 1
            continue
        alert_id = a.get("alert_id")
        if isinstance(alert_id, str):
            if alert_id in seen_ids:  # contract §4: a repeated alert_id is dropped
                continue
            seen_ids.add(alert_id)
        by_incident[inc_id].append(a)

    out = []
    for inc_id, msgs in by_incident.items():
        msgs.sort(key=lambda a: (_int_or(a.get("seq"), 0), a["t_detect_ns"]))
        first = msgs[0]
        attack_msg = next((a for a in msgs if scored_kind(a, extra_kinds) is not None), None)
        key_msg = attack_msg or first
        kind = str(first.get("kind"))
        st = _subtype(first)
        other_key = f"{kind}/{st}" if kind == "power_transient" and st else kind
        t_event = key_msg.get("t_event_ns")
        out.append(
            _Incident(
                incident_id=inc_id,
                scored_kind=scored_kind(attack_msg, extra_kinds) if attack_msg else None,
                other_key=other_key,
                t_detect_ns=int(key_msg["t_detect_ns"]),
                t_event_ns=int(t_event) if _is_int(t_event) else None,
                summary=str(key_msg.get("summary", "")),
                n_messages=len(msgs),
            )
        )
    out.sort(key=lambda i: (i.t_detect_ns, i.incident_id))
    return out, malformed


def _truth_rows(truth: pl.DataFrame | None) -> list[_TruthRow]:
    if truth is None or truth.height == 0:
        return []
    rows = []
    for d in truth.iter_rows(named=True):
        rows.append(
            _TruthRow(
                object_id=str(d["object_id"]),
                kind=str(d["kind"]),
                t_start_ns=int(d["t_start_ns"]),
                t_end_ns=int(d["t_end_ns"]),
                must_alert=bool(d["must_alert"]),
                deadline_ns=None if d.get("deadline_ns") is None else int(d["deadline_ns"]),
            )
        )
    rows.sort(key=lambda r: (r.t_start_ns, r.object_id, r.kind, r.t_end_ns, r.deadline_ns or 0))
    return rows


def _pair(rows: list[_TruthRow], incs: list[_Incident], in_window) -> list[tuple[int, int]]:
    """Pairs rows with incidents one-to-one: most rows detected, then least total |latency|."""
    if not rows or not incs:
        return []
    n, m = len(rows), len(incs)
    feasible = np.zeros((n, m), dtype=bool)
    lat = np.zeros((n, m))
    for i, r in enumerate(rows):
        for j, inc in enumerate(incs):
            if in_window(r, inc.t_detect_ns):
                feasible[i, j] = True
                lat[i, j] = abs(inc.t_detect_ns - r.t_start_ns) / NS
    if not feasible.any():
        return []
    # A reward larger than any sum of latencies makes the count of pairs dominate.
    big = (float(lat.max()) + 1.0) * (min(n, m) + 1)
    cost = np.where(feasible, lat - big, 0.0)
    ri, ci = linear_sum_assignment(cost)
    return [(int(i), int(j)) for i, j in zip(ri, ci, strict=True) if feasible[i, j]]


def _detection_stats(entries: list[dict], pct: float) -> dict:
    n = len(entries)
    det = [e for e in entries if e["detected"]]
    timely = sum(1 for e in entries if e["timely"])
    return {
        "truth": n,
        "detected": len(det),
        "missed": n - len(det),
        "recall": len(det) / n if n else None,
        "timely": timely,
        "timely_recall": timely / n if n else None,
        "latency_s": _latency_stats([e["latency_s"] for e in det], pct),
        "latency_raw_s": _latency_stats([e["latency_raw_s"] for e in det], pct, with_min=True),
    }


def _latency_stats(values: list[float], pct: float, with_min: bool = False) -> dict:
    keys = ["mean", "median", f"p{pct:g}", "max"] + (["min"] if with_min else [])
    if not values:
        return dict.fromkeys(keys)
    a = np.asarray(values, dtype=np.float64)
    out = {
        "mean": float(a.mean()),
        "median": float(np.median(a)),
        f"p{pct:g}": float(np.percentile(a, pct)),
        "max": float(a.max()),
    }
    if with_min:
        out["min"] = float(a.min())
    return out


def _per_hour(count: int, hours: float) -> float | None:
    return count / hours if hours > 0 else None


def _groups(
    df: pl.DataFrame, cols: tuple[str, ...], classes: tuple[str, ...] | None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Unique times (sorted, every class) and per time the rows of the selected classes."""
    if df is None or df.height == 0:
        return np.zeros(0, dtype=np.int64), []
    have = [c for c in cols if c in df.columns]
    sel = df.select(
        pl.col("t_ns").cast(pl.Int64),
        *(pl.col(c).cast(pl.Float64) for c in have),
        *(pl.lit(None, dtype=pl.Float64).alias(c) for c in cols if c not in have),
        (
            pl.col("class").cast(pl.Utf8).is_in(list(classes))
            if classes is not None and "class" in df.columns
            else pl.lit(classes is None)
        ).alias("_keep"),
    ).sort("t_ns", maintain_order=True)
    t = sel["t_ns"].to_numpy()
    vals = sel.select(cols).to_numpy().astype(np.float64)
    keep = sel["_keep"].fill_null(False).to_numpy().astype(bool)
    times, starts = np.unique(t, return_index=True)
    ends = np.append(starts[1:], t.size)
    groups = [vals[s:e][keep[s:e]] for s, e in zip(starts, ends, strict=True)]
    return times, groups


def _nearest(sorted_t: np.ndarray, t: int) -> int:
    if sorted_t.size == 0:
        return -1
    j = int(np.searchsorted(sorted_t, t))
    if j == 0:
        return 0
    if j == sorted_t.size:
        return j - 1
    return j if int(sorted_t[j]) - int(t) < int(t) - int(sorted_t[j - 1]) else j - 1


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_or(v: Any, default: int) -> int:
    return v if _is_int(v) else default


def _tidy(obj: Any) -> Any:
    """Sorted keys, rounded floats (6 significant decimals), NaN/inf as null: stable JSON."""
    if isinstance(obj, dict):
        return {str(k): _tidy(obj[k]) for k in sorted(obj, key=str)}
    if isinstance(obj, list | tuple):
        return [_tidy(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, int | str):
        return obj
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        if not math.isfinite(f):
            return None
        return round(f, 6)
    return obj


def summary_lines(metrics: dict) -> list[str]:
    """``rampart score --summary``: the metrics as a table, one row per truth kind."""
    out = [
        f"{'kind':<22} {'truth':>5} {'detected':>8} {'timely':>6} {'false':>5} {'latency med s':>13}"
    ]
    for kind, k in sorted(metrics["kinds"].items()):
        if not k.get("truth") and not k.get("false_alarms"):
            continue
        med = (k.get("latency_s") or {}).get("median")
        out.append(
            f"{kind:<22} {k.get('truth', 0):>5} {k.get('detected', 0):>8} "
            f"{k.get('timely', 0):>6} {k.get('false_alarms', 0):>5} "
            f"{'-' if med is None else f'{med:.3f}':>13}"
        )
    t = metrics["totals"]
    out.append(
        f"recall {t['recall']:.2f}, timely recall {t['timely_recall']:.2f}, "
        f"false alarms {t['false_alarms']} ({t['false_alarms_per_hour']:.1f} per hour)"
        if t.get("truth")
        else f"no truth events; false alarms {t['false_alarms']}"
    )
    tr = metrics.get("tracking")
    if tr:
        out.append(
            f"tracking: GOSPA {tr['gospa_mean_m']:.1f} m mean over {tr['scans']} scans "
            f"(c = {tr['c_m']:g} m, p = {tr['p']:g}), {tr['missed_per_scan']:.2f} missed and "
            f"{tr['false_per_scan']:.2f} false tracks per scan"
        )
    return out
