"""Shared fixtures: where the vendored real data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data" / "shared"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return DATA


@pytest.fixture(scope="session")
def sample_recording() -> Path:
    return DATA / "recording-sample"
