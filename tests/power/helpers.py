"""A two-feed test site and PowerFrame builders for the detector tests."""

from __future__ import annotations

import numpy as np

from fusion.alerts import Alert
from fusion.config import EngineSettings, SiteConfig, parse_config
from fusion.engine import Engine
from fusion.incidents import IncidentBook
from fusion.power.detector import PowerTransientDetector
from fusion.records import PowerFrame, RfSpectrum, SwitchgearEvent
from fusion.rejects import RejectLedger
from tests.power import signals as sg

NS = 1_000_000_000
T0 = 1_767_686_400 * NS

SITE_TOML = """
[site]
id = "test-site"
lat = 52.0
lon = 4.0
alt_m = 10.0

[[sensors]]
id = "pq-a"
kind = "power"
transport = "serial"
port = "/dev/ttyUSB0"
feed = "A"
board = 1
channels = ["va", "vb", "vc"]

[[sensors]]
id = "pq-b"
kind = "power"
transport = "serial"
port = "/dev/ttyUSB1"
feed = "B"
board = 2
channels = ["va", "vb", "vc"]

[[sensors]]
id = "ats-1"
kind = "switchgear"
transport = "mqtt"
topic = "rampart/test-site/switchgear/ats-1/events"

[[sensors]]
id = "rf-1"
kind = "rf"
lat = 52.0
lon = 4.0
alt_m = 20.0
transport = "mqtt"
topic = "rampart/test-site/rf/rf-1/+"
"""


def site(extra: str = "") -> SiteConfig:
    return parse_config(SITE_TOML + extra, source="<test site>")


def frames(
    sensor: str,
    counts: np.ndarray,
    *,
    t0_ns: int = T0,
    fs: int = sg.FS,
    frame: int = 256,
    seq0: int = 0,
    scale: float = sg.SCALE,
    drop: set[int] = frozenset(),
) -> list[PowerFrame]:
    """Continuous frames of ``counts``; frame numbers in ``drop`` are lost (seq gap)."""
    out = []
    board = 1 if sensor == "pq-a" else 2
    lost = 0
    for k, a in enumerate(range(0, counts.shape[0], frame)):
        if k in drop:
            lost += 1
            continue
        c = np.ascontiguousarray(counts[a : a + frame])
        t = t0_ns + round(a * NS / fs)
        t_end = t + (c.shape[0] * NS) // fs
        out.append(
            PowerFrame(
                sensor,
                t,
                t_end + 2_000_000,
                board,
                seq0 + k,
                fs,
                bool(((c == 32767) | (c == -32768)).any()),
                False,
                ("va", "vb", "vc"),
                c,
                np.full(c.shape[1], scale, dtype=np.float32),
                lost_frames=lost,
            )
        )
        lost = 0
    return out


def burst_frame(
    sensor: str, v: np.ndarray, t0_ns: int, seq: int, fs: int = 1_000_000, full_pu: float = 16.0
) -> PowerFrame:
    scale = full_pu * sg.VPK / 32767
    c = sg.to_counts(v, scale)
    return PowerFrame(
        sensor,
        t0_ns,
        t0_ns + (len(c) * NS) // fs + 1_000_000,
        1 if sensor == "pq-a" else 2,
        seq,
        fs,
        bool(((c == 32767) | (c == -32768)).any()),
        True,
        ("va", "vb", "vc"),
        c,
        np.full(3, scale, dtype=np.float32),
    )


def switchgear(event: str, feed: str, t_ns: int, **detail) -> SwitchgearEvent:
    return SwitchgearEvent("ats-1", t_ns, t_ns + 30_000_000, event, feed, detail)


def sweep(t_ns: int, level_dbm: np.ndarray, f_start: float = 1.555e9) -> RfSpectrum:
    return RfSpectrum("rf-1", t_ns, t_ns + 20_000_000, f_start, 1e6, np.asarray(level_dbm, float))


def run(
    records, site_cfg: SiteConfig | None = None, lateness_s: float = 0.3, tail_s: float = 12.0
) -> tuple[list[Alert], PowerTransientDetector]:
    """Records through the real engine and incident book; ``tail_s`` of data time after the
    last record lets groups settle and incidents close."""
    cfg = site_cfg or site()
    det = PowerTransientDetector(cfg)
    alerts: list[Alert] = []
    eng = Engine(
        [det], IncidentBook("test-site"), RejectLedger(), alerts.append, EngineSettings(lateness_s)
    )
    last = 0
    for r in sorted(records, key=lambda r: (r.t_rx_ns, r.t_ns)):
        eng.push(r)
        eng.advance(r.t_rx_ns)
        last = max(last, r.t_rx_ns)
    # quiet time passes (an idle clock): ticks run, incidents close
    step = NS // 10
    for k in range(1, round(tail_s * 10) + 1):
        eng.advance(last + k * step)
    eng.finish()
    return alerts, det


def opened(alerts: list[Alert], subtype: str | None = None) -> list[Alert]:
    return [
        a
        for a in alerts
        if a.state == "open" and (subtype is None or a.details.get("subtype") == subtype)
    ]
