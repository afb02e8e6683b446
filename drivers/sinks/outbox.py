"""The durable outbox: every alert is on disk before any sink sees it.

The transactional-outbox pattern (C. Richardson, "Microservices Patterns",
Manning 2018, §3.3.7 "Transactional outbox") on SQLite: ``put`` commits the
alert and one *pending* row per configured sink in a single transaction, in
WAL mode with ``synchronous=FULL``, so a committed alert survives ``kill -9``
and a power cut (SQLite, "Write-Ahead Logging" §"Durability", and "PRAGMA
synchronous": FULL syncs the WAL at every commit). Delivery workers read the
pending rows of their sink in outbox order; a row is deleted only after its
sink confirmed the alert, and the alert itself once no sink still needs it.
A crash between a send and its confirmation sends the alert again: delivery
is at-least-once, and consumers drop repeats by ``alert_id`` (contract §4).

Bounded on disk (``max_alerts``, ``max_mb``). When full, room is made by
evicting the lowest-severity, oldest alert among ``info``/``low``/``medium``
ones (the incoming alert included). ``high`` and ``critical`` alerts are
never evicted: when only they are left the outbox grows past its bound, and
says so. Every eviction is counted per sink and severity, logged, and raised
to the SOC as a ``delivery_backlog`` alert by the delivery service.

One process owns an outbox at a time (an exclusive lock on ``PATH.lock``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from drivers.sinks.base import OutboxItem
from fusion.alerts import SEVERITIES, Alert, encode_alert
from fusion.incidents import Acknowledgement

log = logging.getLogger("rampart.outbox")

RANK = {s: i for i, s in enumerate(SEVERITIES)}
NEVER_EVICTED = RANK["high"]  # ranks >= this are never evicted
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL UNIQUE,
    incident_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    rank INTEGER NOT NULL,
    body BLOB NOT NULL,
    enqueued_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_rank ON alerts (rank, id);
CREATE TABLE IF NOT EXISTS pending (
    sink TEXT NOT NULL,
    id INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try_ns INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (sink, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pending_by_id ON pending (id);
CREATE TABLE IF NOT EXISTS evictions (
    sink TEXT NOT NULL,
    severity TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (sink, severity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS acks (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL,
    alert_id TEXT,
    via TEXT NOT NULL,
    by TEXT NOT NULL,
    note TEXT NOT NULL,
    t_ns INTEGER NOT NULL,
    reply TEXT,
    recorded_ns INTEGER NOT NULL
);
"""


class OutboxLocked(RuntimeError):
    """Another process owns this outbox."""


@dataclass(frozen=True, slots=True)
class OutboxPolicy:
    """The ``[outbox]`` section's bounds; see docs/soc.md."""

    max_alerts: int = 100_000
    max_mb: float = 256.0

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 1024 * 1024)


@dataclass(frozen=True, slots=True)
class SinkBacklog:
    sink: str
    pending: int
    oldest_enqueued_ns: int | None  # wall clock of the oldest undelivered alert
    oldest_high_enqueued_ns: int | None  # the same among high/critical ones
    max_attempts: int
    last_error: str


