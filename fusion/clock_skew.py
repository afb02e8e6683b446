"""Clock-skew supervision: a sensor whose clock disagrees with the edge box's.

Every record carries the sensor's data time and the edge box's receive time.
Their difference is transport latency plus clock offset; latency is never
negative and its smallest values are near zero, so the minimum difference over
a window of messages estimates the clock offset (the same reasoning as NTP's
minimum-delay filter, D. Mills, RFC 5905 §10). When that estimate leaves
±``max_clock_skew_s``, a ``sensor_fault`` with reason ``clock_skew`` opens: a
skewed clock shifts every detection's timing and, beyond the engine's lateness
window, makes its data late. It closes once the offset is back within half the
bound (hysteresis, so a borderline clock does not flap).

It watches records as they arrive (``on_arrival``), before the engine's
lateness check: a clock far behind makes every record late, and this is the
detector that must still see them to say why.

GNSS receivers are exempt: their records are stamped on receipt (the serial
stream carries no full date), so there is no second clock to compare.
"""

from __future__ import annotations

from dataclasses import dataclass

from fusion.config import Sensor
from fusion.detector import Finding
from fusion.records import PowerFrame, RadarScan, RfDetections, RfSpectrum, SwitchgearEvent

NS = 1_000_000_000
WINDOW = 20  # messages per offset estimate


@dataclass(slots=True)
class _Clock:
    sensor: Sensor
    n: int = 0
    min_delay_ns: int = 0
    skewed: bool = False
    since_ns: int = 0


class ClockSkewSupervision:
    name = "clock"
    consumes = ()  # it looks at arrivals (on_arrival), not at data-time-ordered records
    _TIMED = (RadarScan, RfDetections, RfSpectrum, SwitchgearEvent, PowerFrame)

    def __init__(self, sensors, max_clock_skew_s: float = 2.0):
        self.bound_ns = int(max_clock_skew_s * NS)
        self._clocks = {s.id: _Clock(s) for s in sensors if s.kind != "gnss"}

    def on_record(self, record) -> list[Finding]:
        return []

    def on_arrival(self, record) -> list[Finding]:
        clk = self._clocks.get(record.sensor)
        if clk is None or not isinstance(record, self._TIMED):
            return []
        # A power frame is complete only at its last sample; compare with that.
        t_data = record.t_end_ns if isinstance(record, PowerFrame) else record.t_ns
        delay = record.t_rx_ns - t_data
        clk.min_delay_ns = delay if clk.n == 0 else min(clk.min_delay_ns, delay)
        clk.n += 1
        if clk.n < WINDOW:
            return []
        offset = clk.min_delay_ns
        clk.n = 0
        if not clk.skewed and abs(offset) > self.bound_ns:
            clk.skewed = True
            clk.since_ns = record.t_ns
            return [self._finding(clk, "open", offset)]
        if clk.skewed and abs(offset) <= self.bound_ns // 2:
            clk.skewed = False
            return [self._finding(clk, "closed", offset)]
        return []

    def on_tick(self, watermark_ns: int) -> list[Finding]:
        return []

    def _finding(self, clk: _Clock, state: str, offset_ns: int) -> Finding:
        sid = clk.sensor.id
        off_s = offset_ns / NS
        ahead = "behind" if off_s > 0 else "ahead of"
        summary = (
            f"Sensor {sid} clock is {abs(off_s):.1f} s {ahead} the edge box"
            if state == "open"
            else f"Sensor {sid} clock back in step ({off_s:+.2f} s)"
        )
        return Finding(
            key=sid,
            state=state,
            kind="sensor_fault",
            severity="medium",
            confidence=0.9,
            sensors=(sid,),
            t_event_ns=clk.since_ns,
            summary=summary,
            details={
                "reason": "clock_skew",
                "sensor_kind": clk.sensor.kind,
                "offset_s": round(off_s, 3),
                "max_clock_skew_s": self.bound_ns / NS,
            },
        )
