"""Shared pieces of the configuration-trust tests: a small signed site, keys, a Service
whose reloads are driven from the test, and the alerts it sent."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from drivers.config_trust import keygen, sign
from fusion.cli.service import Service, TrustPolicy
from tests.service.conftest import free_port

BASE = """[site]
id = "trust"
lat = 52.0
lon = 4.0
alt_m = 10.0

[config]
serial = {serial}

[supervision]
max_clock_skew_s = {skew}

[http]
listen = "127.0.0.1:{http}"

[state]
dir = "state"
"""


class ListSink:
    def __init__(self):
        self.alerts = []

    def send(self, alert):
        self.alerts.append(alert)

    def close(self):
        pass

    def kinds(self, kind: str) -> list:
        return [a for a in self.alerts if a.kind == kind]


def make_keys(tmp_path: Path, names=("alice", "bob"), ring_names=("alice", "bob")):
    """Private keys in tmp_path/NAME (public halves beside them); ring holds ``ring_names``."""
    ring = tmp_path / "keyring"
    ring.mkdir(exist_ok=True)
    keys = {}
    for name in names:
        keygen(tmp_path / name)
        keys[name] = tmp_path / name
    for name in ring_names:
        (ring / f"{name}.pub").write_bytes((tmp_path / f"{name}.pub").read_bytes())
    return ring, keys


def write_config(path: Path, serial: int = 1, skew: float = 2.0, port: int | None = None) -> Path:
    path.write_text(BASE.format(serial=serial, skew=skew, http=port or free_port()))
    return path


def signed(path: Path, *keys: Path, **fields) -> Path:
    write_config(path, **fields)
    Path(f"{path}.sig").unlink(missing_ok=True)
    for key in keys:
        sign(path, key)
    return path


def make_service(cfg: Path, ring: Path, sink: ListSink | None = None, **policy) -> Service:
    return Service(cfg, sinks=[sink] if sink is not None else [], trust=TrustPolicy(ring, **policy))


def close(service: Service) -> None:
    """A Service constructed but never run: release its listening socket."""
    service.http.httpd.server_close()


def start(service: Service) -> threading.Thread:
    t = threading.Thread(target=service.run, kwargs={"max_seconds": 90}, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while not service.ready and time.monotonic() < deadline:
        time.sleep(0.02)
    return t


def stop(service: Service, runner: threading.Thread) -> None:
    service.stop_event.set()
    runner.join(timeout=30)


def wait_for(cond, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def flushed(service: Service) -> None:
    """Findings raised before the loop runs (start-up refusals, keyring) go out now."""
    service._flush_pending()
