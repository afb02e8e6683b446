"""Replays through the full pipeline to real servers, and the fault-injection acceptance test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drivers.recording import RecordingReader
from drivers.sinks.config import build_delivery
from fusion.alerts import encode_alert
from fusion.cli.replay import replay
from fusion.config import load_config, parse_config
from fusion.correlation import attack_class
from fusion.detector import Finding
from fusion.supervision import SensorSupervision
from tests.sinks.burst import burst_alert
from tests.sinks.conftest import REPO, service_toml
from tests.sinks.servers import Mosquitto, MosquittoSub, Rsyslog, stop_all, wait_for
from tests.sinks.soc_parse import parse_rfc5424

SENSOR_FAULTS = REPO / "replay_data" / "sensor_faults"
NS = 1_000_000_000


def rampart(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fusion", *args], capture_output=True, text=True, timeout=timeout
    )


def syslog_ids(rsyslog: Rsyslog) -> list[str]:
    return [parse_rfc5424(line)["sd"]["alertId"] for line in rsyslog.lines()]


@pytest.fixture(scope="session")
def coordinated_recording(tmp_path_factory) -> Path:
    from fusion.cli.simulate import write_scenario

    out = tmp_path_factory.mktemp("coordinated") / "rec"
    write_scenario("coordinated", out, seed=4, duration_s=240.0)
    return out


def test_replay_deliver_sends_every_alert_to_every_sink_unchanged(
    servers, tmp_path, certs, broker, rsyslog, webhook, webhook_secret
):
    sub = servers.add(MosquittoSub(tmp_path / "sub", broker, "rampart/sim-site/alerts").start())
    cfg = service_toml(
        tmp_path,
        certs,
        broker=broker,
        rsyslog=rsyslog,
        webhook=webhook,
        secret=webhook_secret,
        jsonl=True,
    )
    out = rampart(
        "replay",
        str(SENSOR_FAULTS),
        "--fast",
        "--quiet",
        "--config",
        str(cfg),
        "--deliver",
        "--alerts-out",
        str(tmp_path / "replay.jsonl"),
    )
    assert out.returncode == 0, out.stderr
    # The replay's 4 alerts, between the audit chain's head at the start and at the end
    # (audit_head, open and closed: the SOC can check the log it appended to).
    assert "delivered 6 alerts to 4 sinks" in out.stdout
    replayed = (tmp_path / "replay.jsonl").read_bytes().splitlines()
    assert len(replayed) == 4
    wait_for(lambda: len(sub.alerts()) >= 6, 10, "mqtt subscriber")

    def without_heads(lines: list[bytes]) -> list[bytes]:
        kinds = [json.loads(x)["kind"] for x in lines]
        assert kinds[0] == kinds[-1] == "audit_head" and kinds.count("audit_head") == 2
        return [x for x, k in zip(lines, kinds, strict=True) if k != "audit_head"]

    # MQTT and the JSON-lines sink carry the very bytes the replay wrote
    assert without_heads(sub.out.read_bytes().splitlines()) == replayed
    assert without_heads((tmp_path / "delivered.jsonl").read_bytes().splitlines()) == replayed
    ids = [json.loads(x)["alert_id"] for x in replayed]
    wait_for(lambda: len(rsyslog.lines()) >= 6, 10, "rsyslog")
    assert syslog_ids(rsyslog)[1:-1] == ids
    assert [json.loads(b["raw_data"])["alert_id"] for b in webhook.accepted()][1:-1] == ids
    assert all(r.verified for r in webhook.received)
    stop_all(sub)


def test_coordinated_scenario_reaches_a_mosquitto_sub_with_one_critical_incident(
    servers, tmp_path, certs, broker, coordinated_recording
):
    sub = servers.add(MosquittoSub(tmp_path / "sub", broker, "rampart/+/alerts").start())
    cfg = service_toml(tmp_path, certs, broker=broker)
    out = rampart(
        "replay",
        str(coordinated_recording),
        "--fast",
        "--quiet",
        "--config",
        str(cfg),
        "--deliver",
        "--alerts-out",
        str(tmp_path / "replay.jsonl"),
    )
    assert out.returncode == 0, out.stderr
    replayed = [json.loads(x) for x in (tmp_path / "replay.jsonl").read_text().splitlines()]
    wait_for(lambda: len(sub.alerts()) >= len(replayed), 20, "every alert at the subscriber")
    got = [a for a in sub.alerts() if a["kind"] != "audit_head"]  # the log's heads, start and end
    assert {a["alert_id"] for a in got} == {a["alert_id"] for a in replayed}
    coordinated = [a for a in got if a["kind"] == "coordinated_attack"]
    assert coordinated, "no coordinated_attack incident"
    assert all(a["severity"] == "critical" for a in coordinated)
    assert len({a["incident_id"] for a in coordinated}) == 1
    linked = set(coordinated[-1]["details"]["incident_ids"])
    parts = [a for a in got if a["incident_id"] in linked]
    classes = {attack_class(a["kind"], a["details"]) for a in parts} - {None}
    assert linked <= {a["incident_id"] for a in got} and len(classes) >= 2
    stop_all(sub)


class _Timed:
    """Scripted attack findings at given data times (on_tick): a stand-in for the detectors
    of issues #3-#5, so correlation and delivery are shown on the real pipeline today."""

    consumes = ()

    def __init__(self, name: str, script: list[tuple[float, Finding]], t0_ns: int):
        self.name = name
        self.script = [(t0_ns + int(t * NS), f) for t, f in script]

    def on_record(self, record):
        return []

    def on_tick(self, watermark_ns):
        out = [f for t, f in self.script if t <= watermark_ns]
        self.script = [(t, f) for t, f in self.script if t > watermark_ns]
        return out


