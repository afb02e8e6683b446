"""The command line of contract §6: exit codes, messages, and the commands working together."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA

REPLAY_DATA = Path(__file__).resolve().parents[1] / "replay_data"


def rampart(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fusion", *args], capture_output=True, text=True, timeout=timeout
    )


def test_check_config_good_and_bad(tmp_path):
    good = rampart("check-config", str(DATA / "recording-sample" / "site.toml"))
    assert good.returncode == 0 and "ok (site dc-east-1, 6 sensors, 1 zones)" in good.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[site]\nid = "x"\nlat = 91.0\nlon = 4.0\nalt_m = 1.0\n\n[[sensors]]\nid = "r"\nkind = "radar"\n'
    )
    out = rampart("check-config", str(bad))
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert f"{bad}: site.lat (line 3): must be a number in [-90, 90]" in lines
    assert any("sensors[0].lat (line" in line and "needs its position" in line for line in lines)
    missing = rampart("check-config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 1 and "cannot read" in missing.stdout


def test_bad_arguments_and_unreadable_input_exit_2(tmp_path):
    out = rampart("replay", str(tmp_path / "no-such-recording"), "--fast")
    assert out.returncode == 2
    assert out.stderr.strip() == f"rampart: {tmp_path / 'no-such-recording'}: not a directory"
    assert rampart("replay").returncode == 2  # argparse: missing argument
    assert rampart("simulate", "tornado", "--out", str(tmp_path / "x")).returncode == 2
    short = rampart("simulate", "approach", "--out", str(tmp_path / "x"), "--duration", "30")
    assert short.returncode == 2 and "needs at least 240 s" in short.stderr
    nodeliver = rampart("replay", str(REPLAY_DATA / "emp"), "--fast", "--deliver")
    assert nodeliver.returncode == 2 and "--deliver needs --config" in nodeliver.stderr
    missing = rampart("run", "--config", str(tmp_path / "x.toml"))
    assert missing.returncode == 2 and "x.toml: cannot read" in missing.stderr


def test_simulate_list_names_every_scenario():
    out = rampart("simulate", "--list")
    names = [line.split()[0] for line in out.stdout.splitlines()]
    assert names == [
        "approach",
        "swarm",
        "birds",
        "aircraft",
        "far_drone",
        "jamming",
        "spoofing",
        "spoofed_start",
        "emp",
        "emp_family",
        "switching",
        "coordinated",
        "soaring_birds",
        "helicopter",
        "quiet_hour",
    ]


def test_paced_replay_gives_the_same_alerts_as_fast(tmp_path):
    rec = REPLAY_DATA / "sensor_faults"
    fast = rampart(
        "replay", str(rec), "--fast", "--quiet", "--alerts-out", str(tmp_path / "fast.jsonl")
    )
    paced = rampart(
        "replay",
        str(rec),
        "--speed",
        "200",
        "--quiet",
        "--alerts-out",
        str(tmp_path / "paced.jsonl"),
    )
    assert fast.returncode == 0 and paced.returncode == 0, paced.stderr
    assert (tmp_path / "fast.jsonl").read_bytes() == (tmp_path / "paced.jsonl").read_bytes()
    assert rampart("replay", str(rec), "--speed", "-1").returncode == 2


def test_config_deliver_appends_to_its_jsonl_sink(tmp_path):
    service = tmp_path / "service.toml"
    service.write_text(
        (REPLAY_DATA / "sensor_faults" / "site.toml").read_text()
        + '\n[engine]\nlateness_s = 2.0\n\n[state]\ndir = "state"\n\n[[sinks]]\ntype = "jsonl"\npath = "delivered.jsonl"\n'
    )
    out = rampart(
        "replay",
        str(REPLAY_DATA / "sensor_faults"),
        "--fast",
        "--config",
        str(service),
        "--deliver",
        "--quiet",
    )
    assert out.returncode == 0, out.stderr
    delivered = [
        json.loads(line) for line in (tmp_path / "delivered.jsonl").read_text().splitlines()
    ]
    assert [(a["kind"], a["state"]) for a in delivered].count(("sensor_fault", "open")) == 2
    # ...and to the audit log, which verifies.
    audit = rampart("audit", "verify", "--config", str(service))
    assert audit.returncode == 0 and f"intact, {len(delivered)} records" in audit.stdout
    unsupported = tmp_path / "webhook.toml"
    unsupported.write_text(service.read_text().replace('type = "jsonl"', 'type = "webhook"'))
    out = rampart(
        "replay",
        str(REPLAY_DATA / "sensor_faults"),
        "--fast",
        "--config",
        str(unsupported),
        "--deliver",
    )
    assert out.returncode == 2 and "sinks[0].url: required" in out.stderr


def test_simulate_replay_score_together(tmp_path):
    rec = tmp_path / "emp"
    sim = rampart("simulate", "emp", "--out", str(rec), "--seed", "2", "--duration", "40")
    assert sim.returncode == 0, sim.stderr
    rep = rampart(
        "replay",
        str(rec),
        "--fast",
        "--quiet",
        "--alerts-out",
        str(tmp_path / "a.jsonl"),
        "--tracks-out",
        str(tmp_path / "t.parquet"),
        "--report",
        str(tmp_path / "report"),
    )
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "report" / "index.html").is_file() and (
        tmp_path / "report" / "timeline.png"
    ).is_file()
    score = rampart(
        "score", str(rec), str(tmp_path / "a.jsonl"), "--tracks", str(tmp_path / "t.parquet")
    )
    assert score.returncode == 0, score.stderr
    metrics = json.loads(score.stdout)
    assert isinstance(metrics, dict) and metrics  # the scorer's own tests check the numbers
    table = rampart(
        "score",
        str(rec),
        str(tmp_path / "a.jsonl"),
        "--tracks",
        str(tmp_path / "t.parquet"),
        "--summary",
    )
    assert table.returncode == 0, table.stderr
    # The table says what the JSON says: one row per truth kind, then the totals.
    emp = metrics["kinds"]["power_transient_emp"]
    row = next(x for x in table.stdout.splitlines() if x.startswith("power_transient_emp"))
    assert row.split()[1:5] == [
        str(emp[k]) for k in ("truth", "detected", "timely", "false_alarms")
    ]
    assert f"timely recall {metrics['totals']['timely_recall']:.2f}" in table.stdout
    no_truth = rampart("score", str(DATA / "recording-sample"), str(tmp_path / "a.jsonl"))
    assert no_truth.returncode == 2 and "no truth.parquet" in no_truth.stderr


def test_import_comtrade_cli_prints_its_notes(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text((DATA / "recording-sample" / "site.toml").read_text())
    cfg = DATA / "power" / "sepam_s40_mv_earth_fault_trip.CFG"
    out = rampart(
        "import",
        "comtrade",
        str(cfg),
        "--sensor",
        "pq-a",
        "--site",
        str(site),
        "--out",
        str(tmp_path / "rec"),
    )
    assert out.returncode == 0, out.stderr
    assert "channels" in out.stdout  # the note on the two voltage channels it found
    rep = rampart("replay", str(tmp_path / "rec"), "--fast")
    assert rep.returncode == 0 and "pq-a" in rep.stdout
    wrong = rampart(
        "import",
        "comtrade",
        str(cfg),
        "--sensor",
        "gnss-1",
        "--site",
        str(site),
        "--out",
        str(tmp_path / "x"),
    )
    assert wrong.returncode == 2 and "COMTRADE import needs a power sensor" in wrong.stderr


@pytest.mark.parametrize("module", ["fusion"])
def test_python_m_and_console_script_are_the_same_program(module):
    via_m = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=60
    )
    script = Path(sys.executable).with_name("rampart")
    via_script = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60
    )
    assert via_m.stdout == via_script.stdout and via_m.stdout.startswith("rampart ")


def test_deploy_example_configuration_is_valid():
    out = rampart(
        "check-config", str(Path(__file__).resolve().parents[1] / "deploy" / "site.example.toml")
    )
    assert out.returncode == 0, out.stdout


def test_replay_summary_counts_each_incident_at_its_most_severe():
    # replay_data/emp: each EMP opens `high` and is raised to `critical` by its burst capture.
    out = rampart("replay", str(REPLAY_DATA / "emp"), "--fast")
    assert out.returncode == 0, out.stderr
    tail = out.stdout.split("incidents (each at its most severe)", 1)[1].split()
    assert tail[:3] == ["power_transient", "critical", "2"], out.stdout[-400:]
