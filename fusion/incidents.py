"""Incident bookkeeping: findings in, contract alerts out.

Each (detector, key) pair is one incident while it is open. The first finding
opens it (``seq`` 1, state ``open``), later ones update it, a ``closed``
finding closes it and frees the key, so a recurrence is a new incident.
"""

from __future__ import annotations

from dataclasses import dataclass

from fusion.alerts import SEVERITIES, Alert, deterministic_ulid
from fusion.detector import Finding


@dataclass(slots=True)
class _Incident:
    incident_id: str
    seq: int
    t_event_ns: int


class IncidentBook:
    def __init__(self, site_id: str):
        self.site_id = site_id
        self._open: dict[tuple[str, str], _Incident] = {}
        self.opened = 0

    def apply(self, detector: str, finding: Finding, t_detect_ns: int) -> Alert | None:
        if finding.severity not in SEVERITIES:
            raise ValueError(
                f"{detector}: severity {finding.severity!r} is not one of {SEVERITIES}"
            )
        key = (detector, finding.key)
        incident = self._open.get(key)
        if incident is None:
            if finding.state == "closed":
                return None  # closing what never opened (or was already closed)
            self.opened += 1
            incident = _Incident(
                deterministic_ulid(
                    finding.t_event_ns,
                    self.site_id,
                    detector,
                    finding.key,
                    finding.t_event_ns,
                    self.opened,
                ),
                0,
                finding.t_event_ns,
            )
            self._open[key] = incident
            state = "open"
        else:
            state = "closed" if finding.state == "closed" else "update"
        incident.seq += 1
        if state == "closed":
            del self._open[key]
        return Alert(
            alert_id=deterministic_ulid(t_detect_ns, incident.incident_id, incident.seq),
            incident_id=incident.incident_id,
            seq=incident.seq,
            state=state,
            kind=finding.kind,
            severity=finding.severity,
            confidence=round(float(finding.confidence), 4),
            site=self.site_id,
            sensors=sorted(finding.sensors),
            t_event_ns=incident.t_event_ns,
            t_detect_ns=t_detect_ns,
            summary=finding.summary,
            details=finding.details,
        )

    def open_incidents(self) -> int:
        return len(self._open)
