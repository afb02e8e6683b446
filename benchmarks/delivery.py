"""Delivery figures: outbox commit rate, and per sink the throughput and commit-to-confirm latency.

    .venv/bin/python benchmarks/delivery.py [--alerts 2000] [--probes 50]

Starts the same real servers as the tests (mosquitto with mutual TLS, rsyslog
with a TLS listener, an HTTPS webhook receiver) on free loopback ports, then
for each sink alone:

- throughput: ``--alerts`` alerts sent as fast as the pipeline can commit them,
  until the sink confirmed the last one;
- latency: ``--probes`` single alerts, one at a time, from ``send`` (commit to
  the outbox) to the sink's confirmation (PUBACK, TCP acknowledgement + settle
  time for syslog, HTTP 200, fsync), p50 and p99. For MQTT also until a
  subscriber on the broker has the message.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from drivers.sinks.config import build_delivery  # noqa: E402
from drivers.sinks.outbox import Outbox  # noqa: E402
from fusion.config import load_config  # noqa: E402
from tests.sinks.burst import burst_alert  # noqa: E402
from tests.sinks.conftest import service_toml  # noqa: E402
from tests.sinks.servers import Mosquitto, Rsyslog, WebhookReceiver, make_certs, stop_all  # noqa: E402


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def outbox_rate(d: Path, n: int) -> None:
    ob = Outbox(d / "bench.sqlite", ["a", "b", "c"])
    t = time.perf_counter()
    for i in range(n):
        ob.put(burst_alert(i))
    put_s = time.perf_counter() - t
    items = ob.due("a", n)
    t = time.perf_counter()
    for k in range(0, len(items), 100):
        ob.confirm("a", [it.id for it in items[k : k + 100]])
    conf_s = time.perf_counter() - t
    ob.close()
    print(
        f"outbox (WAL, synchronous=FULL): put {n / put_s:,.0f} alerts/s "
        f"({put_s / n * 1e3:.2f} ms each, one fsync per alert); "
        f"confirm in batches of 100: {n / conf_s:,.0f} alerts/s"
    )


class _Sub:
    """A paho subscriber that notes when each alert_id arrives."""

    def __init__(self, broker: Mosquitto, certs):
        self.arrived: dict[str, float] = {}
        self.ready = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sub", protocol=mqtt.MQTTv5)
        cert, key = certs.client("soc")
        c.tls_set(str(certs.ca), str(cert), str(key))
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe("rampart/+/alerts", qos=1)
        c.on_subscribe = lambda *a: self.ready.set()
        c.on_message = self._on_message
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        self.client = c
        self.ready.wait(10)

    def _on_message(self, client, userdata, msg):
        import json

        self.arrived[json.loads(msg.payload)["alert_id"]] = time.perf_counter()

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def bench_sink(
    name: str, d: Path, certs, n: int, probes: int, sub: _Sub | None = None, **servers
) -> None:
    sd = d / name
    sd.mkdir()
    cfg = service_toml(sd, certs, **servers)
    delivery = build_delivery(load_config(cfg), sd, outbox_path=sd / "o.sqlite")
    time.sleep(0.5)  # connected
    alerts = [burst_alert(i) for i in range(n)]
    t = time.perf_counter()
    for a in alerts:
        delivery.send(a)
    commit_s = time.perf_counter() - t
    ok = delivery.drain(300)
    total_s = time.perf_counter() - t
    lat, arrive = [], []
    for i in range(probes):
        a = burst_alert(n + i)
        t = time.perf_counter()
        delivery.send(a)
        while delivery.outbox.pending() and time.perf_counter() - t < 30:
            time.sleep(0.0005)
        lat.append(time.perf_counter() - t)
        if sub is not None:
            while a.alert_id not in sub.arrived and time.perf_counter() - t < 30:
                time.sleep(0.0005)
            arrive.append(sub.arrived.get(a.alert_id, t) - t)
    delivery.close()
    line = (
        f"{name:<8} {n / total_s:>8,.0f} alerts/s{'' if ok else ' (NOT drained)'} "
        f"(commit {n / commit_s:,.0f}/s)   send->confirm p50 {statistics.median(lat) * 1e3:6.1f} ms"
        f"  p99 {pct(lat, 0.99) * 1e3:6.1f} ms"
    )
    if arrive:
        line += f"   send->subscriber p50 {statistics.median(arrive) * 1e3:.1f} ms p99 {pct(arrive, 0.99) * 1e3:.1f} ms"
    print(line)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--alerts", type=int, default=2000)
    p.add_argument("--probes", type=int, default=50)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="rampart-bench-") as tmp:
        d = Path(tmp)
        outbox_rate(d, args.alerts)
        certs = make_certs(d / "certs", clients=("client", "soc"))
        broker = Mosquitto(d / "broker", certs, extra="max_queued_messages 1000000\n").start()
        rsyslog = Rsyslog(d / "rsyslog", certs).start()
        secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        webhook = WebhookReceiver(certs, secret)
        sub = _Sub(broker, certs)
        try:
            print(
                f"{args.alerts} alerts per sink, then {args.probes} one-at-a-time probes; loopback, TLS"
            )
            bench_sink("mqtt", d, certs, args.alerts, args.probes, sub=sub, broker=broker)
            bench_sink("syslog", d, certs, args.alerts, args.probes, rsyslog=rsyslog)
            bench_sink(
                "webhook", d, certs, args.alerts, args.probes, webhook=webhook, secret=secret
            )
            bench_sink("jsonl", d, certs, args.alerts, args.probes, jsonl=True)
        finally:
            sub.close()
            stop_all(webhook, rsyslog, broker)


if __name__ == "__main__":
    main()
