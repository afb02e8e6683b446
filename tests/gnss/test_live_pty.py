"""Live serial: a receiver on a pseudo-terminal, unplugged mid-stream, read by SerialLink.

A writer process (tests/gnss/pty_writer.py) plays the first ``EXCERPT_S``
seconds of simulated receiver ``gnss-1`` (scenario ``coordinated``, whose
jammer reaches +3 dB J/N at about 33 s) at the receiver's real baud rate, 10
bits a byte, through a pty behind a stable symlink, and pulls the plug for
``UNPLUG_FOR_S`` seconds at ``UNPLUG_AT_S``. ``SerialLink`` reads the link
with wall-clock receive times and reopens it when it comes back; a Pipeline
(decoders, engine, supervision, GNSS detector) runs live on what it reads.

The alerts must match those of replaying the same bytes (the chunks the
writer sent, at their simulated receive times): the same incidents in the
same order, with the same kinds, reasons and severities, and their event,
open and close times within the engine's lateness window once both are put
on the same time origin. The link must have delivered every byte sent.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import time
from pathlib import Path

from drivers.serial_link import SerialLink
from drivers.site_text import keep_sensors
from fusion.alerts import Alert
from fusion.cli.pipeline import Pipeline
from fusion.config import parse_config
from fusion.gnss import GnssDetector
from fusion.supervision import SensorSupervision
from tests.gnss.helpers import gnss_rf_scenario, incidents, run_rows
from tests.gnss.pty_writer import write_schedule

NS = 1_000_000_000
SCENARIO = ("coordinated", 2, 240.0)
EXCERPT_S = 40.0
UNPLUG_AT_S = 16.0
UNPLUG_FOR_S = 6.5  # longer than supervision's 5 s: the unplug is also a sensor_fault
ROOT = Path(__file__).resolve().parents[2]


def test_live_pty_with_an_unplug_alerts_as_the_replay_does(tmp_path):
    site_full, out = gnss_rf_scenario(*SCENARIO)
    site = parse_config(keep_sensors(site_full.text, {"gnss-1"}))
    sensor = site.sensor("gnss-1")
    base_ns = min(r.t_rx_ns for r in out.feeds) // NS * NS
    rows = [r for r in out.feeds if r.channel == "gnss-1" and r.t_rx_ns - base_ns < EXCERPT_S * NS]
    jam = next(t for t in out.truth if t.kind == "gnss_jamming")
    assert UNPLUG_AT_S + UNPLUG_FOR_S + 5 < (jam.t_start_ns - base_ns) / NS < EXCERPT_S - 6

    schedule = tmp_path / "schedule.bin"
    write_schedule(str(schedule), [((r.t_rx_ns - base_ns) / NS, r.payload) for r in rows])
    link = str(tmp_path / "ttyGNSS")
    result_path = tmp_path / "result.json"

    received: queue.SimpleQueue = queue.SimpleQueue()
    raw_bytes = bytearray()
    live_alerts: list[Alert] = []
    pipe = Pipeline(
        site, live_alerts.append, detectors=[SensorSupervision(site.sensors), GnssDetector(site)]
    )
    serial_link = SerialLink(
        link,
        sensor.baud,
        lambda t, data: received.put((t, data)),
        name="gnss-1",
        read_timeout_s=0.02,
        backoff_initial_s=0.05,
        backoff_max_s=0.25,
    )
    writer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.gnss.pty_writer",
            str(schedule),
            link,
            str(result_path),
            "--baud",
            str(sensor.baud),
            "--unplug-at",
            str(UNPLUG_AT_S),
            "--unplug-for",
            str(UNPLUG_FOR_S),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    serial_link.start()
    deadline = time.monotonic() + EXCERPT_S + UNPLUG_FOR_S + 30.0
    try:
        while time.monotonic() < deadline:
            try:
                t_rx, data = received.get(timeout=0.1)
            except queue.Empty:
                if writer.poll() is not None and serial_link.state != "open":
                    break
                continue
            raw_bytes += data
            pipe.receive(t_rx, "serial", "gnss-1", data)
        writer.wait(timeout=10)
    finally:
        serial_link.stop()
        if writer.poll() is None:
            writer.kill()
    while not received.empty():
        t_rx, data = received.get()
        raw_bytes += data
        pipe.receive(t_rx, "serial", "gnss-1", data)
    pipe.finish()
    assert writer.returncode == 0

    result = json.loads(result_path.read_text())
    sent = [rows[i] for i in result["written"]]
    assert 0 < len(sent) < len(rows)  # some chunks were lost while unplugged
    assert bytes(raw_bytes) == b"".join(r.payload for r in sent)  # every byte sent was read
    assert serial_link.reconnects == 1 and serial_link.failed_opens >= 1

    replay = run_rows(site, sent)
    live = incidents(live_alerts, result["t0_ns"])
    want = incidents(replay.alerts, base_ns)
    assert [(i["kind"], i["reason"]) for i in want] == [
        ("sensor_fault", "silent"),
        ("gnss_jamming", None),
    ]
    assert [(i["kind"], i["reason"], i["open_severity"], i["severities"]) for i in live] == [
        (i["kind"], i["reason"], i["open_severity"], i["severities"]) for i in want
    ]
    lateness = site.engine.lateness_s
    for got, exp in zip(live, want, strict=True):
        for key in ("t_event", "t_open", "t_close"):
            if exp[key] is None:
                assert got[key] is None
            else:
                assert abs(got[key] - exp[key]) <= lateness, (key, got, exp)
