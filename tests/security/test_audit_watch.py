"""``rampart audit watch``: published heads followed from outside the box; a missing,
repeated, rewound or rewritten head is reported (issue #12, red-team row 8)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.audit_log import AuditLog, record_hash
from drivers.audit_watch import AuditWatch, Head, HeadError, head_from_alert, parse_alert_line
from drivers.sinks.cef import to_cef
from drivers.sinks.config import ConfiguredDelivery
from drivers.sinks.syslog import SyslogSettings, rfc5424
from fusion.alerts import Alert, encode_alert
from fusion.cli.service import Service
from fusion.config import load_config
from tests.service.conftest import free_port

WATCH = [sys.executable, "-m", "fusion", "audit", "watch"]


def h(seq, boot="b1", n=None, prev=None, prev_now=None, site="s1", tag=""):
    """A head whose hash is a function of (seq, tag): same tag, same history."""
    digest = f"{seq:032x}{hash(tag) & (2**128 - 1):032x}"
    prev_seq, prev_hash = prev if prev else (None, None)
    return Head(
        site,
        seq,
        digest,
        boot,
        seq if n is None else n,
        prev_seq,
        prev_hash,
        prev_now if prev_now is not None else prev_hash,
    )


def kinds(problems):
    return [p.kind for p in problems]


# --- the pure watcher -----------------------------------------------------------------------
def test_honest_heads_raise_nothing_and_duplicates_are_dropped():
    w = AuditWatch(30)
    a, b = h(5), h(9, prev=(5, h(5).hash))
    assert w.feed(a, 0) == [] and w.feed(b, 10) == []
    assert w.feed(b, 11) == []  # delivered twice (QoS 1)
    assert w.duplicates == 1
    c = h(12, boot="b2", n=1, prev=(9, b.hash))  # a restart that continues the log
    assert w.feed(c, 20) == [] and w.tick(40) == []


def test_a_missing_head_is_reported_once_per_gap():
    w = AuditWatch(30, started=0)
    w.feed(h(1), 0)
    assert w.tick(29) == []
    (p,) = w.tick(31)
    assert p.kind == "audit_head_missing" and p.site == "s1" and p.details["last_seq"] == 1
    assert w.tick(60) == []  # the same gap
    w.feed(h(2), 61)
    assert kinds(w.tick(100)) == ["audit_head_missing"]  # a new gap


def test_nothing_at_all_is_missing_too():
    w = AuditWatch(10, started=0)
    assert w.tick(5) == []
    assert kinds(w.tick(11)) == ["audit_head_missing"]


def test_repeated_heads_within_a_boot():
    w = AuditWatch(30)
    w.feed(h(5, n=1), 0)
    w.feed(h(8, n=2), 1)
    (p,) = w.feed(h(8, n=2, tag="forged"), 2)  # same n, other hash
    assert p.kind == "audit_head_repeated" and p.details["first_seq"] == 8
    (p,) = w.feed(h(6, n=3), 3)  # seq below the last one, same boot
    assert p.kind == "audit_head_repeated"


def test_a_restart_below_the_last_head_is_rewound():
    w = AuditWatch(30)
    w.feed(h(20), 0)
    problems = w.feed(h(15, boot="b2", n=1, prev=(10, h(10).hash)), 5)
    assert "audit_head_rewound" in kinds(problems)
    assert "records 16..20 are gone" in problems[0].summary
    assert w.feed(h(16, boot="b2", n=2, prev=(15, h(15).hash)), 6) == []  # said once


def test_a_rewritten_history_is_a_mismatch():
    w = AuditWatch(30)
    w.feed(h(10), 0)
    w.feed(h(14, prev=(10, h(10).hash)), 1)
    # Restart after a consistent rewrite: the file's record 14 has another hash now.
    (p,) = w.feed(h(16, boot="b2", n=1, prev=(14, h(14).hash), prev_now=h(14, tag="x").hash), 2)
    assert p.kind == "audit_head_mismatch" and p.details["prev_seq"] == 14
    # ...and a head at a seq published before, with another hash.
    w2 = AuditWatch(30)
    w2.feed(h(10), 0)
    w2.feed(h(12), 1)
    assert kinds(w2.feed(h(12, boot="b2", n=1, tag="x"), 2)) == ["audit_head_mismatch"]


def test_state_survives_a_restart_of_the_watcher():
    w = AuditWatch(30, started=0)
    w.feed(h(10), 0)
    w.feed(h(14), 1)
    saved = json.loads(json.dumps(w.state()))
    again = AuditWatch(30, saved, started=100)
    assert again.tick(120) == []  # the watcher's own downtime is not the site's gap
    assert kinds(again.feed(h(12, boot="b2", n=1), 121)) == ["audit_head_rewound"]
    assert kinds(again.tick(200)) == ["audit_head_missing"]


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 5), st.booleans()),  # records added, restart before the head
        min_size=1,
        max_size=40,
    ),
    cut=st.integers(1, 5),
)
def test_property_honest_logs_are_quiet_and_a_cut_tail_is_always_caught(steps, cut):
    w = AuditWatch(1e9)
    seq, n, boot, prev, last_pub = 0, 0, 0, None, None
    for added, restart in steps:
        seq += added + 1  # at least the previous head's own record
        if restart:
            boot, n = boot + 1, 0
        n += 1
        head = h(seq, boot=f"b{boot}", n=n, prev=prev)
        assert w.feed(head, float(seq)) == [], head
        assert w.feed(head, float(seq)) == []  # a duplicate is never a problem
        prev = last_pub = (seq, head.hash)
    # A restart after records were cut from the end: below the last published head.
    seq_after = max(last_pub[0] - cut, 0)
    problems = w.feed(h(seq_after, boot="later", n=1, prev=None), 1e6)
    assert "audit_head_rewound" in kinds(problems)


# --- reading heads ----------------------------------------------------------------------------
def head_alert(seq=7, site="dc-1"):
    return Alert(
        "01HEADALERT",
        "01HEADINCIDENT",
        3,
        "update",
        "audit_head",
        "info",
        1.0,
        site,
        [],
        1_767_225_600_000_000_000,
        1_767_225_601_000_000_000,
        f"Audit log head: record {seq}",
        {
            "seq": seq,
            "hash": "ab" * 32,
            "prev_seq": 4,
            "prev_hash": "cd" * 32,
            "prev_hash_now": "cd" * 32,
            "boot_id": "b=|\\1",
            "n": 2,
        },
    )


def test_heads_read_from_json_cef_and_syslog_lines_agree():
    alert = head_alert()
    want = head_from_alert(json.loads(encode_alert(alert)))
    assert want.seq == 7 and want.boot_id == "b=|\\1" and want.prev_hash_now == "cd" * 32
    cef = head_from_alert(parse_alert_line(to_cef(alert)))
    syslog = rfc5424(alert, SyslogSettings(host="127.0.0.1", port=514, tls=False)).decode()
    # rsyslog's omfile writes the message after its own timestamp and host
    omfile = "2026-01-01T00:00:01+00:00 edge-1 " + syslog.split(" ", 1)[1]
    via_syslog = head_from_alert(parse_alert_line(omfile))
    assert cef == want and via_syslog == want
    assert head_from_alert({"kind": "drone_detected"}) is None
    with pytest.raises(HeadError):
        head_from_alert({"kind": "audit_head", "site": "dc-1", "details": {"seq": "7"}})


def test_cli_reads_a_file_and_reports_with_exit_1(tmp_path):
    w_alerts = []
    for seq, boot, n in ((10, "b1", 1), (14, "b1", 2), (9, "b2", 1)):
        a = head_alert(seq, site="red")
        det = {**a.details, "seq": seq, "boot_id": boot, "n": n, "prev_seq": None}
        w_alerts.append(json.dumps({**json.loads(encode_alert(a)), "details": det}))
    w_alerts.insert(1, "this is not an alert")
    w_alerts.insert(2, json.dumps({"kind": "drone_detected", "site": "red"}))
    src = tmp_path / "alerts.jsonl"
    src.write_text("\n".join(w_alerts) + "\n")
    state = tmp_path / "watch.json"
    out = subprocess.run(
        [*WATCH, "--input", str(src), "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr
    (problem,) = [json.loads(x) for x in out.stdout.splitlines()]
    assert problem["kind"] == "audit_head_rewound" and problem["site"] == "red"
    assert f"{src}:2: rejected" in out.stderr and "1 rejected, 1 problems" in out.stderr
    assert json.loads(state.read_text())["sites"]["red"]["last"]["seq"] == 9
    ok = subprocess.run(
        [sys.executable, "-m", "fusion", "audit", "watch", "--input", "-"],
        input=w_alerts[0] + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0 and ok.stdout == "", ok.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "fusion", "audit", "watch"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "exactly one of --mqtt" in bad.stderr


# --- live: a real broker, the service, the watcher as its own process -------------------------
SITE = """[site]
id = "watch"
lat = 52.0
lon = 4.0
alt_m = 10.0

