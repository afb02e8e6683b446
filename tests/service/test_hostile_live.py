"""The red team's messages against a real ``rampart run`` and a real mosquitto (issue #12):
a JSON document nested 100,000 deep, a 10 MB radar scan and 200 made-up topics. The
service must keep running, count each as a rejection under bounded metric labels, and
still deliver the normal scans that follow."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

from tests.service.conftest import free_port
from tests.service.test_service import SITE, get, publisher, wait_for

LABEL = re.compile(r'(\w+)="([^"]*)"')


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one series in a /metrics text (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        series, _, value = line.rpartition(" ")
        if dict(LABEL.findall(series)) == labels:
            return float(value)
    return 0.0


def label_values(text: str, label: str) -> set[str]:
    return {
        v
        for line in text.splitlines()
        if not line.startswith("#")
        for k, v in LABEL.findall(line)
        if k == label
    }


def test_hostile_messages_do_not_stop_the_live_service(broker, tmp_path):
    http_port = free_port()
    cfg = tmp_path / "site.toml"
    cfg.write_text(SITE.format(port=broker.port, http=http_port))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fusion",
            "run",
            "--config",
            str(cfg),
            "--max-seconds",
            "60",
            "--allow-unsigned",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{http_port}"
    topic = "rampart/live/radar/radar-1/plots"
    pub = None
    try:
        wait_for(lambda: get(base + "/readyz")[0] == 200, 30, "readiness")
        pub = publisher(broker.port)

        def scan(n: int, plots: list) -> str:
            return json.dumps({"sensor": "radar-1", "t": time.time(), "scan": n, "plots": plots})

        pub.publish(topic, scan(1, []), qos=1)
        wait_for(
            lambda: (
                metric(get(base + "/metrics")[1], "rampart_records_total", sensor="radar-1") >= 1
            ),
            10,
            "a first scan delivered",
        )
        before = metric(get(base + "/metrics")[1], "rampart_records_total", sensor="radar-1")

        hole = scan(2, []).replace('"plots"', '"x": HOLE, "plots"')
        deep = hole.replace("HOLE", "[" * 100_000 + "]" * 100_000)
        assert len(deep) > 200_000
        pub.publish(topic, deep, qos=1).wait_for_publish(10)
        huge = scan(3, [{"range_m": 800.0, "az_deg": 30.0}] * 330_000)
        assert len(huge) > 10_000_000
        pub.publish(topic, huge, qos=1).wait_for_publish(20)
        for k in range(200):
            pub.publish(f"rampart/live/radar/ghost-{k}/plots", scan(k, []), qos=0)
        for k in range(10):
            pub.publish(topic, scan(100 + k, [{"range_m": 900.0, "az_deg": 10.0}]), qos=1)
            time.sleep(0.05)

        def settled() -> bool:
            text = get(base + "/metrics")[1]
            return (
                metric(text, "rampart_records_total", sensor="radar-1") >= before + 10
                and metric(
                    text, "rampart_rejected_total", reason="unknown_sensor", source="unknown"
                )
                >= 200
            )

        wait_for(settled, 20, "the normal scans after the hostile ones")
        assert proc.poll() is None, "the service exited"
        assert get(base + "/healthz") == (200, "ok\n")
        text = get(base + "/metrics")[1]
        assert metric(text, "rampart_rejected_total", reason="too_deep", source="radar-1") == 1
        assert metric(text, "rampart_rejected_total", reason="over_limit", source="radar-1") == 1
        # Bounded labels: 200 made-up topics are one source, not 200 (or 400) new series.
        allowed = {"radar-1", "rf-1", "unknown", "engine", "(other)"}
        assert label_values(text, "source") <= allowed
        assert label_values(text, "sensor") <= allowed
        series = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
        assert len(series) < 80
    finally:
        if pub is not None:
            pub.loop_stop()
            pub.disconnect()
        if proc.poll() is None:
            proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    msgs = " ".join(entry["msg"] for entry in logs)
    assert "ghost-0" in msgs  # the real topic is in the (rate-limited) log line
    assert "RecursionError" not in err
