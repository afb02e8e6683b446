"""Issue #5 acceptance on simulated scenarios, through the full replay pipeline.

- ``emp`` and ``coordinated`` (5 seeds each): every EMP-like event is alerted as
  ``emp_like``, decided on data no more than 100 ms after the impulse, and
  scored as detected by ``fusion.score`` (no miss, no duplicate, no false alarm).
- ``switching`` and ``quiet_hour``: no ``emp_like`` at all, and each switching
  operation, sag and fault is reported as what it is.

Recordings are simulated once per session (``scenarios.build``) and keep only
what this detector reads (power front-ends, switchgear, RF): radar and GNSS
decoding would cost most of the replay time and change nothing here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drivers.recording import RecordingReader, RecordingWriter
from drivers.simulated import scenarios
from fusion.alerts import encode_alert
from fusion.cli.replay import replay
from fusion.config import parse_config
from fusion.power.detector import PowerTransientDetector
from fusion.score import score
from fusion.supervision import SensorSupervision

NS = 1_000_000_000
SEEDS = (1, 2, 3, 4, 5)
KINDS_READ = ("power", "switchgear", "rf")


@pytest.fixture(scope="session")
def recordings(tmp_path_factory):
    cache: dict[tuple[str, int, float | None], Path] = {}

    def get(name: str, seed: int, duration_s: float | None = None) -> Path:
        key = (name, seed, duration_s)
        if key not in cache:
            site_toml, out = scenarios.build(name, seed, duration_s)
            site = parse_config(site_toml)
            wanted = [s for s in site.sensors if s.kind in KINDS_READ]
            ids = {s.id for s in wanted}
            topics = {s.topic.rsplit("/", 1)[0] for s in wanted if s.topic}
            rows = [
                r for r in out.feeds if r.channel in ids or r.channel.rsplit("/", 1)[0] in topics
            ]
            path = tmp_path_factory.mktemp(f"{name}-{seed}")
            with RecordingWriter(path, site_toml) as w:
                w.extend(rows)
                w.write_truth(out.truth)
            cache[key] = path
        return cache[key]

    return get


def replayed(rec: Path) -> tuple[list[dict], dict, list]:
    reader = RecordingReader(rec)
    site = parse_config(reader.site_toml())
    res = replay(
        rec, site, [], detectors=[SensorSupervision(site.sensors), PowerTransientDetector(site)]
    )
    alerts = [json.loads(encode_alert(a)) for a in res.pipeline.alerts]
    truth = reader.truth()
    return alerts, score(truth, alerts, res.span_ns), truth.to_dicts()


def emp_checks(alerts: list[dict], scored: dict, truth: list[dict]) -> list[float]:
    """Every EMP truth row detected by one emp_like incident decided within 100 ms of data."""
    rows = [t for t in truth if t["kind"] == "power_transient_emp"]
    emp = scored["kinds"]["power_transient_emp"]
    assert rows and emp["truth"] == len(rows)
    assert emp["detected"] == len(rows), scored["truth_rows"]
    assert emp["false_alarms"] == 0 and emp["duplicates"] == 0
    assert scored["totals"]["false_alarms"] == 0
    firsts = {}
    for a in alerts:
        if a["details"].get("subtype") == "emp_like":
            firsts.setdefault(a["incident_id"], a)
    assert len(firsts) == len(rows)
    latencies = []
    for row in rows:
        a = next(a for a in firsts.values() if abs(a["t_event_ns"] - row["t_start_ns"]) < 1_000_000)
        decided = a["details"]["decided_at_data_ns"]
        assert decided - row["t_start_ns"] <= 100_000_000, (row, a["details"])
        # ... and sent within 100 ms of the impulse: the alert's detection time is
        # the receive time of the frame that completed the evidence.
        assert a["t_detect_ns"] - row["t_start_ns"] <= 100_000_000, (row, a["t_detect_ns"])
        assert set(a["details"]["feeds_all_phases"]) == {"A", "B"}
        assert a["severity"] in ("high", "critical")
        latencies.append((a["t_detect_ns"] - row["t_start_ns"]) / 1e6)
    assert emp["timely"] == len(rows), scored["truth_rows"]
    return latencies


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_emp_scenario_every_impulse_is_emp_like(recordings, seed):
    alerts, scored, truth = replayed(recordings("emp", seed))
    lat = emp_checks(alerts, scored, truth)
    assert max(lat) <= 100


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_coordinated_scenario_impulse_is_emp_like(recordings, seed):
    alerts, scored, truth = replayed(recordings("coordinated", seed, 240.0))
    emp_checks(alerts, scored, truth)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_emp_family_scenario_every_member_is_emp_like(recordings, seed):
    """Issue #13: EMP-like events drawn from the simulator's family (coupling, saturation
    at a 2-4 pu full scale, single-sample impulses, kHz ringing, 0-0.6 ms spread)."""
    alerts, scored, truth = replayed(recordings("emp_family", seed))
    emp_checks(alerts, scored, truth)
    opens = [a for a in alerts if a["kind"] == "power_transient" and a["state"] == "open"]
    assert {a["details"]["subtype"] for a in opens} == {"emp_like"}, [a["summary"] for a in opens]


@pytest.mark.slow
@pytest.mark.parametrize("seed", (1, 2))
def test_switching_scenario_never_emp_like_and_names_each_event(recordings, seed):
    alerts, scored, truth = replayed(recordings("switching", seed))
    assert not [a for a in alerts if a["details"].get("subtype") == "emp_like"]
    assert scored["totals"]["false_alarms"] == 0
    opens = [a for a in alerts if a["kind"] == "power_transient" and a["state"] == "open"]
    assert all(a["severity"] in ("info", "low") for a in opens)
    expect = {"switching": "switching", "sag": "sag", "fault": "fault"}
    for row in (t for t in truth if t["kind"] in expect):
        near = [
            a
            for a in opens
            if row["t_start_ns"] - 50_000_000 <= a["t_event_ns"] <= row["t_end_ns"] + 50_000_000
        ]
        assert [a["details"]["subtype"] for a in near] == [expect[row["kind"]]], row


@pytest.mark.slow
def test_quiet_hour_alerts_nothing(recordings):
    alerts, _scored, _ = replayed(recordings("quiet_hour", 1, 300.0))
    assert not [a for a in alerts if a["kind"] == "power_transient"]
