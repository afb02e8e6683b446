"""The service loads only configurations signed by two trusted keys; a refused or changed
configuration is itself an alert, and every alert carries the configuration's hash."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time

import pytest

from drivers.audit_log import verify_file
from drivers.config_trust import sign
from fusion.cli.service import Service, TrustPolicy
from fusion.config import ConfigError
from tests.security.trust_helpers import BASE as SITE
from tests.security.trust_helpers import ListSink, make_keys
from tests.service.conftest import free_port

# The trust tests' site, at serial 1 with a 2 s skew limit; {http} filled per test.
BASE = SITE.format(serial=1, skew=2.0, http="{http}")


@pytest.fixture
def keys(tmp_path):
    return make_keys(tmp_path)


def start(service):
    t = threading.Thread(target=service.run, kwargs={"max_seconds": 60}, daemon=True)
    t.start()
    deadline = time.monotonic() + 15
    while not service.ready and time.monotonic() < deadline:
        time.sleep(0.02)
    return t


def wait_for(cond, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_signed_config_lifecycle(tmp_path, keys):
    ring, k = keys
    cfg = tmp_path / "site.toml"
    cfg.write_text(BASE.format(http=free_port()))
    sign(cfg, k["alice"])
    sign(cfg, k["bob"])
    policy = TrustPolicy(ring, 2)
    sink = ListSink()
    service = Service(cfg, sinks=[sink], trust=policy)
    runner = start(service)
    try:
        good_sha = hashlib.sha256(cfg.read_bytes()).hexdigest()
        assert service.pipeline.config_sha256 == good_sha
        # An insider raises a threshold and signs alone: refused, alerted, old config kept.
        cfg.write_text(
            cfg.read_text()
            .replace("max_clock_skew_s = 2.0", "max_clock_skew_s = 3000.0")
            .replace("serial = 1", "serial = 2")  # a new version: a higher serial
        )
        sign(cfg, k["alice"])
        service.reload_requested.set()
        assert wait_for(lambda: any(a.kind == "config_refused" for a in sink.alerts))
        refused = next(a for a in sink.alerts if a.kind == "config_refused")
        assert refused.severity == "high" and "2 required" in refused.summary
        assert refused.config_sha256 == good_sha  # sent under the configuration still in force
        assert service.pipeline.config_sha256 == good_sha
        # The second person signs: accepted, and the change is itself an alert.
        sign(cfg, k["bob"])
        service.reload_requested.set()
        assert wait_for(lambda: any(a.kind == "config_changed" for a in sink.alerts))
        changed = next(a for a in sink.alerts if a.kind == "config_changed")
        assert changed.details["old_sha256"] == good_sha
        assert changed.details["new_sha256"] == hashlib.sha256(cfg.read_bytes()).hexdigest()
        assert len(set(changed.details["signers"])) == 2
    finally:
        service.stop_event.set()
        runner.join(timeout=20)
    # The audit log holds the load, the refusal, the alerts and the new load, intact.
    log = tmp_path / "state" / "audit.log"
    assert verify_file(log).ok
    types = [json.loads(line)["type"] for line in log.read_text().splitlines()]
    # The first start pinned the keyring (trust on first use): audited before the load.
    assert types[:2] == ["keyring_changed", "config_load"]
    assert "config_refused" in types and types.count("config_load") == 2
    assert types.count("alert") == len(sink.alerts)


def test_one_signature_at_start_falls_back_to_last_accepted_and_alerts(tmp_path, keys):
    ring, k = keys
    cfg = tmp_path / "site.toml"
    cfg.write_text(BASE.format(http=free_port()))
    sign(cfg, k["alice"])
    policy = TrustPolicy(ring, 2)
    with pytest.raises(ConfigError, match="2 required"):
        Service(cfg, trust=policy)  # nothing accepted before: does not start
    sign(cfg, k["bob"])
    Service(cfg, trust=policy).http.httpd.server_close()  # accepted once: kept as last accepted
    cfg.write_text(cfg.read_text().replace("serial = 1", "serial = 2") + "\n# edited\n")
    sign(cfg, k["alice"])
    sink = ListSink()
    service = Service(cfg, sinks=[sink], trust=policy)
    runner = start(service)
    try:
        assert wait_for(lambda: any(a.kind == "config_refused" for a in sink.alerts))
        assert "# edited" not in service.site.text  # running the last accepted one
    finally:
        service.stop_event.set()
        runner.join(timeout=20)


def test_cli_refuses_to_run_unsigned_without_explicit_flag(tmp_path, keys):
    ring, _ = keys
    cfg = tmp_path / "site.toml"
    cfg.write_text(BASE.format(http=free_port()))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fusion",
            "run",
            "--config",
            str(cfg),
            "--keyring",
            str(ring),
            "--trust-state",
            str(tmp_path / "trust"),
            "--max-seconds",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "configuration refused; not starting" in out.stderr
    assert "no signatures" in out.stderr
    nokeys = subprocess.run(
        [
            sys.executable,
            "-m",
            "fusion",
            "run",
            "--config",
            str(cfg),
            "--keyring",
            str(tmp_path / "none"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert nokeys.returncode == 2 and "--allow-unsigned" in nokeys.stderr
