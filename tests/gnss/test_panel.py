"""The GNSS report panel renders what the detector saw, with its incidents marked."""

from __future__ import annotations

import json

import polars as pl

from fusion.alerts import encode_alert
from fusion.config import parse_config
from fusion.gnss import GnssDetector
from fusion.gnss.panel import GnssPanel, gnss_incident_spans
from fusion.gnss.series import Series
from fusion.report import ReportContext, write_report
from tests.gnss.test_settings import SITE


def test_panel_of_a_jamming_run_is_written_into_the_report(scenario_run, tmp_path):
    run = scenario_run("jamming", 1, 240.0)
    alerts = [json.loads(encode_alert(a)) for a in run.alerts]
    sensors = [s.id for s in run.site.sensors]
    t0, t1 = run.span_ns
    activity = pl.DataFrame(
        {"t_ns": [t0, t1] * len(sensors), "sensor": sensors * 2, "ok": [True] * 2 * len(sensors)},
        schema={"t_ns": pl.Int64, "sensor": pl.Utf8, "ok": pl.Boolean},
    )
    (panel,) = run.detector.report_panels()
    ctx = ReportContext(run.site, tuple(alerts), t0, t1)
    fig = panel.figure(ctx)
    assert len(fig.axes) == 5  # four plots and the jamming indicator's right axis
    labels = {line.get_label() for ax in fig.axes for line in ax.get_lines()}
    assert {"gnss-1", "gnss-2", "rf-1 L1"} <= labels
    spans = gnss_incident_spans(ctx)
    assert [k for k, _, _ in spans] == ["gnss_jamming"]
    html = write_report(
        tmp_path,
        title="gnss",
        site=run.site,
        alerts=alerts,
        activity=activity,
        rejects={},
        panels=[panel],
    )
    png = tmp_path / "panel-01-gnss-receivers-and-rf-band-power.png"
    assert png.stat().st_size > 20_000 and png.name in html.read_text()


def test_no_data_no_figure():
    det = GnssDetector(parse_config(SITE))
    ctx = ReportContext(det.site, (), 0, 10**9)
    assert GnssPanel(det).figure(ctx) is None


def test_series_stay_bounded():
    s = Series(("x",), min_step_s=1.0, cap=100)
    for k in range(1000):
        s.add(k * 1_000_000_000, x=float(k))
    assert len(s) <= 101 and s.values["x"][0] == 0.0 and s.t_ns == sorted(s.t_ns)
