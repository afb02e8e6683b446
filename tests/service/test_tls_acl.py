"""The deploy/ broker configuration: TLS with client certificates, and ACLs that stop a
sensor from publishing as another. Uses the real files from deploy/ with only the
port, certificate paths and persistence changed for the test."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fusion.cli.service import Service
from tests.service.conftest import free_port, wait_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def make_broker(tmp: Path, certs: Path, site_id: str = "dc-east-1") -> tuple[subprocess.Popen, int]:
    port = free_port()
    conf = (DEPLOY / "mosquitto" / "site-broker.conf").read_text()
    conf = conf.replace("listener 8883", f"listener {port} 127.0.0.1")
    conf = conf.replace("/etc/mosquitto/certs/", f"{certs}/").replace("broker.pem", "broker.pem")
    conf = conf.replace("persistence true", "persistence false").replace(
        "persistence_location /var/lib/mosquitto/\n", ""
    )
    conf = conf.replace("/etc/mosquitto/rampart.acl", str(tmp / "rampart.acl"))
    acl = (DEPLOY / "mosquitto" / "rampart.acl").read_text().replace("dc-east-1", site_id)
    (tmp / "rampart.acl").write_text(acl)
    if os.geteuid() == 0:
        # As root, mosquitto drops to user "mosquitto", which cannot read keys made
        # 0600 by root here; in production the broker's own key is owned by it.
        conf += "user root\n"
    (tmp / "broker.conf").write_text(conf)
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        [exe, "-c", str(tmp / "broker.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    wait_port(port)
    return proc, port


def tls_client(certs: Path, cn: str, port: int) -> mqtt.Client:
    c = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=cn, protocol=mqtt.MQTTv5
    )
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.load_cert_chain(str(certs / f"{cn}.pem"), str(certs / f"{cn}.key"))
    c.tls_set_context(ctx)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def test_tls_client_certs_and_acl(tmp_path):
    certs = tmp_path / "certs"
    subprocess.run(
        [
            "bash",
            str(DEPLOY / "make-dev-certs.sh"),
            str(certs),
            "rampart-dc-east-1",
            "radar-1",
            "rf-1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    proc, port = make_broker(tmp_path, certs)
    site = (DEPLOY / "site.example.toml").read_text()
    site = site.replace("port = 8883", f"port = {port}").replace("/etc/rampart/certs/", f"{certs}/")
    site = site.replace('listen = "127.0.0.1:9108"', f'listen = "127.0.0.1:{free_port()}"')
    site = site.replace('dir = "/var/lib/rampart"', f'dir = "{tmp_path / "state"}"')
    cfg = tmp_path / "site.toml"
    cfg.write_text(site)
    service = Service(cfg)
    runner = threading.Thread(target=service.run, kwargs={"max_seconds": 60}, daemon=True)
    runner.start()
    try:
        assert service.mqtt.wait_connected(15), service.mqtt.last_error
        radar = tls_client(certs, "radar-1", port)
        now = time.time()
        ok = radar.publish(
            "rampart/dc-east-1/radar/radar-1/plots",
            json.dumps({"sensor": "radar-1", "t": now, "scan": 1, "plots": []}),
            qos=1,
        )
        ok.wait_for_publish(5)
        # radar-1 pretending to be the RF sensor: the broker refuses it (ACL), Rampart never sees it.
        forged = radar.publish(
            "rampart/dc-east-1/rf/rf-1/detections",
            json.dumps({"sensor": "rf-1", "t": now, "detections": []}),
            qos=1,
        )
        forged.wait_for_publish(5)
        deadline = time.monotonic() + 10
        while (
            time.monotonic() < deadline
            and service.pipeline.engine.delivered_by_sensor.get("radar-1", 0) < 1
        ):
            time.sleep(0.05)
        time.sleep(1.0)  # time for a forged message to arrive, had it been let through
        assert service.pipeline.engine.delivered_by_sensor.get("radar-1", 0) == 1
        assert service.intake.received.get("rampart/dc-east-1/rf/rf-1/detections", 0) == 0
        radar.loop_stop()
        radar.disconnect()
        # No client certificate: the TLS handshake is refused.
        bare = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="intruder",
            protocol=mqtt.MQTTv5,
        )
        bare.tls_set_context(ssl.create_default_context(cafile=str(certs / "ca.pem")))
        refused = False
        try:
            bare.connect("127.0.0.1", port)
            bare.loop_start()
            time.sleep(1.0)
            refused = not bare.is_connected()
        except (ssl.SSLError, OSError):
            refused = True
        finally:
            bare.loop_stop()
        assert refused
    finally:
        service.stop_event.set()
        runner.join(timeout=20)
        proc.terminate()
        proc.wait(timeout=10)
