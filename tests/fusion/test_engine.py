"""The event-time engine: ordering, lateness, duplicates, determinism."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fusion.config import EngineSettings
from fusion.detector import Finding
from fusion.engine import Engine
from fusion.incidents import IncidentBook
from fusion.records import RadarScan, Rejected
from fusion.rejects import RejectLedger

S = 1_000_000_000


class Recorder:
    """A detector that remembers what it was given, and alerts on every 5th scan."""

    name = "recorder"
    consumes = (RadarScan, Rejected)

    def __init__(self):
        self.seen: list[tuple[int, int]] = []
        self.ticks: list[int] = []

    def on_record(self, rec):
        if isinstance(rec, Rejected):
            return []
        self.seen.append((rec.t_ns, rec.scan))
        if rec.scan % 5 == 0:
            return [
                Finding(
                    f"k{rec.scan}",
                    "open",
                    "test",
                    "low",
                    0.5,
                    (rec.sensor,),
                    rec.t_ns,
                    f"scan {rec.scan}",
                )
            ]
        return []

    def on_tick(self, watermark_ns):
        self.ticks.append(watermark_ns)
        return []


def scan(scan_no: int, t_s: float, rx_s: float, sensor: str = "radar-1") -> RadarScan:
    return RadarScan(sensor, int(t_s * S), int(rx_s * S), scan_no, np.zeros((0, 6)))


def make(lateness_s: float = 1.0):
    det = Recorder()
    ledger = RejectLedger()
    alerts = []
    eng = Engine(
        [det], IncidentBook("site"), ledger, alerts.append, EngineSettings(lateness_s=lateness_s)
    )
    return eng, det, ledger, alerts


def feed(eng, records):
    for r in records:
        eng.push(r)
        eng.advance(r.t_rx_ns)
    eng.finish()


def test_out_of_order_within_window_is_reordered():
    eng, det, ledger, _ = make(1.0)
    # Scan 2 is received before scan 1, 0.3 s apart: within the 1 s window.
    feed(eng, [scan(0, 10.0, 10.1), scan(2, 11.0, 11.1), scan(1, 10.5, 11.4), scan(3, 12.0, 12.1)])
    assert [s for _, s in det.seen] == [0, 1, 2, 3]
    assert ledger.total() == 0


def test_late_message_is_counted_and_dropped():
    eng, det, ledger, _ = make(1.0)
    # Scan 1 (data time 10.5 s) arrives at 13 s: the watermark (12 s) has passed it.
    feed(eng, [scan(0, 10.0, 10.1), scan(2, 12.5, 12.6), scan(3, 13.0, 13.05), scan(1, 10.5, 13.1)])
    assert [s for _, s in det.seen] == [0, 2, 3]
    assert ledger.counts[("radar-1", "late")] == 1


def test_duplicates_dropped_and_counted():
    eng, det, ledger, _ = make(1.0)
    feed(eng, [scan(0, 10.0, 10.1), scan(1, 11.0, 11.1), scan(1, 11.0, 11.2), scan(2, 12.0, 12.1)])
    assert [s for _, s in det.seen] == [0, 1, 2]
    assert ledger.counts[("radar-1", "duplicate")] == 1


def test_future_timestamp_rejected():
    eng, det, ledger, _ = make(1.0)
    feed(eng, [scan(0, 10.0, 10.1), scan(1, 500.0, 11.0), scan(2, 12.0, 12.1)])
    assert [s for _, s in det.seen] == [0, 2]
    assert ledger.counts[("radar-1", "future_timestamp")] == 1


def test_ticks_advance_monotonically_on_a_grid():
    eng, det, _, _ = make(0.5)
    feed(eng, [scan(i, 10.0 + i * 0.37, 10.1 + i * 0.37) for i in range(40)])
    assert det.ticks == sorted(det.ticks)
    assert len(set(det.ticks)) == len(det.ticks)
    assert all(t % (S // 10) == 0 for t in det.ticks)


@settings(max_examples=60, deadline=None)
@given(
    delays=st.lists(st.floats(min_value=0.0, max_value=0.9), min_size=1, max_size=60),
    dup_every=st.integers(min_value=0, max_value=7),
)
def test_any_arrival_order_within_window_gives_time_order(delays, dup_every):
    """Messages delayed by less than the lateness window are delivered in data-time order."""
    records = []
    for i, d in enumerate(delays):
        r = scan(i, 100.0 + i * 0.1, 100.0 + i * 0.1 + d)
        records.append(r)
        if dup_every and i % dup_every == 0:
            records.append(scan(i, 100.0 + i * 0.1, 100.0 + i * 0.1 + d + 0.01))
    records.sort(key=lambda r: r.t_rx_ns)
    eng, det, ledger, _ = make(1.0)
    feed(eng, records)
    assert [s for _, s in det.seen] == list(range(len(delays)))
    assert ledger.total("radar-1", "late") == 0
    assert ledger.total("radar-1", "duplicate") == len(records) - len(delays)


def test_same_input_same_alert_bytes():
    from fusion.alerts import encode_alert

    outs = []
    for _ in range(2):
        eng, _, _, alerts = make(1.0)
        feed(eng, [scan(i, 10.0 + i, 10.2 + i) for i in range(12)])
        outs.append(b"\n".join(encode_alert(a) for a in alerts))
    assert outs[0] == outs[1]
    assert outs[0].count(b"\n") == 2  # scans 0, 5 and 10 alert


class Prompt(Recorder):
    """Takes radar scans on arrival (``takes_on_arrival``); alerts on every 5th, like Recorder."""

    name = "prompt"
    takes_on_arrival = (RadarScan,)


def test_takes_on_arrival_gets_records_at_once_in_receive_order():
    ordered, prompt, ledger, alerts = Recorder(), Prompt(), RejectLedger(), []
    eng = Engine(
        [ordered, prompt],
        IncidentBook("site"),
        ledger,
        alerts.append,
        EngineSettings(lateness_s=1.0),
    )
    records = [
        scan(0, 10.0, 10.1),
        scan(2, 11.0, 11.1),
        scan(1, 10.5, 11.4),  # out of order, within the window
        scan(1, 10.5, 11.5),  # duplicate
        scan(5, 12.0, 12.1),
        scan(3, 9.0, 12.2),  # late: behind the watermark (11.1 s)
        scan(4, 500.0, 12.3),  # absurdly far in the future
    ]
    for r in records:
        eng.push(r)
        # the prompt detector has the record before the clock reaches its receive time
        assert prompt.seen[-1:] == [(r.t_ns, r.scan)] or r.scan in (1, 3, 4)
        eng.advance(r.t_rx_ns)
    # Receive order, refused records left out; the ordered detector still gets time order.
    assert [s for _, s in prompt.seen] == [0, 2, 1, 5]
    eng.finish()
    assert [s for _, s in ordered.seen] == [0, 1, 2, 5]
    assert ledger.total() == 3
    # Scan 0 and 5 alert twice (once per detector); the prompt detector's alert on scan 5
    # is decided at its receive time, the ordered one's a lateness window later.
    fives = sorted(a.t_detect_ns for a in alerts if a.summary == "scan 5")
    assert len(fives) == 2 and fives[0] == int(12.1 * S) < fives[1], fives
