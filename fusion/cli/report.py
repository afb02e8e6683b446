"""``rampart replay --report DIR``: the replay's data handed to the report writer."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from fusion.alerts import encode_alert
from fusion.report import write_report


def write_replay_report(out_dir: Path, rec_dir: Path, result) -> Path:
    pipe = result.pipeline
    act = pipe.activity
    activity = pl.DataFrame(
        {"t_ns": act.t_ns, "sensor": act.sensor, "ok": act.ok},
        schema={"t_ns": pl.Int64, "sensor": pl.Utf8, "ok": pl.Boolean},
    )
    alerts = [json.loads(encode_alert(a)) for a in pipe.alerts]
    span_s = (result.span_ns[1] - result.span_ns[0]) / 1e9
    summary = {
        "recording": str(rec_dir),
        "messages": pipe.messages,
        "records delivered": pipe.engine.delivered,
        "rejected": pipe.ledger.total(),
        "data span (s)": round(span_s, 1),
        "alerts": len(pipe.alerts),
        "incidents": len({a.incident_id for a in pipe.alerts}),
    }
    panels = [p for d in pipe.detectors for p in getattr(d, "report_panels", lambda: [])()]
    return write_report(
        out_dir,
        title=f"Rampart replay — {Path(rec_dir).name}",
        site=pipe.site,
        alerts=alerts,
        activity=activity,
        rejects=pipe.ledger.by_source(),
        panels=panels,
        summary=summary,
    )
