"""The audit log fails safe: a torn tail is sealed, damage is moved aside, a file renamed,
replaced or truncated under the running service is noticed, and the service always starts
and says so (issue #12, red-team rows 7, 9 and 13)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import threading
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.audit_log import AuditLog, AuditSink, head_every_s, verify_file
from drivers.sinks.delivery import DeliveryService, RetryPolicy
from drivers.sinks.outbox import Outbox
from fusion.cli.service import Service
from fusion.config import ConfigError, parse_config
from tests.security.test_audit_log import lines, make_log, verify_cli
from tests.service.conftest import free_port
from tests.sinks.test_outbox import FlakySink, make_alert

SITE = """[site]
id = "audit"
lat = 52.0
lon = 4.0
alt_m = 10.0

[http]
listen = "127.0.0.1:{http}"

[state]
dir = "state"

[audit]
head_every_s = {every}
"""


class ListSink:
    def __init__(self):
        self.alerts = []

    def send(self, alert):
        self.alerts.append(alert)

    def close(self):
        pass

    def kinds(self):
        return [a.kind for a in self.alerts]


def records(path):
    return [json.loads(x) for x in lines(path)]


def service_config(tmp_path, every=1.0):
    cfg = tmp_path / "site.toml"
    cfg.write_text(SITE.format(http=free_port(), every=every))
    return cfg


def wait_for(cond, timeout_s=15.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


class Running:
    """A Service in a thread (unsigned configuration: trust=None), stopped on exit."""

    def __init__(self, cfg, sinks=None):
        self.sink = ListSink()
        self.service = Service(cfg, sinks=[self.sink, *(sinks or [])], trust=None)
        self.thread = threading.Thread(
            target=self.service.run, kwargs={"max_seconds": 60}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        assert wait_for(lambda: self.service.ready), "the service did not get ready"
        return self

    def __exit__(self, *exc):
        self.service.stop_event.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


# --- at open ---------------------------------------------------------------------------------
def test_a_torn_tail_is_sealed_with_its_bytes_and_the_chain_goes_on(tmp_path):
    p = tmp_path / "audit.log"
    heads = make_log(p, 5)
    data = p.read_bytes()
    p.write_bytes(data[:-10])  # truncate -s -10: what a crash mid-write leaves
    torn = data[data.rindex(b"\n", 0, len(data) - 1) + 1 : -10]
    log = AuditLog(p, fsync=False)
    assert log.seq == 5 and "sealed" in log.opened_with
    assert log.open_details["torn_bytes"] == len(torn)
    log.close()
    recs = records(p)
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5]
    sealed = recs[-1]
    assert sealed["type"] == "audit_sealed" and sealed["prev"] == heads[3]
    assert base64.b64decode(sealed["data"]["torn_b64"]) == torn
    assert sealed["data"]["torn_sha256"] == hashlib.sha256(torn).hexdigest()
    assert "cut off" in sealed["data"]["reason"]
    out = verify_cli(p)
    assert out.returncode == 0, out.stdout
    assert "intact, 5 records" in out.stdout and "seals 40" not in out.stdout
    assert f"seals {len(torn)} torn bytes" in out.stdout


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(min_value=1, max_value=400))
def test_any_cut_of_the_tail_reopens_to_a_chain_that_verifies(tmp_path, cut):
    p = tmp_path / f"audit-{cut}.log"
    p.unlink(missing_ok=True)
    make_log(p, 4)
    data = p.read_bytes()
    cut = min(cut, len(data) - 1)
    p.write_bytes(data[:-cut])
    before = verify_file(p)
    log = AuditLog(p, fsync=False)
    log.append("alert", 9, {"after": "restart"})
    log.close()
    result = verify_file(p)
    assert result.ok, result.problem
    # Every record that was whole is still there, in order, before the seal and the new one.
    whole = before.records
    assert [r["seq"] for r in records(p)][:whole] == list(range(1, whole + 1))
    kept = data[:-cut]
    ends_at_record = kept.endswith(b"\n") or data[len(kept) : len(kept) + 1] == b"\n"
    if ends_at_record:  # whole records left (at most their line end lost): nothing to seal
        assert [r["type"] for r in records(p)].count("audit_sealed") == 0
    else:
        assert records(p)[whole]["type"] == "audit_sealed"


def test_a_service_starts_over_a_torn_log_and_alerts(tmp_path):
    cfg = service_config(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    make_log(state / "audit.log", 3)
    log_path = state / "audit.log"
    log_path.write_bytes(log_path.read_bytes()[:-10])
    with Running(cfg) as run:
        assert wait_for(lambda: "audit_log_damaged" in run.sink.kinds())
    alert = next(a for a in run.sink.alerts if a.kind == "audit_log_damaged")
    assert alert.severity == "high" and "sealed" in alert.summary
    assert alert.details["torn_bytes"] > 0 and "torn_b64" not in alert.details
    assert verify_file(log_path).ok


def test_a_service_starts_over_a_log_damaged_in_the_middle_and_alerts(tmp_path):
    cfg = service_config(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    log_path = state / "audit.log"
    make_log(log_path, 6)
    ls = lines(log_path)
    del ls[2]  # a deleted record
    log_path.write_bytes(b"\n".join(ls) + b"\n")
    with Running(cfg) as run:
        assert wait_for(lambda: "audit_log_damaged" in run.sink.kinds())
    alert = next(a for a in run.sink.alerts if a.kind == "audit_log_damaged")
    assert "records 3..3 deleted" in alert.details["problem"]
    assert alert.details["last_good_seq"] == 2
    (aside,) = state.glob("audit.log.damaged-*")
    assert alert.details["damaged_file"] == str(aside)
    assert records(log_path)[0]["type"] == "audit_restarted"
    out = verify_cli(log_path)
    assert out.returncode == 0 and "restarted after damage" in out.stdout, out.stdout


# --- under the running service -------------------------------------------------------------
def test_a_log_renamed_away_is_noticed_and_continued_from_the_in_memory_head(tmp_path):
    p = tmp_path / "audit.log"
    log = AuditLog(p, fsync=False)
    for i in range(3):
        log.append("alert", i, {"i": i})
    assert log.check() is None
    head = log.head
    os.rename(p, tmp_path / "elsewhere.log")
    problem = log.check()
    assert problem is not None and "renamed or deleted" in problem
    log.append("alert", 9, {"i": 9})
    log.close()
    first, second = records(p)
    assert first["type"] == "audit_continued" and first["seq"] == 4 and first["prev"] == head
    assert first["data"]["previous"]["bytes_written"] == (tmp_path / "elsewhere.log").stat().st_size
    assert second["seq"] == 5
    out = verify_cli(p)
    assert out.returncode == 0 and f"continues from head 3:{head}" in out.stdout, out.stdout
    assert verify_cli(p, "--head", f"3:{head}").returncode == 0
    assert verify_cli(p, "--head", f"3:{'0' * 64}").returncode == 1
    older = verify_cli(p, "--head", f"2:{'0' * 64}")
    assert older.returncode == 1 and "older than this file" in older.stdout


def test_replaced_truncated_or_grown_files_are_noticed_and_kept_aside(tmp_path):
    p = tmp_path / "audit.log"
    log = AuditLog(p, fsync=False)
    log.append("alert", 1, {"i": 1})
    # replaced: another file put at the path
    os.rename(p, tmp_path / "gone.log")
    p.write_bytes(b"forged\n")
    assert "was replaced" in log.check()
    assert sorted(x.read_bytes() for x in tmp_path.glob("audit.log.tampered-*")) == [b"forged\n"]
    # truncated in place
    log.append("alert", 2, {"i": 2})
    size = p.stat().st_size
    os.truncate(p, 10)
    assert f"truncated from {size} to 10 bytes" in log.check()
    # written by another process
    log.append("alert", 3, {"i": 3})
    with open(p, "ab") as f:
        f.write(b'{"seq": 99}\n')
    assert "grew from" in log.check()
    assert log.check() is None  # the fresh file is fine
    log.close()
    assert log.tampered == 3 and len(list(tmp_path.glob("audit.log.tampered-*"))) == 3
    assert verify_file(p).ok and records(p)[0]["type"] == "audit_continued"


def test_a_rename_under_the_running_service_is_alerted_and_the_log_goes_on(tmp_path):
    cfg = service_config(tmp_path)
    log_path = tmp_path / "state" / "audit.log"
    with Running(cfg) as run:
        assert wait_for(lambda: "audit_head" in run.sink.kinds())
        os.rename(log_path, tmp_path / "state" / "moved.log")
        assert wait_for(lambda: "audit_log_tampered" in run.sink.kinds())
        assert wait_for(lambda: log_path.exists() and len(lines(log_path)) >= 2)
    alert = next(a for a in run.sink.alerts if a.kind == "audit_log_tampered")
    assert alert.severity == "high" and "renamed or deleted" in alert.summary
    recs = records(log_path)
    assert recs[0]["type"] == "audit_continued"
    assert any(r["data"].get("kind") == "audit_log_tampered" for r in recs[1:])
    assert verify_file(log_path).ok


def test_appends_from_two_threads_keep_one_chain(tmp_path):
    p = tmp_path / "audit.log"
    log = AuditLog(p, fsync=False)

    def writer(tag):
        for i in range(300):
            log.append("alert", i, {"tag": tag, "i": i})

    threads = [threading.Thread(target=writer, args=(t,)) for t in ("engine", "delivery")]
    for t in threads:
        t.start()
    for _ in range(50):
        log.check()  # the run loop's check, meanwhile
    for t in threads:
        t.join(timeout=30)
    log.close()
    result = verify_file(p)
    assert result.ok and result.records == 600, result.problem


# --- delivery's own alerts ------------------------------------------------------------------
def test_delivery_backlog_alerts_are_in_the_audit_log(tmp_path):
    good, bad = FlakySink("good"), FlakySink("bad", fail="sink")
    ob = Outbox(tmp_path / "o.sqlite", ["good", "bad"])
    log = AuditLog(tmp_path / "audit.log", fsync=False)
    svc = DeliveryService(
        ob,
        [good, bad],
        "site",
        retry={"bad": RetryPolicy(0.05, 0.2)},
        backlog_alert_s=0.3,
        monitor_s=None,
        on_own_alert=AuditSink(log).send,
    ).start()
    svc.send(make_alert(1))
    time.sleep(0.5)
    (raised,) = svc.check_backlog()
    assert raised.kind == "delivery_backlog"
    svc.close(0)
    log.close()
    audited = [r["data"] for r in records(tmp_path / "audit.log")]
    assert [a["alert_id"] for a in audited] == [raised.alert_id]


def test_the_service_audits_the_backlog_alert_of_its_real_delivery(tmp_path):
    from drivers.sinks.config import ConfiguredDelivery
    from fusion.config import load_config

    cfg = service_config(tmp_path)
    dead = free_port()  # nothing listens: every delivery to it fails
    cfg.write_text(
        cfg.read_text().replace("[audit]", "[outbox]\nbacklog_alert_s = 1\n\n[audit]")
        + f'\n[[sinks]]\ntype = "jsonl"\npath = "alerts.jsonl"\nfsync = false\n'
        f'\n[[sinks]]\ntype = "mqtt"\nname = "dead"\nhost = "127.0.0.1"\nport = {dead}\n'
        'topic = "rampart/audit/alerts"\n'
    )
    delivery = ConfiguredDelivery(load_config(cfg), tmp_path)
    log_path = tmp_path / "state" / "audit.log"

    def backlog_ids():
        return {
            r["data"]["alert_id"]
            for r in records(log_path)
            if r["type"] == "alert" and r["data"]["kind"] == "delivery_backlog"
        }

    with Running(cfg, sinks=[delivery]):
        assert wait_for(lambda: bool(backlog_ids()), 20), "no delivery_backlog in the audit log"
    delivered = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    sent = {a["alert_id"] for a in delivered if a["kind"] == "delivery_backlog"}
    assert sent and sent <= backlog_ids()
    assert verify_file(log_path).ok


# --- heads -------------------------------------------------------------------------------------
def test_heads_say_what_a_watcher_needs_and_link_across_a_restart(tmp_path):
    cfg = service_config(tmp_path, every=0.5)  # below the book's 2 s: clamped to it
    with Running(cfg) as run:
        assert wait_for(lambda: run.sink.kinds().count("audit_head") >= 3)
    heads = [a for a in run.sink.alerts if a.kind == "audit_head"]
    assert heads[-1].state == "closed"  # the shutdown's head
    first = heads[0].details
    assert first["n"] == 1 and first["prev_seq"] is None and len(first["boot_id"]) == 16
    for a, b in itertools.pairwise(heads):
        assert b.details["n"] == a.details["n"] + 1
        assert b.details["boot_id"] == first["boot_id"]
        assert (b.details["prev_seq"], b.details["prev_hash"]) == (
            a.details["seq"],
            a.details["hash"],
        )
        assert b.details["prev_hash_now"] == a.details["hash"]
    # Each head names the record before its own, as the file holds it.
    by_seq = {r["seq"]: r["hash"] for r in records(tmp_path / "state" / "audit.log")}
    assert all(by_seq[h.details["seq"]] == h.details["hash"] for h in heads)
    last = heads[-1].details
    with Running(cfg) as again:
        assert wait_for(lambda: "audit_head" in again.sink.kinds())
    nxt = next(a for a in again.sink.alerts if a.kind == "audit_head").details
    assert nxt["boot_id"] != last["boot_id"] and nxt["n"] == 1
    assert (nxt["prev_seq"], nxt["prev_hash"], nxt["prev_hash_now"]) == (
        last["seq"],
        last["hash"],
        last["hash"],
    )


def test_head_every_s_is_validated_and_zero_is_warned(tmp_path, caplog):
    def site(extra):
        return parse_config(SITE.format(http=1, every=1).replace("head_every_s = 1", extra))

    assert head_every_s(site("")) == 10.0
    assert head_every_s(site("head_every_s = 2.5")) == 2.5
    for bad in ('head_every_s = "10"', "head_every_s = -1", "head_every_s = 99999", "every = 1"):
        try:
            head_every_s(site(bad))
        except ConfigError as exc:
            assert any(p.startswith("audit.") for p in exc.problems), exc.problems
        else:
            raise AssertionError(f"{bad!r} was accepted")
    cfg = service_config(tmp_path, every=0)
    with caplog.at_level("WARNING", logger="rampart.service"):
        service = Service(cfg, trust=None)
    service.http.httpd.server_close()
    service.audit.close()
    assert service.head_every_s == 0 and "NOT published" in caplog.text


def test_a_full_disk_is_counted_and_the_chain_stays_whole(tmp_path):
    """ENOSPC from the kernel (/dev/full) mid-append: the alert is not lost to the other
    sinks, the failure is counted, nothing torn stays in the file, and the next record
    follows the last one that was written."""
    p = tmp_path / "audit.log"
    make_log(p, 3)
    log = AuditLog(p, fsync=False)
    good_size = p.stat().st_size
    log._f.close()
    log._f = open("/dev/full", "ab")  # noqa: SIM115 - the log reopens its own file
    AuditSink(log).send(make_alert(1))  # must not raise
    assert log.write_errors == 1 and log.seq == 3
    assert p.stat().st_size == good_size
    log.append("alert", 10, {"after": "disk freed"})
    log.close()
    result = verify_file(p)
    assert result.ok and result.records == 4, result.problem
