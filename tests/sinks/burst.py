"""A Rampart delivery process under test: a burst of alerts through the configured sinks.

    python -m tests.sinks.burst SERVICE.toml --first K --count N --rate R [--drain S]

Builds the delivery path from the service configuration exactly as the
service and ``rampart replay --deliver`` do (``build_delivery``: the outbox
under ``[state] dir``, one worker per sink), sends alerts K..N-1 at R per
second, printing ``committed i`` once alert i is in the outbox, then waits up
to S seconds for every sink to confirm everything and prints ``drained`` or
``undelivered``. Alert i has the same id and content in every run, so a
restarted process can carry on where a killed one stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from drivers.sinks.config import build_delivery
from fusion.alerts import Alert, deterministic_ulid
from fusion.config import load_config

NS = 1_000_000_000
T0 = 1_767_225_600 * NS
KINDS = [
    ("drone_approach", "high", {"track_id": 7, "zone": "hall-a"}),
    ("gnss_jamming", "high", {"bands": ["L1"]}),
    ("power_transient", "critical", {"subtype": "emp_like"}),
    ("power_transient", "low", {"subtype": "switching"}),
    ("sensor_fault", "medium", {"reason": "silent"}),
    ("drone_detected", "info", {"track_id": 9}),
]


def burst_alert(i: int, site: str = "sim-site") -> Alert:
    kind, severity, details = KINDS[i % len(KINDS)]
    t = T0 + i * 10_000_000
    incident = deterministic_ulid(t, site, "burst", i)
    return Alert(
        alert_id=deterministic_ulid(t, incident, 1),
        incident_id=incident,
        seq=1,
        state="open",
        kind=kind,
        severity=severity,
        confidence=0.9,
        site=site,
        sensors=["radar-1"],
        t_event_ns=t,
        t_detect_ns=t + 5_000_000,
        summary=f"burst alert {i} ({kind})",
        details={**details, "i": i},
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("config", type=Path)
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--drain", type=float, default=120.0)
    args = p.parse_args(argv)
    service = load_config(args.config)
    delivery = build_delivery(service, args.config.parent)
    t0 = time.monotonic()
    for n, i in enumerate(range(args.first, args.count)):
        due = t0 + n / args.rate
        if (delay := due - time.monotonic()) > 0:
            time.sleep(delay)
        delivery.send(burst_alert(i, service.site.id))
        print(f"committed {i}", flush=True)
    ok = delivery.close(args.drain)
    print("drained" if ok else f"undelivered {delivery.undelivered}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
