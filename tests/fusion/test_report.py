"""The HTML replay report: files written, text escaped, empty inputs, panels."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from matplotlib.figure import Figure

from fusion.config import parse_config
from fusion.report import ReportContext, _binned, write_report

NS = 1_000_000_000
T0 = 1_767_686_400 * NS
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SITE = parse_config(
    """
[site]
id = "dc-test"
lat = 52.0
lon = 4.0
alt_m = 10.0

[[sensors]]
id = "radar-1"
kind = "radar"
lat = 52.0002
lon = 4.0002
alt_m = 25.0
transport = "mqtt"
topic = "rampart/dc-test/radar/radar-1/plots"

[[sensors]]
id = "gnss-1"
kind = "gnss"
transport = "serial"
port = "/dev/ttyACM0"
"""
)


def activity(n: int = 20_000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    t = T0 + np.sort(rng.integers(0, 900 * NS, size=n))
    sensor = np.where(rng.random(n) < 0.5, "radar-1", "gnss-1")
    ok = rng.random(n) > 0.01
    return pl.DataFrame(
        {"t_ns": t, "sensor": sensor, "ok": ok},
        schema={"t_ns": pl.Int64, "sensor": pl.Utf8, "ok": pl.Boolean},
    )


def alert(
    incident: str, seq: int, state: str, kind: str, sev: str, t_s: float, summary: str, **extra
) -> dict:
    a = {
        "alert_id": f"{incident}-{seq}",
        "incident_id": incident,
        "seq": seq,
        "state": state,
        "kind": kind,
        "severity": sev,
        "confidence": 0.9,
        "site": "dc-test",
        "sensors": ["radar-1"],
        "t_event_ns": T0 + int((t_s - 3) * NS),
        "t_detect_ns": T0 + int(t_s * NS),
        "summary": summary,
        "details": {},
    }
    a.update(extra)
    return a


ALERTS = [
    alert("i1", 1, "open", "drone_approach", "high", 100, "Drone closing on zone hall-a: 820 m"),
    alert("i1", 2, "closed", "drone_approach", "critical", 160, "Drone left <b>hall-a</b> & gone"),
    alert(
        "i2",
        1,
        "open",
        "gnss_jamming",
        "medium",
        300,
        '<script>alert("x")</script>',
        sensors=["gnss-1"],
    ),
    alert(
        "i3",
        1,
        "open",
        "power_transient",
        "low",
        400,
        "sag on 'feed' A",
        sensors=["pq-unknown"],
        details={"subtype": "sag"},
    ),
    alert("i4", 1, "open", "coordinated_attack", "critical", 310, "drone + jamming", sensors=[]),
]


class LinePanel:
    title = "Jamming: J/N per receiver"

    def figure(self, ctx: ReportContext) -> Figure:
        fig = Figure(figsize=(8, 3))
        ax = fig.add_subplot()
        t = np.linspace(ctx.t0_ns, ctx.t1_ns, 50).astype(np.int64)
        ax.plot(ctx.x(t), np.linspace(0, 30, 50))
        ctx.time_axis(ax)
        return fig


class EmptyPanel:
    title = "Nothing here"

    def figure(self, ctx: ReportContext) -> None:
        return None


class BrokenPanel:
    title = "Broken <panel>"

    def figure(self, ctx: ReportContext) -> Figure:
        raise RuntimeError("boom <b>")


def srcs(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def test_writes_page_figures_and_escapes(tmp_path: Path):
    index = write_report(
        tmp_path / "rep",
        title="Replay <of> scenario",
        site=SITE,
        alerts=ALERTS,
        activity=activity(),
        rejects={"gnss-1": {"bad_checksum": 12, "garbage": 3}, "rampart/x/y": {"unknown_topic": 1}},
        panels=[LinePanel(), EmptyPanel(), BrokenPanel()],
        summary={"replay": {"records": 19800, "speed": "fast"}, "note": "<i>x</i>"},
    )
    assert index == tmp_path / "rep" / "index.html"
    page = index.read_text(encoding="utf-8")
    for a in ALERTS:
        assert html.escape(a["summary"], quote=True) in page
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<b>" not in page and "<i>" not in page
    assert "Replay &lt;of&gt; scenario" in page
    assert "power_transient/sag" in page
    assert "bad_checksum" in page and ">12<" in page and "unknown_topic" in page
    assert "replay.records" in page and "19800" in page
    assert "panel failed" in page and "boom &lt;b&gt;" in page
    assert "nothing to show" in page

    names = srcs(page)
    assert names == ["timeline.png", "panel-01-jamming-j-n-per-receiver.png"]
    for name in names:
        assert (tmp_path / "rep" / name).read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == sorted([*names, "index.html"])


def test_same_input_same_files(tmp_path: Path):
    kwargs = dict(
        title="t",
        site=SITE,
        alerts=ALERTS,
        activity=activity(2000),
        rejects={},
        panels=[LinePanel()],
    )
    a = write_report(tmp_path / "a", **kwargs).read_text(encoding="utf-8")
    b = write_report(tmp_path / "b", **kwargs).read_text(encoding="utf-8")
    assert a == b
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        p.name for p in (tmp_path / "b").iterdir()
    )


@pytest.mark.parametrize(
    ("alerts", "act"),
    [
        ([], activity(3000)),
        (ALERTS, pl.DataFrame(schema={"t_ns": pl.Int64, "sensor": pl.Utf8, "ok": pl.Boolean})),
        ([], pl.DataFrame(schema={"t_ns": pl.Int64, "sensor": pl.Utf8, "ok": pl.Boolean})),
    ],
    ids=["no-alerts", "no-activity", "nothing"],
)
def test_empty_inputs(tmp_path: Path, alerts, act):
    index = write_report(
        tmp_path,
        title="empty",
        site=SITE,
        alerts=alerts,
        activity=act,
        rejects={},
        panels=[LinePanel()],
    )
    page = index.read_text(encoding="utf-8")
    assert (tmp_path / "timeline.png").read_bytes()[:8] == PNG_MAGIC
    assert "no input was rejected" in page
    if not alerts:
        assert "no alerts" in page
    for name in srcs(page):
        assert (tmp_path / name).is_file()


def test_stale_panel_files_are_removed(tmp_path: Path):
    write_report(
        tmp_path,
        title="t",
        site=SITE,
        alerts=[],
        activity=activity(500),
        rejects={},
        panels=[LinePanel()],
    )
    assert (tmp_path / "panel-01-jamming-j-n-per-receiver.png").is_file()
    write_report(tmp_path, title="t", site=SITE, alerts=[], activity=activity(500), rejects={})
    assert not list(tmp_path.glob("panel-*.png"))


def test_activity_binning_counts_every_row():
    act = activity(100_000, seed=1)
    t0, t1 = int(act["t_ns"].min()), int(act["t_ns"].max())
    bin_ns, n_bins, bins = _binned(act, t0, t1)
    assert bin_ns == NS  # 15 minutes: one bin per second
    assert n_bins == (t1 - t0) // NS + 1
    for sensor in ("radar-1", "gnss-1"):
        ok, bad = bins[sensor]
        sel = act.filter(pl.col("sensor") == sensor)
        assert ok.sum() == sel["ok"].sum()
        assert bad.sum() == (~sel["ok"]).sum()
        # The first second's count, straight from the rows.
        first = sel.filter(pl.col("t_ns") < t0 + NS)
        assert ok[0] == first["ok"].sum()


def test_long_recordings_use_wider_bins():
    act = pl.DataFrame(
        {"t_ns": [T0, T0 + 10 * 3600 * NS], "sensor": ["radar-1", "radar-1"], "ok": [True, False]},
        schema={"t_ns": pl.Int64, "sensor": pl.Utf8, "ok": pl.Boolean},
    )
    bin_ns, n_bins, bins = _binned(act, T0, T0 + 10 * 3600 * NS)
    assert bin_ns == 12 * NS and n_bins <= 3001
    assert bins["radar-1"][0][0] == 1 and bins["radar-1"][1][-1] == 1
