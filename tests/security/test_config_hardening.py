"""Loading a configuration cannot be crashed: every bad file is refused, alerted
(config_refused), audited, and the running configuration stays (issue #12 findings 1, 2,
4 and 6; the race of finding 3 is in test_config_race.py, the keyring in test_keyring.py)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drivers.config_trust import sig_path, sign, verify_bytes
from drivers.keyring import load_view
from fusion.cli.service import TrustPolicy
from fusion.config import ConfigError
from tests.security.trust_helpers import (
    ListSink,
    close,
    flushed,
    make_keys,
    make_service,
    signed,
    write_config,
)


def rampart(*args):
    return subprocess.run(
        [sys.executable, "-m", "fusion", *args], capture_output=True, text=True, timeout=90
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def audit_types(tmp_path: Path) -> list[str]:
    log = tmp_path / "state" / "audit.log"
    return [json.loads(line)["type"] for line in log.read_text().splitlines()]


@pytest.fixture
def site(tmp_path):
    ring, keys = make_keys(tmp_path)
    cfg = signed(tmp_path / "site.toml", keys["alice"], keys["bob"], serial=1)
    return tmp_path, cfg, ring, keys


# --- finding 1: a non-UTF-8 byte in CONFIG.sig -----------------------------------------------


def test_bad_byte_appended_to_sig_neither_stops_a_reload_nor_a_restart(site):
    _, cfg, ring, _ = site
    sink = ListSink()
    service = make_service(cfg, ring, sink)
    try:
        good = service.pipeline.config_sha256
        with open(sig_path(cfg), "ab") as f:
            f.write(b"\xff")
        service.reload()  # was: UnicodeDecodeError out of the reload, the service exited
        # A damaged .sig is refused whole (no signing tool writes one), line named.
        assert service.pipeline.config_sha256 == good
        (refused,) = sink.kinds("config_refused")
        assert refused.details["reason"] == "signatures"
        assert any("site.toml.sig:3: not UTF-8" in p for p in refused.details["problems"])
        assert "damaged" in refused.summary
    finally:
        close(service)
    sink = ListSink()
    restarted = make_service(cfg, ring, sink)  # a restart runs the last accepted one
    flushed(restarted)
    close(restarted)
    assert restarted.pipeline.config_sha256 == good and sink.kinds("config_refused")
    out = rampart("config", "verify", str(cfg), "--keyring", str(ring))
    assert out.returncode == 1, out.stderr
    assert "site.toml.sig:3: not UTF-8" in out.stdout and "Traceback" not in out.stderr


def test_bad_byte_inside_a_signature_line_is_a_refusal_not_a_crash(site):
    tmp_path, cfg, ring, _ = site
    sink = ListSink()
    service = make_service(cfg, ring, sink)
    try:
        good = service.pipeline.config_sha256
        lines = sig_path(cfg).read_bytes().split(b"\n")
        broken = lines[0][:40] + b"\xc3\x28" + lines[0][40:]  # an invalid UTF-8 sequence
        sig_path(cfg).write_bytes(b"\n".join([broken, *lines[1:]]))
        service.reload()
        assert service.pipeline.config_sha256 == good
        refused = sink.kinds("config_refused")
        assert len(refused) == 1 and refused[0].severity == "high"
        assert refused[0].details["reason"] == "signatures"
        assert any("not UTF-8" in p for p in refused[0].details["problems"])
        assert refused[0].details["sha256"] == sha(cfg)
        assert "config_refused" in audit_types(tmp_path)
    finally:
        close(service)
    out = rampart("config", "verify", str(cfg), "--keyring", str(ring))
    assert out.returncode == 1 and "not UTF-8" in out.stdout and "Traceback" not in out.stderr


# --- finding 2: a junk *.pub in the keyring ---------------------------------------------------


def test_junk_pub_in_keyring_is_ignored_and_alerted_not_fatal(site):
    _, cfg, ring, _ = site
    sink = ListSink()
    service = make_service(cfg, ring, sink)
    try:
        (ring / "junk.pub").write_bytes(b"\x00\xffnot a key at all")
        service.reload()  # was: TrustError out of load_keyring, the service exited
        assert service.pipeline.config_sha256 == sha(cfg)
        junk = [a for a in sink.kinds("keyring_changed") if "junk.pub" in a.summary]
        assert len(junk) == 1 and junk[0].severity == "high"
        assert "not a public key" in junk[0].details["reason"]
        service.reload()  # unchanged keyring: not alerted again
        assert len([a for a in sink.kinds("keyring_changed") if "junk.pub" in a.summary]) == 1
    finally:
        close(service)
    fresh_sink = ListSink()
    fresh = make_service(cfg, ring, fresh_sink)  # a fresh start works too, and says so
    flushed(fresh)
    close(fresh)
    assert any("junk.pub" in a.summary for a in fresh_sink.kinds("keyring_changed"))
    out = rampart("config", "verify", str(cfg), "--keyring", str(ring))
    assert out.returncode == 0 and "ignored" in out.stdout and "junk.pub" in out.stdout


# --- finding 4: rollback ----------------------------------------------------------------------


def test_older_signed_configuration_copied_back_is_a_rollback(site):
    tmp_path, cfg, ring, keys = site
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(cfg, old / "site.toml")
    shutil.copy(sig_path(cfg), old / "site.toml.sig")
    sink = ListSink()
    service = make_service(cfg, ring, sink)
    try:
        v1 = service.pipeline.config_sha256
        port = service.site.section("http")["listen"].rsplit(":", 1)[1]
        signed(cfg, keys["alice"], keys["bob"], serial=2, skew=3.0, port=int(port))
        service.reload()
        v2 = service.pipeline.config_sha256
        assert v2 != v1 and service.site.serial == 2 and sink.kinds("config_changed")
        service.reload()  # the same file again: fine
        assert service.pipeline.config_sha256 == v2 and not sink.kinds("config_refused")
        shutil.copy(old / "site.toml", cfg)  # validly signed by two people, but older
        shutil.copy(old / "site.toml.sig", sig_path(cfg))
        service.reload()
        assert service.pipeline.config_sha256 == v2
        (refused,) = sink.kinds("config_refused")
        assert refused.details["reason"] == "rollback"
        assert "serial 1 is not above the last accepted serial 2" in refused.summary
        assert len(refused.details["valid_signers"]) == 2
    finally:
        close(service)
    # A restart with the old file in place runs the last accepted one instead, and says so.
    sink = ListSink()
    service = make_service(cfg, ring, sink)
    try:
        flushed(service)
        assert service.pipeline.config_sha256 == v2
        (refused,) = sink.kinds("config_refused")
        assert refused.details["reason"] == "rollback" and refused.details["running"]
    finally:
        close(service)
    out = rampart(
        "config", "verify", str(cfg), "--keyring", str(ring), "--state", str(tmp_path / "state")
    )
    assert out.returncode == 1 and "rollback" in out.stdout


def test_serial_must_be_a_non_negative_integer(tmp_path):
    cfg = write_config(tmp_path / "site.toml")
    cfg.write_text(cfg.read_text().replace("serial = 1", 'serial = "two"'))
    out = rampart("check-config", str(cfg))
    assert out.returncode == 1 and "config.serial (line 8): must be an integer >= 0" in out.stdout
    cfg.write_text(cfg.read_text().replace('serial = "two"', "serial = -1"))
    assert "config.serial" in rampart("check-config", str(cfg)).stdout


# --- finding 6: malformed TOML ----------------------------------------------------------------


def test_malformed_toml_on_reload_is_alerted_and_audited(site):
    tmp_path, cfg, ring, keys = site
    sink = ListSink()
    service = make_service(cfg, ring, sink)
    try:
        good = service.pipeline.config_sha256
        cfg.write_text(cfg.read_text() + "\n[broken\n")
        signed_bytes = cfg.read_bytes()
        sign(cfg, keys["alice"])
        sign(cfg, keys["bob"])  # signed by both, and still not TOML
        assert cfg.read_bytes() == signed_bytes
        service.reload()
        assert service.pipeline.config_sha256 == good
        (refused,) = sink.kinds("config_refused")
        assert refused.details["reason"] == "invalid" and "not valid TOML" in refused.summary
        cfg.write_bytes(b"\xff\xfe[site]\n")  # not even text, and unsigned
        service.reload()
        cfg.unlink()  # gone
        service.reload()
        assert service.pipeline.config_sha256 == good
        assert audit_types(tmp_path).count("config_refused") == 3  # every refusal
        # Alerts: refusals in quick succession are one incident's updates, throttled by
        # [incidents] update_interval_s; the newest is held back, never lost.
        now = time.time_ns()
        for t in (now, now + 5 * 10**9):  # the loop's clock ticks, as in Service.run
            service.pipeline.engine.advance(t)
        assert sink.kinds("config_refused")[-1].details["reason"] == "unreadable"
    finally:
        close(service)


def test_invalid_detector_settings_are_refused_before_they_are_kept(site):
    tmp_path, cfg, ring, keys = site
    service = make_service(cfg, ring, ListSink())
    try:
        kept = (tmp_path / "state" / "last-accepted.toml").read_bytes()
        cfg.write_text(
            cfg.read_text().replace("serial = 1", "serial = 2")
            + "\n[incidents]\nupdate_interval_s = -5\n"
        )
        sign(cfg, keys["alice"])
        sign(cfg, keys["bob"])
        service.reload()
        assert service.site.serial == 1
        assert (tmp_path / "state" / "last-accepted.toml").read_bytes() == kept
    finally:
        close(service)


# --- start-up ---------------------------------------------------------------------------------


def test_unusable_file_at_start_falls_back_to_the_last_accepted(site):
    tmp_path, cfg, ring, _ = site
    state = tmp_path / "state"
    close(make_service(cfg, ring, state_dir=state))  # accepted once: kept
    good = sha(cfg)
    cfg.write_text("[site\nthis is not toml")  # the state dir cannot be read from it
    sink = ListSink()
    service = make_service(cfg, ring, sink, state_dir=state)
    try:
        flushed(service)
        assert service.pipeline.config_sha256 == good
        (refused,) = sink.kinds("config_refused")
        assert refused.details["reason"] == "signatures" and "last accepted" in refused.summary
    finally:
        close(service)
    kept = (state / "last-accepted.toml").read_bytes()
    verdict = verify_bytes(
        kept, (state / "last-accepted.toml.sig").read_bytes(), load_view(ring, state, 2).trusted
    )
    assert verdict.ok and verdict.sha256 == good


def test_no_fallback_means_no_start_with_one_clear_line(tmp_path):
    ring, _ = make_keys(tmp_path)
    cfg = write_config(tmp_path / "site.toml")
    sig_path(cfg).write_bytes(b"\xff\n{not json\n[1, 2]\n")
    with pytest.raises(ConfigError):
        make_service(cfg, ring)
    for content in (b"\xff\xfe\x00", b"[site\n"):
        cfg.write_bytes(content)
        out = rampart(
            "run",
            "--config",
            str(cfg),
            "--keyring",
            str(ring),
            "--trust-state",
            str(tmp_path / "trust"),
            "--max-seconds",
            "5",
        )
        assert out.returncode == 1, out.stderr
        plain = [ln for ln in out.stderr.splitlines() if ln.startswith("rampart:")]
        assert len(plain) == 1 and "configuration refused; not starting" in plain[0]
        assert "Traceback" not in out.stderr
    # Unreadable input for `config verify`: exit 2, one line.
    out = rampart("config", "verify", str(tmp_path / "missing.toml"), "--keyring", str(ring))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "missing.toml" in out.stderr
    out = rampart("config", "verify", str(tmp_path), "--keyring", str(ring))  # a directory
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_state_dir_is_fixed_at_start(site):
    """A reload cannot move the pin or the kept configuration: a signed change of [state]
    dir takes effect at the next start, as for the audit log."""
    tmp_path, cfg, ring, keys = site
    service = make_service(cfg, ring, ListSink(), state_dir=tmp_path / "trust")
    try:
        assert (tmp_path / "trust" / "trusted-keys.json").is_file()
        assert TrustPolicy(ring).state_dir is None
        cfg.write_text(
            cfg.read_text().replace("serial = 1", "serial = 2").replace('"state"', '"elsewhere"')
        )
        sign(cfg, keys["alice"])
        sign(cfg, keys["bob"])
        service.reload()
        assert service.site.serial == 2
        assert (tmp_path / "trust" / "last-accepted.toml").read_bytes() == cfg.read_bytes()
        assert not (tmp_path / "elsewhere").exists()
    finally:
        close(service)
