"""Clock-skew supervision: a sensor clock behind or ahead of the edge box opens sensor_fault."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.clock_skew import ClockSkewSupervision
from fusion.config import EngineSettings, Sensor
from fusion.engine import Engine
from fusion.incidents import IncidentBook
from fusion.records import RadarScan
from fusion.rejects import RejectLedger
from fusion.supervision import SensorSupervision

S = 1_000_000_000
RADAR = Sensor("radar-1", "radar", "mqtt", 52.0, 4.0, 10.0, topic="t", fault_after_s=5.0)


def run(offsets_s, jitter_s=0.2, seed=1):
    """One scan a second; sensor clock = edge clock - offset; latency 20 ms + jitter."""
    rng = np.random.default_rng(seed)
    alerts = []
    ledger = RejectLedger()
    eng = Engine(
        [SensorSupervision([RADAR]), ClockSkewSupervision([RADAR], 2.0)],
        IncidentBook("site"),
        ledger,
        alerts.append,
        EngineSettings(lateness_s=1.0),
    )
    for i, off in enumerate(offsets_s):
        t_rx = (1000 + i) * S
        t = t_rx - int((0.02 + rng.uniform(0, jitter_s) + off) * S)
        eng.push(RadarScan("radar-1", t, t_rx, i, np.zeros((0, 6))))
        eng.advance(t_rx)
    eng.finish()
    return alerts, ledger


def test_clock_in_step_raises_nothing():
    alerts, ledger = run([0.0] * 200)
    assert alerts == [] and ledger.total() == 0


@pytest.mark.parametrize("offset", [5.0, -5.0])
def test_skewed_clock_opens_and_closes(offset):
    alerts, ledger = run([0.0] * 40 + [offset] * 60 + [0.0] * 60)
    skew = [a for a in alerts if a.details.get("reason") == "clock_skew"]
    assert [a.state for a in skew] == ["open", "closed"]
    assert skew[0].details["offset_s"] == pytest.approx(offset + 0.02, abs=0.05)
    assert ("behind" if offset > 0 else "ahead of") in skew[0].summary
    if offset > 0:
        # A clock 5 s behind makes every record late: counted, and now explained.
        assert ledger.total("radar-1", "late") > 0


def test_latency_jitter_is_not_skew():
    alerts, _ = run([0.0] * 200, jitter_s=1.5)
    assert [a for a in alerts if a.details.get("reason") == "clock_skew"] == []
