"""The vendored real data is byte-identical to what its manifests list."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.conftest import DATA


@pytest.mark.parametrize("folder", ["gnss", "power"])
def test_manifest_hashes(folder):
    manifest = (DATA / folder / "MANIFEST.sha256").read_text().splitlines()
    checked = 0
    for line in manifest:
        if not line.strip() or line.startswith("#"):
            continue
        digest, name = line.split(maxsplit=1)
        path = DATA / folder / name.lstrip("*")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name
        checked += 1
    assert checked >= 10


def test_trajectory_raw_files_match_their_summary():
    """``trajectories/`` has no MANIFEST: its ``summary.json`` lists each raw file's sha256."""
    folder = DATA / "trajectories"
    summary = json.loads((folder / "summary.json").read_text())
    for name, entry in summary.items():
        raw = folder / entry["raw_file"]
        assert hashlib.sha256(raw.read_bytes()).hexdigest() == entry["raw_sha256"], name
        assert (raw.parent / f"{name}.traj.csv").is_file(), name
    assert len(summary) >= 7