[http]
listen = "127.0.0.1:{http}"

[state]
dir = "state"

[audit]
head_every_s = 1.0

[[sinks]]
type = "mqtt"
host = "127.0.0.1"
port = {broker}
topic = "rampart/watch/alerts"
acks_topic = ""
"""


class Edge:
    def __init__(self, root, broker_port):
        self.cfg = root / "site.toml"
        self.root = root
        self.broker_port = broker_port
        self.log = root / "state" / "audit.log"

    def run_for(self, heads: int, timeout_s: float = 15.0) -> None:
        """Starts the service, lets it publish ``heads`` more heads, stops it."""
        self.cfg.write_text(SITE.format(http=free_port(), broker=self.broker_port))
        delivery = ConfiguredDelivery(load_config(self.cfg), self.root)
        service = Service(self.cfg, sinks=[delivery], trust=None)
        t = threading.Thread(target=service.run, kwargs={"max_seconds": 60}, daemon=True)
        t.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (service.heads is None or service.heads.n < heads):
            time.sleep(0.05)
        service.stop_event.set()
        t.join(timeout=20)
        assert not t.is_alive() and service.heads.n >= heads


def watcher(broker_port, state, seconds):
    proc = subprocess.Popen(
        [
            *WATCH,
            *("--mqtt", f"127.0.0.1:{broker_port}", "--topic", "rampart/+/alerts"),
            *("--state", str(state), "--max-gap-s", "30", "--max-seconds", str(seconds)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 15
    line = ""
    while time.monotonic() < deadline and "subscribed" not in line:
        line = proc.stderr.readline()  # the watcher says when it listens
    assert "subscribed" in line, line
    return proc


def finish(proc, timeout_s=40):
    try:
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    return [json.loads(x) for x in out.splitlines() if x.startswith("{")], err


def test_live_watcher_reports_a_deleted_tail(broker, tmp_path):
    edge = Edge(tmp_path, broker.port)
    proc = watcher(broker.port, tmp_path / "watch.json", seconds=14)
    edge.run_for(heads=2)
    kept = edge.log.read_bytes().splitlines(keepends=True)
    edge.log.write_bytes(b"".join(kept[:-5]))  # the last 5 records deleted
    edge.run_for(heads=1)
    problems, err = finish(proc)
    assert proc.returncode == 1, err
    assert "audit_head_rewound" in {p["kind"] for p in problems}, (problems, err)
    assert all(p["site"] == "watch" for p in problems)


def test_live_watcher_reports_a_consistent_rewrite(broker, tmp_path):
    edge = Edge(tmp_path, broker.port)
    proc = watcher(broker.port, tmp_path / "watch.json", seconds=14)
    edge.run_for(heads=2)
    # An insider edits the first record (before the last published head), then
    # recomputes every hash: the chain verifies, the SOC's copy of the heads does not.
    recs = [json.loads(x) for x in edge.log.read_bytes().splitlines()]
    recs[0]["data"] = {"path": "nothing happened"}
    prev = "0" * 64
    for r in recs:
        r["prev"] = prev
        r["hash"] = prev = record_hash(prev, r)
    edge.log.write_bytes(
        b"".join(
            json.dumps(r, sort_keys=True, separators=(",", ":")).encode() + b"\n" for r in recs
        )
    )
    reopened = AuditLog(edge.log, fsync=False)  # the box itself sees it too, at its start
    assert reopened.opened_with is not None and "rewritten" in reopened.opened_with
    reopened.close()
    edge.run_for(heads=1)
    problems, err = finish(proc)
    assert proc.returncode == 1, err
    assert "audit_head_mismatch" in {p["kind"] for p in problems}, (problems, err)


def test_replay_deliver_publishes_heads_that_a_watcher_accepts(tmp_path):
    from pathlib import Path

    rec = Path(__file__).resolve().parents[2] / "replay_data" / "sensor_faults"
    service = tmp_path / "service.toml"
    service.write_text(
        (rec / "site.toml").read_text()
        + '\n[state]\ndir = "state"\n\n[[sinks]]\ntype = "jsonl"\npath = "delivered.jsonl"\n'
    )
    replay = [sys.executable, "-m", "fusion", "replay", str(rec), "--fast", "--quiet"]
    for _ in range(2):  # the second run's first head links to the first run's last
        out = subprocess.run(
            [*replay, "--config", str(service), "--deliver", "--alerts-out", "own.jsonl"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        assert out.returncode == 0, out.stderr
    delivered = [json.loads(x) for x in (tmp_path / "delivered.jsonl").read_text().splitlines()]
    heads = [a for a in delivered if a["kind"] == "audit_head"]
    assert [a["state"] for a in heads] == ["open", "closed", "open", "closed"]
    assert heads[2]["details"]["prev_seq"] == heads[1]["details"]["seq"]
    assert heads[2]["details"]["prev_hash_now"] == heads[1]["details"]["hash"]
    assert heads[1]["details"]["seq"] > heads[0]["details"]["seq"]  # the replay's alerts
    own = (tmp_path / "own.jsonl").read_text()
    assert "audit_head" not in own  # the replay's own output stays deterministic
    watch = subprocess.run(
        [*WATCH, "--input", str(tmp_path / "delivered.jsonl"), "--max-gap-s", "1e9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert watch.returncode == 0 and watch.stdout == "", watch.stdout + watch.stderr
    verify = subprocess.run(
        [
            *(sys.executable, "-m", "fusion", "audit", "verify", "--config", str(service)),
            *("--head", f"{heads[-1]['details']['seq']}:{heads[-1]['details']['hash']}"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout
