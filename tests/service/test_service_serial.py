"""``rampart run`` reading a serial sensor through a real pseudo-terminal."""

from __future__ import annotations

import os
import threading
import time
import tty

import numpy as np
from cobs import cobs

from drivers.power_frame import encode_frame
from fusion.cli.service import Service
from tests.service.conftest import free_port
from tests.service.test_service import get, wait_for

SITE = """[site]
id = "serial"
lat = 52.0
lon = 4.0
alt_m = 10.0

[[sensors]]
id = "pq-a"
kind = "power"
transport = "serial"
port = "{port}"
baud = 921600
feed = "A"
board = 1

[http]
listen = "127.0.0.1:{http}"

[state]
dir = "state"
"""


def test_power_frames_over_a_pty(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    port = os.ttyname(slave)
    http = free_port()
    cfg = tmp_path / "site.toml"
    cfg.write_text(SITE.format(port=port, http=http))
    service = Service(cfg)
    runner = threading.Thread(target=service.run, kwargs={"max_seconds": 60}, daemon=True)
    runner.start()
    base = f"http://127.0.0.1:{http}"
    try:
        wait_for(lambda: get(base + "/readyz")[0] == 200, 15, "serial port open and ready")
        scale = np.full(3, 0.02, np.float32)
        t = np.arange(256) / 12800
        wave = (np.sqrt(2) * 230 / 0.02 * np.sin(2 * np.pi * 50 * t))[:, None].repeat(3, axis=1)
        t0 = time.time_ns()
        for seq in range(50):
            frame = encode_frame(1, seq, t0 + seq * 20_000_000, 12800, scale, wave.astype(np.int16))
            os.write(master, cobs.encode(frame) + b"\x00")
            time.sleep(0.02)
        wait_for(
            lambda: service.pipeline.engine.delivered_by_sensor.get("pq-a", 0) >= 45,
            15,
            "frames delivered",
        )
        metrics = get(base + "/metrics")[1]
        assert 'rampart_serial_open{sensor="pq-a"} 1.0' in metrics
        assert service.pipeline.ledger.total("pq-a") <= 1  # at most the first, partial read
    finally:
        service.stop_event.set()
        runner.join(timeout=20)
        os.close(master)
        os.close(slave)
