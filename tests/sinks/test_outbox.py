"""The durable outbox and the delivery workers, with in-process sinks."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from drivers.sinks.base import Outcome
from drivers.sinks.delivery import DeliveryService, RetryPolicy
from drivers.sinks.jsonl import JsonlFileSink
from drivers.sinks.outbox import Outbox, OutboxLocked, OutboxPolicy
from fusion.alerts import Alert, decode_alert
from fusion.incidents import Acknowledgement

NS = 1_000_000_000
T0 = 1_767_225_600 * NS


def make_alert(i: int, severity: str = "medium", kind: str = "sensor_fault") -> Alert:
    return Alert(
        f"A{i:06d}",
        f"I{i:06d}",
        1,
        "open",
        kind,
        severity,
        0.9,
        "site",
        ["s1"],
        T0 + i,
        T0 + i,
        f"alert {i}",
        {"i": i},
    )


def test_an_alert_is_committed_before_any_send_and_kept_until_each_sink_confirms(tmp_path):
    path = tmp_path / "outbox.sqlite"
    ob = Outbox(path, ["a", "b"])
    for i in range(5):
        assert ob.put(make_alert(i))
    assert ob.put(make_alert(0))  # the same alert_id again: still one copy
    assert ob.alerts == 5 and ob.pending() == 10
    # a second process (another connection) sees what was committed
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM alerts").fetchone()[0] == 5
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    items = ob.due("a", 10)
    assert [decode_alert(it.body).alert_id for it in items] == [f"A{i:06d}" for i in range(5)]
    ob.confirm("a", [items[0].id, items[1].id])
    assert ob.pending("a") == 3 and ob.pending("b") == 5 and ob.alerts == 5
    ob.confirm("b", [items[0].id])
    assert ob.alerts == 4  # alert 0 is done for both sinks: gone
    ob.defer("a", [items[2].id], time.time_ns() + 3600 * NS, "down")
    assert [it.id for it in ob.due("a", 10)] == [items[3].id, items[4].id]
    assert ob.backlog("a").last_error == "down" and ob.backlog("a").max_attempts == 1
    ob.close()
    # a restart keeps everything undelivered and retries it at once
    ob2 = Outbox(path, ["a", "b"])
    assert ob2.alerts == 4 and ob2.pending("a") == 3 and len(ob2.due("a", 10)) == 3
    ob2.close()


def test_one_process_owns_an_outbox(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite", ["a"])
    with pytest.raises(OutboxLocked, match=str(os.getpid())):
        Outbox(tmp_path / "o.sqlite", ["a"])
    ob.close()
    Outbox(tmp_path / "o.sqlite", ["a"]).close()


def test_a_full_outbox_evicts_low_severity_first_and_never_high_or_critical(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite", ["a"], OutboxPolicy(max_alerts=100))
    sev = ["info", "low", "medium", "high", "critical"]
    for i in range(100):
        ob.put(make_alert(i, sev[i % 5]))
    assert ob.alerts == 100 and ob.evicted == 0
    # 40 more critical alerts: they push out the info ones first, then low, oldest first
    for i in range(100, 140):
        assert ob.put(make_alert(i, "critical"))
    kept = {decode_alert(it.body).alert_id for it in ob.due("a", 1000)}
    assert ob.alerts == 100 and ob.evicted == 40
    assert all(
        f"A{i:06d}" in kept for i in range(100) if sev[i % 5] in ("high", "critical", "medium")
    )
    assert ob.evictions() == {"a": {"info": 20, "low": 20}}
    # a new low alert when only medium and above remain: it is the least important, it goes
    assert not ob.put(make_alert(200, "low"))
    assert ob.evictions()["a"]["low"] == 21
    # fill with critical: high and critical are never evicted, the bound gives way
    for i in range(300, 450):
        assert ob.put(make_alert(i, "critical"))
    left = [decode_alert(it.body) for it in ob.due("a", 10_000)]
    assert {a.severity for a in left} == {"high", "critical"}
    assert sum(a.severity in ("high", "critical") for a in left) == 20 + 20 + 40 + 150
    assert ob.over_bound > 0
    ob.close()


def test_acknowledgements_are_kept(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite", ["a"])
    ack = Acknowledgement("I1", "analyst", "mqtt", T0, "note", "A1")
    ob.record_ack(ack, reply=None)
    ob.close()
    assert Outbox(tmp_path / "o.sqlite", ["a"]).acks("I1") == [ack]


_WRITER = """
import sys
from drivers.sinks.outbox import Outbox
from tests.sinks.test_outbox import make_alert
ob = Outbox(sys.argv[1], ["a", "b"])
for i in range(100000):
    ob.put(make_alert(i))
    print(i, flush=True)
