"""Two-person rule: `rampart keygen`, `rampart config sign` and `rampart config verify`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import DATA


def rampart(*args):
    return subprocess.run(
        [sys.executable, "-m", "fusion", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def setup(tmp_path):
    ring = tmp_path / "keyring"
    ring.mkdir()
    keys = {}
    for name in ("alice", "bob", "mallory"):
        assert rampart("keygen", "--out", str(tmp_path / name)).returncode == 0
        keys[name] = tmp_path / name
    for name in ("alice", "bob"):  # mallory is not trusted
        (ring / f"{name}.pub").write_bytes((tmp_path / f"{name}.pub").read_bytes())
    cfg = tmp_path / "site.toml"
    cfg.write_text((DATA / "recording-sample" / "site.toml").read_text())
    return cfg, ring, keys


def verify(cfg, ring, *extra):
    return rampart("config", "verify", str(cfg), "--keyring", str(ring), *extra)


def test_key_files(setup, tmp_path):
    _, _, keys = setup
    assert oct(keys["alice"].stat().st_mode & 0o777) == "0o600"
    assert b"BEGIN PUBLIC KEY" in (tmp_path / "alice.pub").read_bytes()
    again = rampart("keygen", "--out", str(keys["alice"]))
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr


def test_one_signature_is_refused(setup):
    cfg, ring, keys = setup
    rampart("config", "sign", str(cfg), "--key", str(keys["alice"]))
    out = verify(cfg, ring)
    assert (
        out.returncode == 1
        and "1 valid signature(s) by distinct trusted keys; 2 required" in out.stdout
    )


def test_two_valid_signatures_load(setup):
    cfg, ring, keys = setup
    rampart("config", "sign", str(cfg), "--key", str(keys["alice"]))
    rampart("config", "sign", str(cfg), "--key", str(keys["bob"]))
    out = verify(cfg, ring)
    assert out.returncode == 0 and "signed by 2 trusted keys" in out.stdout


def test_same_key_twice_counts_once(setup):
    cfg, ring, keys = setup
    rampart("config", "sign", str(cfg), "--key", str(keys["alice"]))
    rampart("config", "sign", str(cfg), "--key", str(keys["alice"]))
    assert len(cfg.with_name("site.toml.sig").read_text().splitlines()) == 1
    assert verify(cfg, ring).returncode == 1


def test_untrusted_key_is_refused(setup):
    cfg, ring, keys = setup
    rampart("config", "sign", str(cfg), "--key", str(keys["alice"]))
    rampart("config", "sign", str(cfg), "--key", str(keys["mallory"]))
    out = verify(cfg, ring)
    assert out.returncode == 1 and "is not in the trusted keyring" in out.stdout


def test_signature_over_a_modified_file_is_refused(setup):
    cfg, ring, keys = setup
    rampart("config", "sign", str(cfg), "--key", str(keys["alice"]))
    rampart("config", "sign", str(cfg), "--key", str(keys["bob"]))
    # The insider's one-line change: a larger alert radius never reaches a drone... or a wider fault window.
    cfg.write_text(cfg.read_text().replace("alert_radius_m = 1500.0", "alert_radius_m = 15.0"))
    out = verify(cfg, ring)
    assert out.returncode == 1 and out.stdout.count("the file changed since it was signed") == 2


def test_threshold_change_without_signatures_is_refused(setup):
    cfg, ring, _ = setup
    cfg.write_text(cfg.read_text() + "\n[supervision]\nmax_clock_skew_s = 3600\n")
    out = verify(cfg, ring)
    assert out.returncode == 1 and "no signatures" in out.stdout


def test_min_one_accepts_a_single_signer_when_asked(setup):
    cfg, ring, keys = setup
    rampart("config", "sign", str(cfg), "--key", str(keys["alice"]))
    assert verify(cfg, ring, "--min", "1").returncode == 0
