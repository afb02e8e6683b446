"""Issue #7: /readyz only once the Numba kernels are compiled (``warm_up``).

For each detector with kernels, in a fresh interpreter (so no kernel is loaded
yet; Numba's on-disk cache may hold them, and loading one counts as a compile
here): build the detector for
the simulated site, call ``warm_up()``, count the compiled signatures of every
Numba dispatcher in ``fusion``, replay a short simulated recording the detector
reads, and check that the replay compiled nothing more; ``warm_up`` itself must
leave the detector exactly as built (pickled state unchanged) and return nothing.

And the service: ``/readyz`` stays 503 while ``warm_up`` runs, 200 only after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from drivers.recording import RecordingWriter
from drivers.simulated import scenarios
from fusion.cli.service import Service
from fusion.config import parse_config
from fusion.drone import DroneDetector
from tests.service.conftest import free_port
from tests.service.test_service import get, wait_for

ROOT = Path(__file__).resolve().parents[2]

# detector -> (its class, scenario, seed, duration s, sensor kinds it reads)
CASES = {
    "gnss": ("fusion.gnss:GnssDetector", "jamming", 1, 150.0, ("gnss", "rf")),
    "power": ("fusion.power:PowerTransientDetector", "emp", 1, 30.0, ("power", "switchgear", "rf")),
    "drone": ("fusion.drone:DroneDetector", "approach", 1, 240.0, ("radar", "rf")),
}

# Runs in a fresh interpreter: argv = recording dir, "module:Class".
CHILD = r"""
import importlib, json, pickle, sys, time

from numba.core.registry import CPUDispatcher

from drivers.recording import RecordingReader
from fusion.cli.replay import replay
from fusion.config import parse_config


def signatures():
    out = {}
    for name, mod in list(sys.modules.items()):
        if name == "fusion" or name.startswith("fusion."):
            for v in list(vars(mod).values()):
                if isinstance(v, CPUDispatcher):
                    out[f"{v.py_func.__module__}.{v.py_func.__qualname__}"] = len(v.signatures)
    return out


rec, target = sys.argv[1], sys.argv[2]
mod_name, cls_name = target.split(":")
cls = getattr(importlib.import_module(mod_name), cls_name)
site = parse_config(RecordingReader(rec).site_toml())
det = cls(site)
before = signatures()
state = pickle.dumps(det)
t0 = time.perf_counter()
returned = det.warm_up()
t1 = time.perf_counter()
warmed = signatures()
unchanged = pickle.dumps(det) == state
res = replay(rec, site, [], detectors=[det])
t2 = time.perf_counter()
after = signatures()
print(json.dumps({
    "before": before,
    "warmed": warmed,
    "after": after,
    "returned": repr(returned),
    "state_unchanged": unchanged,
    "delivered": sum(res.pipeline.engine.delivered_by_sensor.values()),
    "state_changed_by_replay": pickle.dumps(det) != state,
    "seconds": {"warm_up": round(t1 - t0, 2), "replay": round(t2 - t1, 2)},
}))
"""


def _recording(tmp: Path, name: str, seed: int, duration_s: float, kinds: tuple) -> Path:
    """The scenario's feeds of the sensors of ``kinds`` only (the rest is not read)."""
    site_toml, out = scenarios.build(name, seed, duration_s)
    site = parse_config(site_toml)
    wanted = [s for s in site.sensors if s.kind in kinds]
    ids = {s.id for s in wanted}
    topics = {s.topic.rsplit("/", 1)[0] for s in wanted if s.topic}
    rows = [r for r in out.feeds if r.channel in ids or r.channel.rsplit("/", 1)[0] in topics]
    assert rows
    path = tmp / "rec"
    with RecordingWriter(path, site_toml) as w:
        w.extend(rows)
    return path


