"""``rampart run`` with its GNSS receiver unplugged and plugged back mid-run (issue #7).

The acceptance line: "a serial device closed and reopened mid-run: no alert
lost, recovery visible in metrics and logs".

A writer process (tests/gnss/pty_writer.py, as in tests/gnss/test_live_pty.py)
plays the first ``EXCERPT_S`` seconds of simulated receiver ``gnss-1``
(scenario ``coordinated``, seed 2: its jammer reaches the GNSS detector's
threshold at about 33 s) at the receiver's baud rate through a pty behind a
stable symlink, and pulls the plug for ``UNPLUG_FOR_S`` seconds at
``UNPLUG_AT_S`` (longer than supervision's 5 s: the unplug is also a
``sensor_fault``). The real ``Service`` reads that symlink as its configured
``port``, with the configured sinks built as ``rampart run`` builds them (a
jsonl sink behind the durable outbox), JSON logs, and its status endpoint.

It must show:

- recovery in the metrics and readiness: while unplugged ``/readyz`` is 503
  naming the port and ``rampart_serial_open{sensor="gnss-1"}`` is 0; after
  the reopen the gauge is 1 again and ``rampart_serial_reconnects`` counts it;
- recovery in the JSON log: the read failure (port closed) and the reopen,
  both naming the sensor;
- no alert lost: every byte the writer sent was read and decoded, and the
  alerts in the jsonl sink are those of replaying the same bytes at their
  sent times through the same pipeline (the ``sensor_fault`` of the unplug,
  opened and closed, then the jamming alert decided on data sent after the
  reopen): same incidents in the same order, kinds, reasons, severities and
  states, times within the engine's lateness window.

The replay advances the engine's clock every 0.1 s between messages, as the
service's loop does with the wall clock (``Service.run``); without that a
replay notices a silent sensor only when its next message arrives, about a
second after the live service does.

Service timing: the service's ``SerialLink`` keeps its default backoff (0.1 s
doubling to at most 1 s), so after the read failure it tries to reopen at
about 0.1, 0.3, 0.7, 1.5, 2.5, ... 5.5, 6.5 s. The writer re-creates the pty
one second before it resumes sending; with ``UNPLUG_FOR_S`` = 6.8 the pty is
back at about 5.8 s and an attempt opens it before the first byte is sent,
so no byte waits in the pty for a reader.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from drivers.simulated.base import FeedRow
from drivers.sinks.config import ConfiguredDelivery
from drivers.site_text import keep_sensors
from fusion.alerts import Alert, decode_alert
from fusion.cli.pipeline import Pipeline
from fusion.cli.service import JsonLogFormatter, Service
from fusion.config import SiteConfig, load_config, parse_config
from tests.gnss.helpers import gnss_rf_scenario, incidents
from tests.gnss.pty_writer import write_schedule
from tests.service.conftest import free_port
from tests.service.test_service import get, wait_for

NS = 1_000_000_000
SCENARIO = ("coordinated", 2, 240.0)
EXCERPT_S = 40.0
UNPLUG_AT_S = 16.0
UNPLUG_FOR_S = 6.8  # > supervision's 5 s; see the module docstring for why 6.8
START_DELAY_S = 2.0  # writer: from creating the pty to its first byte (< 5 s: no fault at start)
TICK_NS = NS // 10  # the service's loop advances the engine at least this often
SENSOR = "gnss-1"
SERVICE_KINDS = ("audit_head",)  # the service's own alerts, not made from sensor data
ROOT = Path(__file__).resolve().parents[2]

SERVICE_SECTIONS = """
[http]
listen = "127.0.0.1:{http}"

[state]
dir = "state"

[[sinks]]
type = "jsonl"
name = "alerts-file"
path = "alerts.jsonl"
"""


class JsonLines(logging.Handler):
    """The service's JSON log lines (``rampart run --log-format json``), kept in memory."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonLogFormatter())
        self.out = io.StringIO()
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self._guard:
            self.out.write(line + "\n")

    def records(self) -> list[dict]:
        with self._guard:
            text = self.out.getvalue()
        return [json.loads(line) for line in text.splitlines() if line]


def serial_metrics(text: str) -> tuple[float | None, float | None]:
    """(rampart_serial_open, rampart_serial_reconnects) of ``SENSOR`` in a /metrics page."""
    is_open = reconnects = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("sensor") != SENSOR:
                continue
            if sample.name == "rampart_serial_open":
                is_open = sample.value
            elif sample.name == "rampart_serial_reconnects_total":
                reconnects = sample.value
    return is_open, reconnects