def test_synthetic_coordinated_attack_through_the_pipeline_to_mqtt(
    servers, tmp_path, certs, broker
):
    site = parse_config(RecordingReader(SENSOR_FAULTS).site_toml())
    t0 = RecordingReader(SENSOR_FAULTS).time_span_ns()[0]

    def f(kind, state, key, t, sev, details):
        return Finding(
            key, state, kind, sev, 0.9, ("x",), t0 + int(t * NS), f"{kind} {state}", details
        )

    detectors = [
        SensorSupervision(site.sensors),
        _Timed("gnss", [(5, f("gnss_jamming", "open", "j", 4, "high", {}))], t0),
        _Timed(
            "tracker",
            [
                (20, f("drone_approach", "open", "d", 18, "high", {})),
                (40, f("drone_approach", "closed", "d", 18, "high", {})),
            ],
            t0,
        ),
        _Timed(
            "power",
            [(30, f("power_transient", "open", "e", 30, "critical", {"subtype": "emp_like"}))],
            t0,
        ),
    ]
    sub = servers.add(MosquittoSub(tmp_path / "sub", broker, "rampart/+/alerts").start())
    cfg = service_toml(tmp_path, certs, broker=broker)
    delivery = build_delivery(load_config(cfg), tmp_path, outbox_path=tmp_path / "o.sqlite")
    result = replay(SENSOR_FAULTS, site, [delivery], detectors=detectors)
    assert delivery.close(20)
    alerts = result.pipeline.alerts
    wait_for(lambda: len(sub.alerts()) >= len(alerts), 10, "every alert at the subscriber")
    assert sub.out.read_bytes().splitlines() == [encode_alert(a) for a in alerts]
    coord = [a for a in sub.alerts() if a["kind"] == "coordinated_attack"]
    assert [c["state"] for c in coord] == ["open", "update"]
    assert {c["severity"] for c in coord} == {"critical"}
    parts = {
        a["incident_id"]: a["kind"]
        for a in sub.alerts()
        if a["kind"] != "coordinated_attack" and attack_class(a["kind"], a["details"])
    }
    assert coord[-1]["details"]["incident_ids"] == list(parts)
    assert sorted(parts.values()) == ["drone_approach", "gnss_jamming", "power_transient"]
    stop_all(sub)


