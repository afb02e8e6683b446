"""Regression by replay (the gpsd habit): each replay_data/ scenario gives exactly its expected alerts."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from drivers.jsonl_sink import JsonlSink
from drivers.recording import RecordingReader
from fusion.cli.replay import replay
from fusion.config import parse_config

REPLAY_DATA = Path(__file__).resolve().parents[1] / "replay_data"
SCENARIOS = sorted(p.parent for p in REPLAY_DATA.glob("*/expected-alerts.jsonl"))


def test_there_are_recorded_scenarios():
    assert len(SCENARIOS) >= 2


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)
def test_replay_matches_expected_alerts(scenario, tmp_path):
    site = parse_config(RecordingReader(scenario).site_toml())
    sink = JsonlSink(tmp_path / "alerts.jsonl")
    replay(scenario, site, [sink])
    sink.close()
    got = (tmp_path / "alerts.jsonl").read_text().splitlines()
    want = (scenario / "expected-alerts.jsonl").read_text().splitlines()
    if got != want:
        diff = "\n".join(difflib.unified_diff(want, got, "expected", "got", lineterm="", n=1))
        pytest.fail(
            f"{scenario.name}: alerts changed; if intended, run `make regen-replay-data`\n{diff}"
        )
