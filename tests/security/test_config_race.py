"""Finding 3: the configuration file swapped between signed and unsigned versions while
reloads arrive. The service reads the bytes once, so what runs is always bytes that carry
two trusted signatures, and the kept last-accepted copy always verifies."""

from __future__ import annotations

import hashlib
import os
import threading
import time

from drivers.config_trust import read_signed, sig_path, verify_bytes
from drivers.keyring import load_view
from fusion.cli.service import Service, TrustPolicy
from tests.security.trust_helpers import ListSink, make_keys, signed, start, stop, write_config
from tests.service.conftest import free_port

MIN_SWAPS = 200
MIN_RELOADS = 100
TIME_BUDGET_S = 40.0


class ObservedService(Service):
    """Checks, on the engine thread right after each reload, what it now runs."""

    def __init__(self, *args, check, **kwargs):
        super().__init__(*args, **kwargs)
        self.check = check
        self.reloads = 0
        self.done = threading.Event()

    def reload(self) -> None:
        super().reload()
        self.check(self)
        self.reloads += 1
        self.done.set()


def test_swapping_the_file_under_reloads_never_runs_unsigned_bytes(tmp_path):
    ring, keys = make_keys(tmp_path, names=("alice", "bob", "mallory"))
    port = free_port()
    versions = tmp_path / "versions"
    versions.mkdir()
    # Two good versions (serial 1 and 2), one signed by one trusted key and one untrusted,
    # one unsigned; each with its own .sig, and the good .sig left beside the bad files.
    good1 = signed(versions / "good1.toml", keys["alice"], keys["bob"], serial=1, port=port)
    good2 = signed(
        versions / "good2.toml", keys["alice"], keys["bob"], serial=2, skew=3.0, port=port
    )
    half = signed(versions / "half.toml", keys["alice"], keys["mallory"], serial=9, port=port)
    unsigned = write_config(versions / "unsigned.toml", serial=7, skew=9000.0, port=port)
    good = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in (good1, good2)}
    pairs = [
        (good1, sig_path(good1)),
        (good2, sig_path(good2)),
        (half, sig_path(half)),
        (unsigned, sig_path(good1)),
        (unsigned, None),
    ]
    cfg = tmp_path / "site.toml"
    cfg.write_bytes(good1.read_bytes())
    sig_path(cfg).write_bytes(sig_path(good1).read_bytes())
    state = tmp_path / "state"
    problems: list[str] = []
    seen: list[str] = []

    def check(service: Service) -> None:
        running = service.pipeline.config_sha256
        seen.append(running)
        if running not in good:
            problems.append(f"running unsigned bytes {running}")
        data, sig = read_signed(state / "last-accepted.toml")
        trusted = load_view(ring, state, 2).trusted
        if not verify_bytes(data, sig, trusted, 2).ok:
            problems.append("last-accepted.toml does not verify")
        if hashlib.sha256(data).hexdigest() != running:
            problems.append("last-accepted.toml is not what runs")
        if len(seen) >= 2 and seen[-2] == sha(good2) and running != sha(good2):
            problems.append("went back from serial 2 to serial 1")

    def sha(p):
        return hashlib.sha256(p.read_bytes()).hexdigest()

    sink = ListSink()
    service = ObservedService(cfg, sinks=[sink], trust=TrustPolicy(ring, 2), check=check)
    runner = start(service)
    stop_swapping = threading.Event()
    swaps = [0]

    def swapper() -> None:
        # Prepared copies are renamed into place (os.replace), as an attacker or an editor does.
        n = 0
        while not stop_swapping.is_set():
            conf, sig = pairs[n % len(pairs)]
            tmp = tmp_path / f".swap{n % 2}"
            tmp.write_bytes(conf.read_bytes())
            os.replace(tmp, cfg)
            if sig is None:
                sig_path(cfg).unlink(missing_ok=True)
            else:
                tmp.write_bytes(sig.read_bytes())
                os.replace(tmp, sig_path(cfg))
            n += 1
            swaps[0] = n

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIME_BUDGET_S
    try:
        while time.monotonic() < deadline and (
            swaps[0] < MIN_SWAPS or service.reloads < MIN_RELOADS
        ):
            service.done.clear()
            service.reload_requested.set()
            service.done.wait(timeout=5)
    finally:
        stop_swapping.set()
        thread.join(timeout=5)
        stop(service, runner)
    assert swaps[0] >= MIN_SWAPS and service.reloads >= MIN_RELOADS, (swaps[0], service.reloads)
    assert problems == []
    assert set(seen) <= set(good)
    assert seen[-1] == sha(good2)  # the newer signed version was taken, and never rolled back
    assert sink.kinds("config_refused")  # the bad versions were seen, and refused