def test_fault_injection_every_sink_gets_every_alert_of_a_burst_of_1000(
    servers, tmp_path, certs, webhook, webhook_secret
):
    """Broker down 30 s mid-stream, syslog server stopped, webhook answering 500s, and the
    Rampart process kill -9ed mid-burst: afterwards every sink has all 1,000 alerts."""
    broker = servers.add(
        Mosquitto(tmp_path / "broker", certs, extra="max_queued_messages 100000\n").start()
    )
    rsyslog = servers.add(Rsyslog(tmp_path / "rsyslog", certs).start())
    sub = servers.add(MosquittoSub(tmp_path / "sub", broker, "rampart/+/alerts").start())
    time.sleep(1.5)  # the broker's 1 s autosave has the subscriber's session on disk
    webhook.mode = "fail"
    cfg = service_toml(
        tmp_path,
        certs,
        broker=broker,
        rsyslog=rsyslog,
        webhook=webhook,
        secret=webhook_secret,
        jsonl=True,
        state_dir=tmp_path / "state",
        extra="[outbox]\nbacklog_alert_s = 5\n",
    )
    procs: list[subprocess.Popen] = []

    def start_burst(first: int) -> subprocess.Popen:
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.sinks.burst",
                str(cfg),
                "--first",
                str(first),
                "--count",
                "1000",
                "--rate",
                "200",
                "--drain",
                "60",
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        procs.append(p)
        return p

    def committed_until(p: subprocess.Popen, n: int, timeout_s: float = 30) -> int:
        last, deadline = -1, time.monotonic() + timeout_s
        while last < n and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            if line.startswith("committed "):
                last = int(line.split()[1])
        return last

    try:
        p1 = start_burst(0)
        committed_until(p1, 150)
        broker.stop()  # down for 30 s from here
        down_at = time.monotonic()
        rsyslog.stop()
        last = committed_until(p1, 500)
        assert last >= 500
        p1.send_signal(signal.SIGKILL)  # mid-burst, mid-delivery
        p1.wait(timeout=10)
        p2 = start_burst(last + 1)  # alerts up to `last` exist only in the outbox now
        time.sleep(max(0.0, down_at + 10 - time.monotonic()))
        webhook.mode = "ok"
        time.sleep(max(0.0, down_at + 12 - time.monotonic()))
        rsyslog.start()
        time.sleep(max(0.0, down_at + 30 - time.monotonic()))
        broker.start()
        out, _ = p2.communicate(timeout=120)
        assert p2.returncode == 0 and out.rstrip().endswith("drained"), out[-500:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
            if p.stdout:
                p.stdout.close()

    want = {burst_alert(i).alert_id for i in range(1000)}

    def check(name: str, ids: list[str], kinds: list[str]) -> None:
        extra = {k for i, k in zip(ids, kinds, strict=True) if i not in want}
        assert set(ids) & want == want, f"{name}: missing {len(want - set(ids))}"
        assert extra <= {"delivery_backlog"}, f"{name}: unexpected {extra}"
        dups = len([i for i in ids if i in want]) - len(want)
        print(f"{name}: {len(want)} alerts after de-duplication ({dups} repeats)")

    wait_for(lambda: want <= {a["alert_id"] for a in sub.alerts()}, 30, "mqtt has all")
    mq = sub.alerts()
    check("mqtt", [a["alert_id"] for a in mq], [a["kind"] for a in mq])
    wait_for(lambda: want <= set(syslog_ids(rsyslog)), 10, "syslog has all")
    sy = [parse_rfc5424(line) for line in rsyslog.lines()]
    check("syslog", [p["sd"]["alertId"] for p in sy], [p["msgid"] for p in sy])
    assert all(r.verified for r in webhook.received)
    wh = [json.loads(b["raw_data"]) for b in webhook.accepted()]
    check("webhook", [a["alert_id"] for a in wh], [a["kind"] for a in wh])
    js = [json.loads(x) for x in (tmp_path / "delivered.jsonl").read_text().splitlines()]
    check("jsonl", [a["alert_id"] for a in js], [a["kind"] for a in js])
    # the outage itself reached the SOC through the sinks that worked
    backlog = [a for a in js if a["kind"] == "delivery_backlog"]
    assert any(a["details"]["sink"].startswith("mqtt:") for a in backlog)
    stop_all(sub, broker, rsyslog)
