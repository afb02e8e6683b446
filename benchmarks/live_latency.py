"""Live latency: sensor message published -> alert received by a SOC subscriber, through mosquitto.

Usage: python benchmarks/live_latency.py [--rates 1000,2000,5000] [--seconds 20] [--lateness 0.05,1.0]

A mosquitto on a free loopback port; ``rampart run`` (as a subprocess, as a
site runs it) subscribed to its sensors and publishing alerts to the same
broker through its MQTT sink (QoS 1, behind the durable outbox); a SOC
subscriber on ``rampart/{site}/alerts``. A publisher sends radar scans at the
given total rate, and ten times a second a message on a topic no sensor owns,
each of which must raise its own ``sensor_spoofing`` (unknown_source) alert:
the time from that publish to the alert's arrival at the subscriber is the
latency. Run for each engine lateness window: detectors see data in time order,
so an alert can come no sooner than the window after the message that
decides it; the window is the knob that trades latency for tolerance of
out-of-order arrival. Also prints start-to-ready time with a warm kernel cache.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.service.conftest import Broker, free_port

SITE = """[site]
id = "lat"
lat = 52.0
lon = 4.0
alt_m = 10.0

[[sensors]]
id = "radar-1"
kind = "radar"
lat = 52.0
lon = 4.0
alt_m = 20.0
transport = "mqtt"
topic = "rampart/lat/radar/radar-1/plots"

[engine]
lateness_s = {lateness}

[incidents]
storm_threshold = 0  # every trigger is its own incident here; storm control would fold them

[mqtt]
port = {port}

[http]
listen = "127.0.0.1:{http}"

[state]
dir = "{state}"

[[sinks]]
type = "mqtt"
topic = "rampart/lat/alerts"
qos = 1
"""


def ready(http: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/readyz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def run(rate: float, seconds: float, lateness: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp))
        broker.start()
        http = free_port()
        cfg = Path(tmp) / "site.toml"
        cfg.write_text(
            SITE.format(lateness=lateness, port=broker.port, http=http, state=Path(tmp) / "state")
        )
        t_start = time.monotonic()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fusion",
                "run",
                "--config",
                str(cfg),
                "--allow-unsigned",
                "--max-seconds",
                str(seconds + 60),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while not ready(http) and time.monotonic() - t_start < 60:
            time.sleep(0.02)
        ready_s = time.monotonic() - t_start
        received: dict[str, int] = {}
        lock = threading.Lock()

        def on_alert(client, userdata, msg):
            alert = json.loads(msg.payload)
            if alert.get("kind") == "sensor_spoofing" and alert.get("state") == "open":
                with lock:
                    received[alert["sensors"][0]] = time.time_ns()

        sub = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="soc", protocol=mqtt.MQTTv5
        )
        sub.on_message = on_alert
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("rampart/lat/alerts", qos=1)
        sub.loop_start()
        pub = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="sensors",
            protocol=mqtt.MQTTv5,
        )
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        time.sleep(1.0)
        sent: dict[str, int] = {}
        t0 = time.monotonic()
        n = 0
        next_trigger = t0
        while (now := time.monotonic()) - t0 < seconds:
            due = int((now - t0) * rate)
            while n < due:
                pub.publish(
                    "rampart/lat/radar/radar-1/plots",
                    json.dumps({"sensor": "radar-1", "t": time.time(), "scan": n, "plots": []}),
                )
                n += 1
            if now >= next_trigger:
                topic = f"rampart/lat/radar/ghost-{len(sent)}/plots"
                sent[topic] = time.time_ns()
                pub.publish(topic, b"{}")
                next_trigger += 0.1
            time.sleep(0.001)
        time.sleep(max(3.0, 3 * lateness))
        pub.loop_stop()
        sub.loop_stop()
        proc.terminate()
        proc.wait(timeout=30)
        broker.stop()
    lat_ms = sorted((received[t] - sent[t]) / 1e6 for t in sent if t in received)
    return {
        "rate": rate,
        "lateness": lateness,
        "achieved": n / seconds,
        "ready_s": ready_s,
        "alerts": f"{len(lat_ms)}/{len(sent)}",
        "p50": statistics.median(lat_ms) if lat_ms else float("nan"),
        "p99": lat_ms[min(len(lat_ms) - 1, int(0.99 * len(lat_ms)))] if lat_ms else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="1000,2000,5000")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--lateness", default="0.05,1.0")
    args = ap.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    print(
        f"{'lateness s':>10} {'rate msg/s':>10} {'achieved':>9} {'alerts':>9} {'p50 ms':>8} {'p99 ms':>8} {'ready s':>8}"
    )
    for lateness in (float(x) for x in args.lateness.split(",")):
        for rate in (float(x) for x in args.rates.split(",")):
            r = run(rate, args.seconds, lateness)
            print(
                f"{r['lateness']:>10.2f} {r['rate']:>10.0f} {r['achieved']:>9.0f} {r['alerts']:>9} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['ready_s']:>8.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
