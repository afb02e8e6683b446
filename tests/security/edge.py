"""A real ``rampart run`` in its own process, as the red team met it: signed
configuration, keyring, state directory, a real mosquitto, the jsonl sink as
the SOC's copy of what was sent, and the process's JSON log.

Used by ``test_red_team.py``; every wait is bounded in time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from drivers.config_trust import keygen, sign
from tests.service.conftest import free_port

SITE = """[site]
id = "red"
lat = 52.0
lon = 4.0
alt_m = 10.0

[config]
serial = {serial}

[[zones]]
name = "hall"
polygon = [[52.001, 3.999], [52.001, 4.001], [51.999, 4.001], [51.999, 3.999]]
alert_radius_m = 1500.0

[[sensors]]
id = "radar-1"
kind = "radar"
lat = 52.0
lon = 4.0
alt_m = 20.0
transport = "mqtt"
topic = "rampart/red/radar/radar-1/plots"
fault_after_s = {fault_after}

[supervision]
max_clock_skew_s = {skew}

[engine]
lateness_s = 0.3

[mqtt]
host = "127.0.0.1"
port = {broker}
client_id = "rampart-red"

[http]
listen = "127.0.0.1:{http}"

[state]
dir = "state"

[audit]
head_every_s = 1.0

[outbox]
backlog_alert_s = 2

[[sinks]]
type = "jsonl"
path = "alerts.jsonl"
fsync = false
{extra_sinks}"""

# A sink whose broker never answers: its backlog must raise delivery_backlog.
DEAD_SINK = """
[[sinks]]
type = "mqtt"
name = "dead-soc"
host = "127.0.0.1"
port = {dead}
topic = "rampart/red/alerts"
client_id = "rampart-red-dead"
"""


def config_text(
    broker: int,
    http: int,
    serial: int = 1,
    skew: float = 2.0,
    fault_after: float = 0.0,
    dead_sink: bool = False,
) -> str:
    extra = DEAD_SINK.format(dead=free_port()) if dead_sink else ""
    return SITE.format(
        broker=broker,
        http=http,
        serial=serial,
        skew=skew,
        fault_after=fault_after,
        extra_sinks=extra,
    )


class Edge:
    """One site's edge box: files on disk and, while started, the service process."""

    def __init__(self, root: Path, broker_port: int, dead_sink: bool = False):
        self.root = root
        self.broker_port = broker_port
        self.http = free_port()
        self.dead_sink = dead_sink
        self.config = root / "site.toml"
        self.keyring = root / "keyring"
        self.keyring.mkdir()
        self.keys: dict[str, Path] = {}
        for name in ("alice", "bob"):
            self.keys[name] = self.new_key(name, into_keyring=True)
        self.state = root / "state"
        # The pin and the rollback floor: a directory the configuration does not name.
        self.trust_state = root / "trust"
        self.alerts_path = root / "alerts.jsonl"
        self.log_path = root / "service.log"
        self.proc: subprocess.Popen | None = None
        self.write_config(serial=1)

    # --- files -------------------------------------------------------------------------
    def new_key(self, name: str, into_keyring: bool) -> Path:
        key = self.root / "keys" / name
        key.parent.mkdir(exist_ok=True)
        keygen(key)
        if into_keyring:
            shutil.copy(f"{key}.pub", self.keyring / f"{name}.pub")
        return key

    def text(self, **kw) -> str:
        return config_text(self.broker_port, self.http, dead_sink=self.dead_sink, **kw)

    def write_config(self, signers=("alice", "bob"), path: Path | None = None, **kw) -> bytes:
        """Writes a configuration (and its signatures by ``signers``); returns its bytes."""
        path = path or self.config
        path.write_text(self.text(**kw))
        Path(f"{path}.sig").unlink(missing_ok=True)
        for who in signers:
            sign(path, self.keys[who])
        return path.read_bytes()

    # --- the process ---------------------------------------------------------------------
    def start(self, max_seconds: float = 240.0, wait_ready: bool = True) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fusion",
                "run",
                "--config",
                str(self.config),
                "--keyring",
                str(self.keyring),
                "--trust-state",
                str(self.trust_state),
                "--max-seconds",
                str(max_seconds),
            ],
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if wait_ready:
            self.wait(lambda: self.get("/readyz")[0] == 200, 90, "the service to be ready")
            # /metrics is a snapshot the engine loop takes once a second.
            self.wait(lambda: self.running_sha() != "", 10, "the first metrics snapshot")

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        code = self.proc.returncode
        self.proc = None
        self._log.close()
        return code

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sighup(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            return 0, str(e)

    def wait(self, cond, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cond():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"the service exited ({self.proc.returncode}) while waiting for {what}:\n"
                    + self.log_tail()
                )
            time.sleep(0.05)
        raise AssertionError(
            f"timed out after {timeout_s} s waiting for {what}\n" + self.log_tail()
        )

    # --- what it said ------------------------------------------------------------------
    def alerts(self) -> list[dict]:
        if not self.alerts_path.exists():
            return []
        out = []
        for line in self.alerts_path.read_bytes().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line being written
        return out

    def alerts_of(self, kind: str, since: int = 0) -> list[dict]:
        return [a for a in self.alerts()[since:] if a["kind"] == kind]

    def wait_alert(self, kind: str, since: int = 0, timeout_s: float = 30.0, where=None) -> dict:
        found: list[dict] = []

        def seen() -> bool:
            found[:] = [a for a in self.alerts_of(kind, since) if where is None or where(a)]
            return bool(found)

        self.wait(seen, timeout_s, f"a {kind} alert")
        return found[0]

    def running_sha(self) -> str:
        """The configuration in force, as /metrics says (rampart_config_info{sha256=...})."""
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith("rampart_config_info{"):
                return line.split('sha256="', 1)[1].split('"', 1)[0]
        return ""

    def log_records(self) -> list[dict]:
        out = []
        for line in self.log_path.read_bytes().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"msg": line.decode("utf-8", "replace")})
        return out

    def log_tail(self, n: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def audit_records(self) -> list[dict]:
        path = self.state / "audit.log"
        out = []
        for line in path.read_bytes().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out
