"""Session-scoped caches: each simulated scenario run is made once per test session."""

from __future__ import annotations

import pytest

from tests.gnss.helpers import Run, run_scenario


@pytest.fixture(scope="session")
def scenario_run():
    cache: dict[tuple[str, int, float], Run] = {}

    def get(name: str, seed: int, duration_s: float) -> Run:
        key = (name, seed, float(duration_s))
        if key not in cache:
            cache[key] = run_scenario(*key)
        return cache[key]

    return get
