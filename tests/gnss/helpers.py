"""Shared plumbing of the GNSS tests: simulated GNSS+RF feeds, real logs, pipeline runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from drivers.recording import RecordingReader
from drivers.serial_import import import_serial
from drivers.simulated import scenarios
from drivers.simulated.base import FeedRow, SimContext, SimOutput
from drivers.simulated.gnss import simulate_gnss
from drivers.simulated.rf import simulate_rf
from drivers.simulated.site import SIM_T0_NS, sim_site
from fusion.alerts import Alert, encode_alert
from fusion.cli.pipeline import Pipeline
from fusion.config import SiteConfig, parse_config
from fusion.gnss import GnssDetector
from fusion.score import score
from fusion.supervision import SensorSupervision

TRUTH_SCHEMA = {
    "object_id": pl.Utf8,
    "kind": pl.Utf8,
    "t_start_ns": pl.Int64,
    "t_end_ns": pl.Int64,
    "must_alert": pl.Boolean,
    "deadline_ns": pl.Int64,
}
GNSS_KINDS = ("gnss_jamming", "gnss_spoofing")


def gnss_rf_scenario(name: str, seed: int, duration_s: float) -> tuple[SiteConfig, SimOutput]:
    """The GNSS and RF feeds (and truth) of ``scenarios.build(name, seed, duration_s)``.

    The same events and the same per-model random streams as ``build``, so the
    bytes are identical (tests/gnss/test_detector_sim.py checks one case), without
    simulating radar and power, which the GNSS detector never reads.
    """
    spec = scenarios.SCENARIOS[name]
    ctx = SimContext(sim_site(), SIM_T0_NS, float(duration_s), int(seed))
    events = spec.events(ctx, ctx.rng(f"scenario:{name}"))
    objects = list(events.objects) + scenarios.background(ctx, birds=spec.background_birds)
    of = [s for s in ctx.site.sensors if s.kind == "rf"]
    out = SimOutput()
    out.extend(simulate_rf(ctx, of, objects, events.jamming, events.power))
    out.extend(
        simulate_gnss(
            ctx, [s for s in ctx.site.sensors if s.kind == "gnss"], events.jamming, events.spoofing
        )
    )
    # RF detections (drone links) do not reach the GNSS detector either.
    out.feeds = sorted(
        (r for r in out.feeds if not r.channel.endswith("/detections")), key=lambda r: r.t_rx_ns
    )
    return ctx.site, out


def gnss_only_site(site: SiteConfig) -> SiteConfig:
    """``site`` with only its GNSS and RF sensors, so supervision does not miss the others."""
    from drivers.site_text import keep_sensors

    keep = {s.id for s in site.sensors if s.kind in ("gnss", "rf")}
    return parse_config(keep_sensors(site.text, keep))


@dataclass
class Run:
    site: SiteConfig
    alerts: list[Alert]
    detector: GnssDetector
    truth: pl.DataFrame
    span_ns: tuple[int, int]
    pipeline: Pipeline

    def dicts(self) -> list[dict]:
        return [json.loads(encode_alert(a)) for a in self.alerts]

    def score(self) -> dict:
        return score(self.truth, self.dicts(), self.span_ns)

    def of_kind(self, *kinds: str) -> list[Alert]:
        return [a for a in self.alerts if a.kind in kinds]


def run_rows(site: SiteConfig, rows: list[FeedRow], truth=()) -> Run:
    alerts: list[Alert] = []
    det = GnssDetector(site)
    pipe = Pipeline(site, alerts.append, detectors=[SensorSupervision(site.sensors), det])
    for r in rows:
        pipe.receive(r.t_rx_ns, r.transport, r.channel, r.payload)
    pipe.finish()
    frame = pl.DataFrame(
        [{k: getattr(t, k) for k in TRUTH_SCHEMA} for t in truth], schema=TRUTH_SCHEMA
    )
    span = (rows[0].t_rx_ns, rows[-1].t_rx_ns) if rows else (0, 0)
    return Run(site, alerts, det, frame, span, pipe)


def run_scenario(name: str, seed: int, duration_s: float) -> Run:
    site, out = gnss_rf_scenario(name, seed, duration_s)
    return run_rows(gnss_only_site(site), out.feeds, out.truth)


REAL_SITE = """\
# A site for one imported receiver log: the log's survey position is unknown, so the
# receiver has no lat/lon here and self-surveys (fusion/gnss, docs/gnss.md).
[site]
id = "real-log"
lat = 0.0
lon = 0.0
alt_m = 0.0

[[sensors]]
id = "gnss-1"
kind = "gnss"
transport = "serial"
port = "/dev/ttyACM0"
baud = {baud}
mobile = {mobile}
"""


def import_log(path: Path, out_dir: Path, baud: int = 9600, mobile: bool = False) -> Path:
    toml = REAL_SITE.format(baud=baud, mobile="true" if mobile else "false")
    site = parse_config(toml)
    rec = out_dir / "rec"
    import_serial(path, site.sensor("gnss-1"), toml, rec)
    return rec


def run_recording(rec: Path) -> Run:
    reader = RecordingReader(rec)
    site = parse_config(reader.site_toml())
    rows = [FeedRow(m.t_rx_ns, m.transport, m.channel, m.payload) for m in reader.messages()]
    return run_rows(site, rows)


def incidents(alerts: list[Alert], origin_ns: int) -> list[dict]:
    """Incidents in opening order, times in seconds from ``origin_ns``."""
    out: dict[str, dict] = {}
    for a in alerts:
        inc = out.setdefault(
            a.incident_id,
            {
                "kind": a.kind,
                "reason": a.details.get("reason"),
                "sensors": a.sensors,
                "open_severity": a.severity,
                "severities": [],
                "states": [],
                "t_event": (a.t_event_ns - origin_ns) / 1e9,
                "t_open": (a.t_detect_ns - origin_ns) / 1e9,
                "t_close": None,
            },
        )
        if a.severity not in inc["severities"]:
            inc["severities"].append(a.severity)
        inc["states"].append(a.state)
        if a.state == "closed":
            inc["t_close"] = (a.t_detect_ns - origin_ns) / 1e9
    return list(out.values())
