"""A flood at 10x the site's normal message rate for 60 s, through a real mosquitto into the service.

Usage: python benchmarks/live_flood.py [--seconds 60] [--factor 10] [--queue 2000]

Starts mosquitto on a free loopback port and the service (``Service``, as
``rampart run`` builds it) in this process. Normal traffic: a radar scan a
second, RF reports and three spectrum sweeps a second, and a switchgear
heartbeat. The flood: the radar topic at FACTOR times the site's whole normal
message rate, with realistic scan payloads. Prints the service's resident
memory over time (it must stay flat), per-source received / dropped /
delivered counts, and whether the quiet sensors kept flowing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fusion.cli.service import Service
from tests.service.conftest import Broker, free_port

SITE = """
[site]
id = "flood"
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
topic = "rampart/flood/radar/radar-1/plots"

[[sensors]]
id = "rf-1"
kind = "rf"
lat = 52.0
lon = 4.0
alt_m = 20.0
transport = "mqtt"
topic = "rampart/flood/rf/rf-1/+"

[intake]
queue_per_source = {queue}

[mqtt]
port = {port}

[http]
listen = "127.0.0.1:{http}"

[state]
dir = "state"
"""


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--factor", type=float, default=10.0)
    ap.add_argument("--queue", type=int, default=2000)
    args = ap.parse_args()
    normal_rate = 1 + 1 + 3  # scans, RF reports, sweeps per second
    flood_rate = args.factor * normal_rate
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp))
        broker.start()
        cfg = Path(tmp) / "site.toml"
        cfg.write_text(SITE.format(port=broker.port, http=free_port(), queue=args.queue))
        service = Service(cfg)
        runner = threading.Thread(
            target=service.run, kwargs={"max_seconds": args.seconds + 30}, daemon=True
        )
        runner.start()
        service.mqtt.wait_connected(15)
        pub = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="flooder",
            protocol=mqtt.MQTTv5,
        )
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        plots = [
            {
                "range_m": 1000.0 + i,
                "az_deg": i * 7.0 % 360,
                "el_deg": 2.0,
                "vr_mps": -1.0,
                "rcs_dbsm": -10.0,
                "snr_db": 20.0,
            }
            for i in range(20)
        ]
        rss = []
        t0 = time.monotonic()
        sent = {"radar": 0, "rf": 0}
        next_normal = t0
        scan = 0
        while (elapsed := time.monotonic() - t0) < args.seconds:
            now = time.time()
            for _ in range(int(flood_rate / 100) or 1):  # flood in 10 ms slices
                pub.publish(
                    "rampart/flood/radar/radar-1/plots",
                    json.dumps({"sensor": "radar-1", "t": now, "scan": scan, "plots": plots}),
                    qos=0,
                )
                scan += 1
                sent["radar"] += 1
            if time.monotonic() >= next_normal:
                pub.publish(
                    "rampart/flood/rf/rf-1/detections",
                    json.dumps({"sensor": "rf-1", "t": now, "detections": []}),
                    qos=1,
                )
                sent["rf"] += 1
                next_normal += 1.0
            if not rss or elapsed - rss[-1][0] >= 5.0:
                rss.append((elapsed, rss_mb()))
            time.sleep(0.01)
        time.sleep(2.0)
        pub.loop_stop()
        pub.disconnect()
        service.stop_event.set()
        runner.join(timeout=30)
        broker.stop()
    delivered = service.pipeline.engine.delivered_by_sensor
    print(
        f"flood: radar at ~{flood_rate:.0f} msg/s ({args.factor:g}x the site's {normal_rate} msg/s) for {args.seconds:g} s, intake queue {args.queue}/source"
    )
    print("resident memory (MB) over time: " + ", ".join(f"{t:.0f}s {m:.0f}" for t, m in rss))
    print(f"  growth after warm-up: {rss[-1][1] - rss[min(2, len(rss) - 1)][1]:+.0f} MB")
    for src in sorted(service.intake.received):
        print(
            f"  {src:<45} received {service.intake.received[src]:>8}  dropped {service.intake.dropped[src]:>8}"
        )
    print(
        f"  delivered to detectors: radar-1 {delivered.get('radar-1', 0)}, rf-1 {delivered.get('rf-1', 0)} (rf sent {sent['rf']})"
    )
    print(f"  rejected: {service.pipeline.ledger.by_source()}")


if __name__ == "__main__":
    main()
