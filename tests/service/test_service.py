"""``rampart run`` live: a real mosquitto, real MQTT publishers, the status endpoint."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fusion.cli.service import Service
from tests.service.conftest import free_port

SITE = """
[site]
id = "live"
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
topic = "rampart/live/radar/radar-1/plots"
fault_after_s = 2.0

[[sensors]]
id = "rf-1"
kind = "rf"
lat = 52.0
lon = 4.0
alt_m = 20.0
transport = "mqtt"
topic = "rampart/live/rf/rf-1/+"
fault_after_s = 2.0

[engine]
lateness_s = 0.3

[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "rampart-test"

[http]
listen = "127.0.0.1:{http}"

[state]
dir = "state"
"""


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except urllib.error.URLError as e:  # not listening (yet)
        return 0, str(e.reason)


def publisher(port: int) -> mqtt.Client:
    c = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="sensor-sim",
        protocol=mqtt.MQTTv5,
    )
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def wait_for(cond, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_live_mqtt_supervision_health_and_metrics(broker, tmp_path):
    http_port = free_port()
    cfg = tmp_path / "site.toml"
    cfg.write_text(SITE.format(port=broker.port, http=http_port))
    alerts = []

    class ListSink:
        def send(self, alert):
            alerts.append(alert)

        def close(self):
            pass

    service = Service(cfg, sinks=[ListSink()], record_dir=tmp_path / "rec")
    runner = threading.Thread(target=service.run, kwargs={"max_seconds": 60}, daemon=True)
    runner.start()
    base = f"http://127.0.0.1:{http_port}"
    wait_for(lambda: get(base + "/readyz")[0] == 200, 15, "readiness")
    assert get(base + "/healthz") == (200, "ok\n")
    pub = publisher(broker.port)
    try:
        # 4 s of both sensors, then the radar falls silent while RF goes on; plus one bad payload.
        t_end = time.monotonic() + 8.0
        scan = 0
        while time.monotonic() < t_end:
            now = time.time()
            if time.monotonic() < t_end - 4.0:
                pub.publish(
                    "rampart/live/radar/radar-1/plots",
                    json.dumps({"sensor": "radar-1", "t": now, "scan": scan, "plots": []}),
                    qos=1,
                )
                scan += 1
            pub.publish(
                "rampart/live/rf/rf-1/detections",
                json.dumps({"sensor": "rf-1", "t": now, "detections": []}),
                qos=1,
            )
            time.sleep(0.25)
        pub.publish(
            "rampart/live/radar/radar-1/plots", b'{"sensor": "radar-1", "t": 17', qos=1
        ).wait_for_publish(5)
        wait_for(
            lambda: any(a.kind == "sensor_fault" and a.sensors == ["radar-1"] for a in alerts),
            10,
            "radar fault",
        )
        wait_for(
            lambda: (
                "rampart_rejected" in get(base + "/metrics")[1]
                and 'reason="bad_json"' in get(base + "/metrics")[1]
            ),
            10,
            "metrics",
        )
    finally:
        pub.loop_stop()
        pub.disconnect()
    metrics = get(base + "/metrics")[1]
    assert 'rampart_records_total{sensor="rf-1"}' in metrics
    assert 'rampart_rejected_total{reason="bad_json",source="radar-1"} 1.0' in metrics
    assert "rampart_mqtt_connected 1.0" in metrics
    # RF kept talking: no fault for it.
    assert not any(a.kind == "sensor_fault" and a.sensors == ["rf-1"] for a in alerts)
    service.stop_event.set()
    runner.join(timeout=20)
    assert not runner.is_alive()
    # What it received, it recorded: a recording of the live session replays.
    from drivers.recording import RecordingReader

    rec = list(RecordingReader(tmp_path / "rec").messages())
    assert sum(1 for m in rec if m.channel.endswith("/plots")) == scan + 1


def test_readyz_reports_an_unreachable_broker(tmp_path):
    http_port = free_port()
    cfg = tmp_path / "site.toml"
    cfg.write_text(SITE.format(port=free_port(), http=http_port))
    service = Service(cfg)
    runner = threading.Thread(target=service.run, kwargs={"max_seconds": 30}, daemon=True)
    runner.start()
    base = f"http://127.0.0.1:{http_port}"
    try:
        wait_for(lambda: get(base + "/healthz")[0] == 200, 15, "health")
        code, body = get(base + "/readyz")
        assert code == 503 and "mqtt: not connected" in body
    finally:
        service.stop_event.set()
        runner.join(timeout=20)


def test_broker_restart_is_survived(broker, tmp_path):
    http_port = free_port()
    cfg = tmp_path / "site.toml"
    cfg.write_text(SITE.format(port=broker.port, http=http_port))
    service = Service(cfg)
    runner = threading.Thread(target=service.run, kwargs={"max_seconds": 90}, daemon=True)
    runner.start()
    try:
        wait_for(lambda: service.mqtt.connected.is_set(), 15, "first connect")
        broker.stop()
        wait_for(lambda: not service.mqtt.connected.is_set(), 15, "disconnect noticed")
        broker.start()
        wait_for(lambda: service.mqtt.connects >= 2, 45, "reconnect with backoff")
        pub = publisher(broker.port)
        pub.publish(
            "rampart/live/rf/rf-1/detections",
            json.dumps({"sensor": "rf-1", "t": time.time(), "detections": []}),
            qos=1,
        )
        wait_for(
            lambda: service.pipeline.engine.delivered_by_sensor.get("rf-1", 0) >= 1,
            15,
            "message after reconnect",
        )
        pub.loop_stop()
        pub.disconnect()
    finally:
        service.stop_event.set()
        runner.join(timeout=20)


def test_sighup_reload_keeps_running_config_when_new_one_is_bad(tmp_path):
    import signal
    import subprocess
    import sys

    http_port = free_port()
    cfg = tmp_path / "site.toml"
    good = f'[site]\nid = "live"\nlat = 52.0\nlon = 4.0\nalt_m = 10.0\n\n[http]\nlisten = "127.0.0.1:{http_port}"\n\n[state]\ndir = "state"\n'
    cfg.write_text(good)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fusion",
            "run",
            "--config",
            str(cfg),
            "--max-seconds",
            "40",
            "--allow-unsigned",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{http_port}/readyz")[0] == 200, 20, "ready")
        cfg.write_text(good.replace("lat = 52.0", "lat = 123.0"))
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert get(f"http://127.0.0.1:{http_port}/healthz")[0] == 200  # still running, old config
        cfg.write_text(good.replace('id = "live"', 'id = "live-2"'))
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    refused = [entry for entry in logs if "reload refused" in entry["msg"]]
    assert refused and "site.lat (line 3)" in refused[0]["msg"] and refused[0]["level"] == "error"
    assert any("configuration reloaded" in entry["msg"] for entry in logs)


def test_reload_frees_the_old_pipeline(tmp_path):
    """The service freezes its start-up heap (gc.freeze) for short collector pauses; the
    pipeline a reload replaces holds reference cycles and must still be freed."""
    import gc
    import weakref

    http_port = free_port()
    cfg = tmp_path / "site.toml"
    cfg.write_text(SITE.format(port=free_port(), http=http_port))
    service = Service(cfg)
    runner = threading.Thread(target=service.run, kwargs={"max_seconds": 60}, daemon=True)
    runner.start()
    try:
        wait_for(lambda: service.ready, 30, "ready (heap frozen)")
        assert gc.get_freeze_count() > 0
        old = weakref.ref(service.pipeline)
        cfg.write_text(cfg.read_text().replace("lateness_s = 0.3", "lateness_s = 0.4"))
        service.reload_requested.set()
        wait_for(lambda: service.pipeline is not old(), 20, "the reload")
        wait_for(lambda: old() is None, 10, "the old pipeline freed")
        assert service.pipeline.engine.lateness_ns == 400_000_000
    finally:
        service.stop_event.set()
        runner.join(timeout=20)
        gc.unfreeze()
