"""Session fixtures: simulated radar + RF recordings, replayed once through the drone detector."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from drivers.recording import RecordingReader
from fusion.alerts import encode_alert
from fusion.cli.replay import ReplayResult, replay
from fusion.config import SiteConfig, parse_config
from fusion.drone import DroneDetector
from fusion.score import score
from tests.drone.scenes import radar_rf_recording


@dataclass
class DroneRun:
    rec: Path
    site: SiteConfig
    result: ReplayResult
    detector: DroneDetector
    alerts: list[dict]
    score: dict

    def drone_alerts(self, kind: str | None = None) -> list[dict]:
        kinds = (kind,) if kind else ("drone_approach", "drone_detected")
        return [a for a in self.alerts if a["kind"] in kinds]


class Runs:
    """Builds and replays (scenario, seed, duration) recordings on demand, each once per session."""

    def __init__(self, root: Path):
        self.root = root
        self._cache: dict[tuple, DroneRun] = {}

    def __call__(self, name: str, seed: int, duration_s: float | None = None) -> DroneRun:
        key = (name, seed, duration_s)
        if key not in self._cache:
            rec = radar_rf_recording(
                name, seed, self.root / f"{name}-{seed}-{duration_s}", duration_s
            )
            site = parse_config(RecordingReader(rec).site_toml())
            det = DroneDetector(site)
            result = replay(rec, site, [], detectors=[det])
            alerts = [json.loads(encode_alert(a)) for a in result.pipeline.alerts]
            sc = score(
                pl.read_parquet(rec / "truth.parquet"),
                alerts,
                result.span_ns,
                det.tracks_frame(),
                pl.read_parquet(rec / "truth_tracks.parquet"),
            )
            self._cache[key] = DroneRun(rec, site, result, det, alerts, sc)
        return self._cache[key]


@pytest.fixture(scope="session")
def drone_runs(tmp_path_factory) -> Runs:
    return Runs(tmp_path_factory.mktemp("drone-recordings"))