class Outbox:
    def __init__(
        self, path: str | Path, sinks: Sequence[str], policy: OutboxPolicy = OutboxPolicy()
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sinks = tuple(sinks)
        if len(set(self.sinks)) != len(self.sinks):
            raise ValueError(f"sink names must be unique: {self.sinks}")
        self.policy = policy
        self._lock_fd = _lock_exclusive(self.path.with_name(self.path.name + ".lock"))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        # A restart retries everything at once: the back-off schedule belonged to the old process.
        self._db.execute("UPDATE pending SET next_try_ns = 0")
        count, size = self._db.execute(
            "SELECT count(*), total(length(body)) FROM alerts"
        ).fetchone()
        self._count, self._bytes = int(count), int(size)
        self.evicted = 0
        self.over_bound = 0  # high/critical alerts accepted past the bound
        self.last_put_ns = 0
        orphans = self._db.execute(
            f"SELECT sink, count(*) FROM pending WHERE sink NOT IN ({_marks(self.sinks)}) "
            "GROUP BY sink ORDER BY sink",
            self.sinks,
        ).fetchall()
        for sink, n in orphans:
            log.warning(
                "outbox %s: %d alerts still wait for sink %r, which is no longer configured; "
                "they stay in the outbox (configure a sink with name = %r to deliver them)",
                self.path,
                n,
                sink,
                sink,
            )
        if self._count:
            log.info("outbox %s: %d undelivered alerts from a previous run", self.path, self._count)

    # --- writing -------------------------------------------------------------------------
    def put(self, alert: Alert) -> bool:
        """Commits ``alert`` for every sink. False: it was evicted at once (outbox full, low severity)."""
        body = encode_alert(alert)
        rank = RANK[alert.severity]
        now = time.time_ns()
        with self._lock:
            db = self._db
            if db.execute("SELECT 1 FROM alerts WHERE alert_id = ?", (alert.alert_id,)).fetchone():
                return True  # already waiting (a replay or restart produced it again)
            evict: list[tuple[int, str, int]] = []  # (id, severity, size)
            count, size = self._count + 1, self._bytes + len(body)
            drop_incoming = False
            while count > self.policy.max_alerts or size > self.policy.max_bytes:
                row = self._next_victim(after=evict[-1][0] if evict else None)
                if row is not None and (rank >= NEVER_EVICTED or row[2] <= rank):
                    evict.append((row[0], row[1], row[3]))
                    count, size = count - 1, size - row[3]
                elif rank < NEVER_EVICTED:
                    drop_incoming = True  # the newcomer is the least important: it goes
                    break
                else:
                    self.over_bound += 1
                    log.warning(
                        "outbox %s over its bound (%d alerts, %.1f MB): keeping %s alert %s anyway",
                        self.path,
                        count,
                        size / 1e6,
                        alert.severity,
                        alert.alert_id,
                    )
                    break
            db.execute("BEGIN IMMEDIATE")
            try:
                if evict:
                    self._evict(evict)
                if drop_incoming:
                    self._count_eviction(self.sinks, alert.severity)
                else:
                    cur = db.execute(
                        "INSERT INTO alerts (alert_id, incident_id, severity, rank, body, enqueued_ns) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (alert.alert_id, alert.incident_id, alert.severity, rank, body, now),
                    )
                    db.executemany(
                        "INSERT INTO pending (sink, id) VALUES (?, ?)",
                        [(s, cur.lastrowid) for s in self.sinks],
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._count -= len(evict)
            self._bytes -= sum(e[2] for e in evict)
            if not drop_incoming:
                self._count += 1
                self._bytes += len(body)
            self.last_put_ns = now
        if drop_incoming:
            log.warning(
                "outbox %s full: dropped incoming %s alert %s",
                self.path,
                alert.severity,
                alert.alert_id,
            )
        return not drop_incoming

    def _next_victim(self, after: int | None) -> tuple | None:
        """The lowest-severity, oldest evictable alert not yet chosen."""
        if after is None:
            return self._db.execute(
                "SELECT id, severity, rank, length(body) FROM alerts WHERE rank < ? "
                "ORDER BY rank, id LIMIT 1",
                (NEVER_EVICTED,),
            ).fetchone()
        rank = self._db.execute("SELECT rank FROM alerts WHERE id = ?", (after,)).fetchone()[0]
        return self._db.execute(
            "SELECT id, severity, rank, length(body) FROM alerts WHERE rank < ? "
            "AND (rank > ? OR (rank = ? AND id > ?)) ORDER BY rank, id LIMIT 1",
            (NEVER_EVICTED, rank, rank, after),
        ).fetchone()

    def _evict(self, victims: list[tuple[int, str, int]]) -> None:
        db = self._db
        for vid, severity, _ in victims:
            sinks = [r[0] for r in db.execute("SELECT sink FROM pending WHERE id = ?", (vid,))]
            self._count_eviction(sinks, severity)
            db.execute("DELETE FROM pending WHERE id = ?", (vid,))
            db.execute("DELETE FROM alerts WHERE id = ?", (vid,))
        log.warning(
            "outbox %s full: evicted %d undelivered alerts (%s)",
            self.path,
            len(victims),
            ", ".join(sorted({v[1] for v in victims})),
        )

    def _count_eviction(self, sinks: Iterable[str], severity: str) -> None:
        for sink in sinks:
            self._db.execute(
                "INSERT INTO evictions (sink, severity, n) VALUES (?, ?, 1) "
                "ON CONFLICT (sink, severity) DO UPDATE SET n = n + 1",
                (sink, severity),
            )
        self.evicted += 1

    # --- delivery ------------------------------------------------------------------------
    def due(
        self, sink: str, limit: int, now_ns: int | None = None, exclude: Iterable[int] = ()
    ) -> list[OutboxItem]:
        """Up to ``limit`` alerts waiting for ``sink`` whose retry time has come, oldest first."""
        if limit <= 0:
            return []
        skip = set(exclude)
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            rows = self._db.execute(
                "SELECT p.id, a.alert_id, a.incident_id, a.severity, a.body, p.attempts "
                "FROM pending p JOIN alerts a ON a.id = p.id "
                "WHERE p.sink = ? AND p.next_try_ns <= ? ORDER BY p.id LIMIT ?",
                (sink, now, limit + len(skip)),
            ).fetchall()
        items = [OutboxItem(*r) for r in rows if r[0] not in skip]
        return items[:limit]

    def confirm(self, sink: str, ids: Sequence[int]) -> None:
        """``sink`` confirmed these: they are done for it (and gone, when no sink needs them)."""
        if not ids:
            return
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for chunk in _chunks(list(ids), 500):
                    marks = _marks(chunk)
                    db.execute(
                        f"DELETE FROM pending WHERE sink = ? AND id IN ({marks})", [sink, *chunk]
                    )
                    done = db.execute(
                        f"SELECT id, length(body) FROM alerts WHERE id IN ({marks}) AND NOT EXISTS "
                        "(SELECT 1 FROM pending WHERE pending.id = alerts.id)",
                        chunk,
                    ).fetchall()
                    if done:
                        db.execute(
                            f"DELETE FROM alerts WHERE id IN ({_marks(done)})", [d[0] for d in done]
                        )
                        self._count -= len(done)
                        self._bytes -= sum(d[1] for d in done)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def defer(self, sink: str, ids: Sequence[int], until_ns: int, error: str) -> None:
        """Delivery to ``sink`` failed: try these again at ``until_ns`` (wall clock)."""
        if not ids:
            return
        with self._lock:
            for chunk in _chunks(list(ids), 500):
                self._db.execute(
                    "UPDATE pending SET attempts = attempts + 1, next_try_ns = ?, last_error = ? "
                    f"WHERE sink = ? AND id IN ({_marks(chunk)})",
                    [until_ns, error[:500], sink, *chunk],
                )

    # --- state ---------------------------------------------------------------------------
    def backlog(self, sink: str) -> SinkBacklog:
        with self._lock:
            n, oldest, attempts = self._db.execute(
                "SELECT count(*), min(a.enqueued_ns), max(p.attempts) FROM pending p "
                "JOIN alerts a ON a.id = p.id WHERE p.sink = ?",
                (sink,),
            ).fetchone()
            oldest_high = self._db.execute(
                "SELECT min(a.enqueued_ns) FROM pending p JOIN alerts a ON a.id = p.id "
                "WHERE p.sink = ? AND a.rank >= ?",
                (sink, NEVER_EVICTED),
            ).fetchone()[0]
            err = self._db.execute(
                "SELECT last_error FROM pending WHERE sink = ? AND last_error != '' "
                "ORDER BY id LIMIT 1",
                (sink,),
            ).fetchone()
        return SinkBacklog(
            sink, int(n), oldest, oldest_high, int(attempts or 0), err[0] if err else ""
        )

    def pending(self, sink: str | None = None) -> int:
        with self._lock:
            if sink is None:
                return int(self._db.execute("SELECT count(*) FROM pending").fetchone()[0])
            return int(
                self._db.execute("SELECT count(*) FROM pending WHERE sink = ?", (sink,)).fetchone()[
                    0
                ]
            )

    def evictions(self) -> dict[str, dict[str, int]]:
        """Alerts evicted so far, per sink and severity (kept across restarts)."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for sink, sev, n in self._db.execute("SELECT sink, severity, n FROM evictions"):
                out.setdefault(sink, {})[sev] = int(n)
        return out

    @property
    def alerts(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        return self._bytes

    def record_ack(self, ack: Acknowledgement, reply: str | None = None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO acks (incident_id, alert_id, via, by, note, t_ns, reply, recorded_ns) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    ack.incident_id,
                    ack.alert_id,
                    ack.via,
                    ack.by,
                    ack.note,
                    ack.t_ns,
                    reply,
                    time.time_ns(),
                ),
            )

    def acks(self, incident_id: str | None = None) -> list[Acknowledgement]:
        sql = "SELECT incident_id, by, via, t_ns, note, alert_id FROM acks"
        args: tuple = ()
        if incident_id is not None:
            sql, args = sql + " WHERE incident_id = ?", (incident_id,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY n", args).fetchall()
        return [Acknowledgement(*r) for r in rows]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None  # type: ignore[assignment]
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _lock_exclusive(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise OutboxLocked(f"{path}: outbox in use by another process (pid {holder})") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _marks(values: Sequence) -> str:
    return ",".join("?" * len(values))


def _chunks(values: list, n: int):
    for i in range(0, len(values), n):
        yield values[i : i + n]
