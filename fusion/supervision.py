"""Sensor supervision: a sensor that goes silent, or sends only garbage, is a fault.

Each configured sensor with ``fault_after_s`` > 0 is expected to deliver at
least one good record every ``fault_after_s`` seconds of data time. When the
watermark passes that deadline, a ``sensor_fault`` incident opens: reason
``garbage`` when the sensor kept sending data that was rejected (bytes that
failed to decode, or records the engine refused as late or repeated), else
``silent``. The next good record closes it and reports how long it lasted.
Power front-ends report lost frames (sequence gaps); their running total is
evidence in the incident's details, telling a dead link from a lossy one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fusion.config import Sensor
from fusion.detector import Finding
from fusion.records import (
    GnssMessage,
    PowerFrame,
    RadarScan,
    Rejected,
    RfDetections,
    RfSpectrum,
    SwitchgearEvent,
)

NS = 1_000_000_000


@dataclass(slots=True)
class _SensorState:
    sensor: Sensor
    period_ns: int
    last_ok_ns: int | None = None  # data time of the last good record
    rejects_since_ok: int = 0
    last_reason: str = ""
    fault_open: bool = False
    fault_since_ns: int = 0
    last_reason_kind: str = "silent"
    lost_frames: int = 0


class SensorSupervision:
    """Raises ``sensor_fault`` for silent or garbage-only sensors; closes on recovery."""

    name = "supervision"
    consumes = (
        RadarScan,
        RfDetections,
        RfSpectrum,
        SwitchgearEvent,
        GnssMessage,
        PowerFrame,
        Rejected,
    )

    def __init__(self, sensors: Iterable[Sensor]):
        self._state = {s.id: _SensorState(s, int(s.fault_after_s * NS)) for s in sensors}
        self._start_ns: int | None = None

    def on_record(self, record) -> list[Finding]:
        st = self._state.get(record.sensor)
        if st is None:
            return []  # unknown sources are the router's business, not a sensor fault
        if self._start_ns is None:
            self._start_ns = record.t_ns
        if isinstance(record, Rejected):
            st.rejects_since_ok += 1
            st.last_reason = record.reason
            return []
        out: list[Finding] = []
        if isinstance(record, PowerFrame) and record.lost_frames:
            st.lost_frames += record.lost_frames
        if st.fault_open:
            down_ns = record.t_ns - st.fault_since_ns
            out.append(self._finding(st, "closed", st.fault_since_ns, st.last_reason_kind, down_ns))
            st.fault_open = False
        st.last_ok_ns = max(st.last_ok_ns or record.t_ns, record.t_ns)
        st.rejects_since_ok = 0
        return out

    def on_tick(self, watermark_ns: int) -> list[Finding]:
        if self._start_ns is None:
            self._start_ns = watermark_ns
        out: list[Finding] = []
        for st in self._state.values():
            if not st.period_ns or st.fault_open:
                continue
            since = st.last_ok_ns if st.last_ok_ns is not None else self._start_ns
            if watermark_ns - since > st.period_ns:
                st.fault_open = True
                st.fault_since_ns = since
                st.last_reason_kind = "garbage" if st.rejects_since_ok else "silent"
                out.append(
                    self._finding(st, "open", since, st.last_reason_kind, watermark_ns - since)
                )
        return out

    def _finding(
        self, st: _SensorState, state: str, since_ns: int, reason: str, for_ns: int
    ) -> Finding:
        sid = st.sensor.id
        secs = for_ns / NS
        if state == "closed":
            summary = f"Sensor {sid} recovered after {secs:.1f} s ({reason})"
        elif reason == "garbage":
            summary = (
                f"Sensor {sid} ({st.sensor.kind}) sends only rejected data for {secs:.1f} s"
                f" (last: {st.last_reason})"
            )
        else:
            summary = f"Sensor {sid} ({st.sensor.kind}) silent for {secs:.1f} s"
        details = {
            "reason": reason,
            "sensor_kind": st.sensor.kind,
            "fault_after_s": st.period_ns / NS,
            "duration_s": round(secs, 3),
            "rejects": st.rejects_since_ok,
            "last_reject_reason": st.last_reason or None,
            "lost_frames_total": st.lost_frames,
        }
        return Finding(
            key=sid,
            state=state,
            kind="sensor_fault",
            severity="medium",
            confidence=1.0 if reason != "garbage" else 0.9,
            sensors=(sid,),
            t_event_ns=since_ns,
            summary=summary,
            details=details,
        )
