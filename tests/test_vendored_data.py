"""The vendored real data is byte-identical to what its manifests list."""

from __future__ import annotations

import hashlib

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