@pytest.mark.slow  # with a cold cache, the drone tracker's compile alone takes most of a minute
@pytest.mark.parametrize("which", sorted(CASES))
def test_warm_up_compiles_every_kernel_the_live_path_uses(which, tmp_path):
    target, name, seed, duration_s, kinds = CASES[which]
    rec = _recording(tmp_path, name, seed, duration_s, kinds)
    # A fresh interpreter has no kernel loaded: every signature a dispatcher holds was
    # compiled or loaded from Numba's on-disk cache in it, which counts the same here,
    # and sharing the cache keeps this test from recompiling everything.
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NUMBA_DISABLE_JIT", None)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(rec), target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    print(which, r["seconds"])
    before, warmed = r["before"], r["warmed"]
    assert any(n > before.get(k, 0) for k, n in warmed.items()), "warm_up compiled nothing"
    late = {k: (warmed.get(k, 0), n) for k, n in r["after"].items()}
    late = {k: v for k, v in late.items() if v[1] > v[0]}
    assert not late, f"compiled after warm_up (signatures before, after replay): {late}"
    assert r["returned"] == "None"
    assert r["state_unchanged"], "warm_up changed the detector's state"
    assert r["delivered"] > 0 and r["state_changed_by_replay"], "the replay did not reach it"


@pytest.mark.parametrize("which", sorted(CASES))
def test_warm_up_leaves_the_detector_as_built(which):
    """In process: nothing tracked, counted or open after warm_up, and nothing returned."""
    from drivers.simulated.site import sim_site

    mod_name, cls_name = CASES[which][0].split(":")
    cls = getattr(__import__(mod_name, fromlist=[cls_name]), cls_name)
    det = cls(sim_site())
    assert det.warm_up() is None
    if isinstance(det, DroneDetector):
        assert det.tracker.scans == 0 and det.tracker.n_tracks() == (0, 0)
        assert not det.incidents and not det.infos and det.last_scan_ns is None
    elif which == "power":
        assert not any(det.counts.values()) and not det.events and not det._incidents
        assert all(st.chain is None and st.frames == 0 for st in det.streams())
        assert not det.burst_log and not det.snippets
    else:
        assert all(m.messages == 0 for m in det.receivers.values())
        assert all(m.sweeps == 0 for m in det.rf.values())
        assert not det._any_open()
    assert det.on_tick(2_000_000_000 * 1_000_000_000) == []


SITE = """
[site]
id = "warm"
lat = 52.0
lon = 4.0
alt_m = 10.0

[http]
listen = "127.0.0.1:{http}"

[state]
dir = "state"
"""


class _Gate:
    """A detector whose warm_up blocks until released."""

    name = "gate"
    consumes = ()

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def warm_up(self) -> None:
        self.calls += 1
        self.entered.set()
        self.release.wait(30)

    def on_record(self, record) -> list:
        return []

    def on_tick(self, watermark_ns: int) -> list:
        return []


def test_readyz_turns_200_only_after_warm_up_returns(tmp_path, monkeypatch):
    import fusion.cli.service as service_module

    # A warm-up longer than the stall limit (a first start compiling every kernel) is
    # progress, not a hang: /healthz stays 200 so a liveness probe does not restart it.
    monkeypatch.setattr(service_module, "HEALTH_STALL_S", 0.3)
    http_port = free_port()
    cfg = tmp_path / "site.toml"
    cfg.write_text(SITE.format(http=http_port))
    service = Service(cfg)
    gate = _Gate()
    service.pipeline.detectors.append(gate)
    runner = threading.Thread(target=service.run, kwargs={"max_seconds": 60}, daemon=True)
    runner.start()
    base = f"http://127.0.0.1:{http_port}"
    try:
        assert gate.entered.wait(20), "warm_up was not called"
        wait_for(lambda: get(base + "/healthz")[0] == 200, 15, "health")
        time.sleep(0.6)  # twice the (patched) stall limit, still warming up
        assert get(base + "/healthz")[0] == 200
        code, body = get(base + "/readyz")
        assert code == 503 and "warming up" in body
        gate.release.set()
        wait_for(lambda: get(base + "/readyz")[0] == 200, 15, "readiness after warm_up")
        assert gate.calls == 1
    finally:
        gate.release.set()
        service.stop_event.set()
        runner.join(timeout=20)