"""


def test_committed_alerts_survive_kill_9(tmp_path):
    path = tmp_path / "o.sqlite"
    p = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        cwd=os.getcwd(),
        text=True,
    )
    last = -1
    deadline = time.monotonic() + 60
    while last < 300 and time.monotonic() < deadline:
        last = int(p.stdout.readline())
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    p.stdout.close()
    ob = Outbox(path, ["a", "b"])  # the lock died with the process
    ids = {decode_alert(it.body).alert_id for it in ob.due("a", 1_000_000)}
    assert all(f"A{i:06d}" in ids for i in range(last + 1))  # every reported commit is there
    assert ob.pending("b") == len(ids) == ob.alerts
    ob.close()


class FlakySink:
    """Confirms what it is offered unless told to fail; counts what it saw."""

    def __init__(self, name: str, fail: str | None = None):
        self.name = name
        self.fail = fail  # None | "sink" | "item"
        self.seen: list[str] = []
        self._out: list[Outcome] = []

    def room(self):
        return 10

    def offer(self, item):
        self.seen.append(item.alert_id)
        if self.fail:
            self._out.append(Outcome(item.id, False, f"{self.name} says no", self.fail))
        else:
            self._out.append(Outcome(item.id, True))

    def poll(self, timeout_s):
        out, self._out = self._out, []
        if not out:
            time.sleep(min(timeout_s, 0.01))
        return out

    def close(self):
        pass


def test_each_sink_at_its_own_pace_with_backoff_and_a_backlog_alert(tmp_path):
    good, bad = FlakySink("good"), FlakySink("bad", fail="sink")
    ob = Outbox(tmp_path / "o.sqlite", ["good", "bad"])
    svc = DeliveryService(
        ob,
        [good, bad],
        "site",
        retry={"bad": RetryPolicy(0.05, 0.2)},
        backlog_alert_s=0.5,
        monitor_s=None,
    ).start()
    for i in range(20):
        svc.send(make_alert(i))
    assert not svc.drain(1.5)  # "bad" keeps failing
    assert sorted(set(good.seen)) == [f"A{i:06d}" for i in range(20)]
    assert ob.pending("good") == 0 and ob.pending("bad") >= 20
    tries = len(bad.seen)
    assert 3 <= tries < 200  # retried, but backed off rather than spun
    # the backlog is the SOC's business: a delivery_backlog alert goes out (via "good")
    (raised,) = svc.check_backlog()
    assert raised.kind == "delivery_backlog" and raised.state == "open"
    assert raised.details["sink"] == "bad" and raised.details["pending"] >= 20
    assert "bad says no" in raised.summary
    bad.fail = None
    assert svc.drain(10)
    (closed,) = svc.check_backlog()
    assert closed.state == "closed" and closed.incident_id == raised.incident_id
    assert svc.close(5)
    assert set(bad.seen) >= {f"A{i:06d}" for i in range(20)}


def test_an_item_refusal_does_not_hold_up_the_others(tmp_path):
    class Picky(FlakySink):
        def offer(self, item):
            self.seen.append(item.alert_id)
            ok = item.alert_id != "A000003"
            self._out.append(Outcome(item.id, ok, "" if ok else "HTTP 400", "item"))

    sink = Picky("picky")
    ob = Outbox(tmp_path / "o.sqlite", ["picky"])
    svc = DeliveryService(ob, [sink], "site", retry={"picky": RetryPolicy(5.0, 10.0)}).start()
    for i in range(10):
        svc.send(make_alert(i))
    time.sleep(0.5)
    assert ob.pending("picky") == 1  # only the refused one waits (5 s back-off)
    assert ob.backlog("picky").last_error == "HTTP 400"
    svc.close(0)


def test_jsonl_sink_confirms_after_fsync_and_mends_a_torn_last_line(tmp_path):
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b'{"alert_id": "torn')  # a crash mid-write
    ob = Outbox(tmp_path / "o.sqlite", ["file"])
    svc = DeliveryService(ob, [JsonlFileSink(path, name="file")], "site").start()
    for i in range(50):
        svc.send(make_alert(i))
    assert svc.close(10)
    lines = path.read_bytes().splitlines()
    assert lines[0] == b'{"alert_id": "torn'
    assert [decode_alert(x).alert_id for x in lines[1:]] == [f"A{i:06d}" for i in range(50)]