def replay_as_the_service(site: SiteConfig, rows: list[FeedRow], tail_ns: int) -> list[Alert]:
    """The alerts of the service's pipeline on ``rows`` at their receive times, the engine's
    clock advanced every ``TICK_NS`` between messages and for ``tail_ns`` after the last."""
    alerts: list[Alert] = []
    pipe = Pipeline(site, alerts.append)
    clock = None
    for r in rows:
        while clock is not None and clock + TICK_NS < r.t_rx_ns:
            clock += TICK_NS
            pipe.engine.advance(clock)
        pipe.receive(r.t_rx_ns, r.transport, r.channel, r.payload)
        clock = r.t_rx_ns
    end = clock + tail_ns
    while clock + TICK_NS <= end:
        clock += TICK_NS
        pipe.engine.advance(clock)
    pipe.finish()
    return alerts


def shape(incs: list[dict]) -> list[tuple]:
    keys = ("kind", "reason", "sensors", "open_severity", "severities", "states")
    return [tuple(i[k] for k in keys) for i in incs]


def test_serial_unplug_under_rampart_run_loses_no_alert(tmp_path):
    site_full, out = gnss_rf_scenario(*SCENARIO)
    base_ns = min(r.t_rx_ns for r in out.feeds) // NS * NS
    rows = [r for r in out.feeds if r.channel == SENSOR and r.t_rx_ns - base_ns < EXCERPT_S * NS]
    jam = next(t for t in out.truth if t.kind == "gnss_jamming")
    assert UNPLUG_AT_S + UNPLUG_FOR_S + 5 < (jam.t_start_ns - base_ns) / NS < EXCERPT_S - 6

    link = str(tmp_path / "ttyGNSS")  # the udev-style stable name the service is given
    http = free_port()
    text = keep_sensors(site_full.text, {SENSOR})
    assert text.count('port = "/dev/ttyACM0"') == 1
    text = text.replace('port = "/dev/ttyACM0"', f'port = "{link}"')
    cfg = tmp_path / "site.toml"
    cfg.write_text(text + SERVICE_SECTIONS.format(http=http))
    site = load_config(cfg)
    assert site.sensor(SENSOR).port == link and site.sensor(SENSOR).transport == "serial"
    baud = site.sensor(SENSOR).baud

    # Load the JIT-compiled GNSS kernels in this process first (a few seconds, uncached), so
    # the service's first messages are not held up behind the compiler.
    replay_as_the_service(parse_config(text), rows[:40], 0)

    schedule = tmp_path / "schedule.bin"
    write_schedule(str(schedule), [((r.t_rx_ns - base_ns) / NS, r.payload) for r in rows])
    result_path = tmp_path / "result.json"

    # The configured sinks, built as `rampart run` builds them (fusion/cli: _build_sinks).
    service = Service(cfg, sinks=[ConfiguredDelivery(site, cfg.parent)])
    runner = threading.Thread(target=service.run, kwargs={"max_seconds": 150}, daemon=True)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.gnss.pty_writer",
            str(schedule),
            link,
            str(result_path),
            "--baud",
            str(baud),
            "--unplug-at",
            str(UNPLUG_AT_S),
            "--unplug-for",
            str(UNPLUG_FOR_S),
            "--start-delay",
            str(START_DELAY_S),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    base = f"http://127.0.0.1:{http}"
    seen_closed: list[tuple[float | None, int, str]] = []  # (open gauge, readyz code, body)
    seen_reopened: list[tuple[float | None, float | None, int]] = []
    polls = 0
    logs = JsonLines()  # as `rampart run --log-format json` writes them
    rampart_log = logging.getLogger("rampart")
    old_level = rampart_log.level
    rampart_log.addHandler(logs)
    rampart_log.setLevel(logging.INFO)
    try:
        wait_for(lambda: os.path.lexists(link), 10, "the writer's pty")
        runner.start()
        wait_for(lambda: get(base + "/readyz")[0] == 200, 20, "service ready, port open")
        deadline = time.monotonic() + START_DELAY_S + EXCERPT_S + 30.0
        while writer.poll() is None and time.monotonic() < deadline and polls < 2000:
            polls += 1
            is_open, reconnects = serial_metrics(get(base + "/metrics")[1])
            code, body = get(base + "/readyz")
            if service.serial_links[SENSOR].state != "open" or is_open == 0:
                if not seen_reopened:  # the unplug, not the writer's end of the excerpt
                    seen_closed.append((is_open, code, body))
            elif seen_closed and (reconnects or 0) >= 1 and is_open == 1:
                seen_reopened.append((is_open, reconnects, code))
            time.sleep(0.2)
        writer.wait(timeout=15)
    finally:
        service.stop_event.set()
        if runner.ident is not None:
            runner.join(timeout=30)
        if writer.poll() is None:
            writer.kill()
            writer.wait(timeout=10)
        rampart_log.removeHandler(logs)
        rampart_log.setLevel(old_level)
    assert not runner.is_alive()
    assert writer.returncode == 0
    result = json.loads(result_path.read_text())
    sent = [rows[i] for i in result["written"]]
    assert 0 < len(sent) < len(rows)  # chunks due while unplugged were never sent

    # 1. Metrics and readiness: closed while unplugged, open again and counted after.
    assert any(is_open == 0 for is_open, _, _ in seen_closed), seen_closed
    assert any(
        code == 503 and f"serial {SENSOR}: {link}" in body for _, code, body in seen_closed
    ), seen_closed
    assert seen_reopened, "never saw the port open again after the unplug"
    assert all(r >= 1 and code == 200 for _, r, code in seen_reopened), seen_reopened
    link_stats = service.serial_links[SENSOR].stats()
    assert link_stats.reconnects >= 1

    # 2. The JSON log: the port's failure and its reopen, naming the sensor, in that order.
    records = logs.records()
    serial_log = [r for r in records if r["logger"] == "rampart.serial"]
    closed = [r for r in serial_log if r["msg"].startswith(f"{SENSOR}: read: ")]
    reopened = [r for r in serial_log if r["msg"].startswith(f"{SENSOR}: reopened (1 reconnects)")]
    assert closed and reopened, serial_log
    assert closed[0]["level"] == "warning" and reopened[0]["level"] == "warning"
    assert closed[0]["t"] <= reopened[0]["t"]
    assert result["unplugged_ns"] / NS - 1.0 <= closed[0]["t"] <= result["replugged_ns"] / NS
    assert reopened[0]["t"] > result["unplugged_ns"] / NS

    # Every byte sent was read, queued and decoded: nothing lost before detection.
    sent_bytes = sum(len(r.payload) for r in sent)
    assert link_stats.bytes == sent_bytes
    assert not any(service.intake.dropped.values())
    assert service.pipeline.bytes == sent_bytes

    # 3. No alert lost: the sink's alerts are those of replaying the bytes sent.
    lines = (tmp_path / "alerts.jsonl").read_bytes().splitlines()
    delivered: dict[str, Alert] = {}
    for line in lines:
        a = decode_alert(line)
        delivered.setdefault(a.alert_id, a)  # a crash could repeat one; none expected here
    assert len(delivered) == len(lines) == service.alerts_out  # every alert made reached the sink
    live_alerts = [a for a in delivered.values() if a.kind not in SERVICE_KINDS]
    stop_ns = max(r["t"] for r in records) * NS  # about when the service stopped
    tail_ns = max(0, int(stop_ns - (result["t0_ns"] + (sent[-1].t_rx_ns - base_ns))))
    replay_alerts = replay_as_the_service(site, sent, min(tail_ns, 5 * NS))
    live = incidents(live_alerts, result["t0_ns"])
    want = incidents(replay_alerts, base_ns)
    assert [(i["kind"], i["reason"]) for i in want] == [
        ("sensor_fault", "silent"),
        ("gnss_jamming", None),
    ]
    assert want[0]["states"][0] == "open" and want[0]["states"][-1] == "closed"
    assert shape(live) == shape(want), (live, want)
    lateness = site.engine.lateness_s
    for got, exp in zip(live, want, strict=True):
        for key in ("t_event", "t_open", "t_close"):
            if exp[key] is None:
                assert got[key] is None, (key, got, exp)
            else:
                assert abs(got[key] - exp[key]) <= lateness, (key, got, exp)
    # The jamming alert was decided on data sent after the reopen.
    resumed_s = next(t for t in ((r.t_rx_ns - base_ns) / NS for r in sent) if t > UNPLUG_AT_S)
    jam_inc = live[1]
    assert jam_inc["t_open"] > resumed_s
    assert result["t0_ns"] + jam_inc["t_open"] * NS > reopened[0]["t"] * NS

    print(
        f"\nreconnects={link_stats.reconnects} failed_opens={link_stats.failed_opens} "
        f"port closed {reopened[0]['t'] - closed[0]['t']:.2f} s (log), "
        f"unplugged {(result['replugged_ns'] - result['unplugged_ns']) / NS:.2f} s (writer); "
        f"sent {len(sent)}/{len(rows)} chunks, {sent_bytes} bytes; polls={polls}"
    )
    not_ready = next(body for _, code, body in seen_closed if code == 503)
    print("readyz while unplugged:", not_ready.strip().replace("\n", " | "))
    for r in serial_log:
        print("log", json.dumps(r))
    for i in live:
        print("live  ", i)
    for i in want:
        print("replay", i)
