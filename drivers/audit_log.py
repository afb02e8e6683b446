"""The tamper-evident audit log: an append-only, hash-chained JSON-lines file.

Every alert, configuration load or refusal, and operator acknowledgement is
appended as one record:

    {"seq": 7, "t_ns": ..., "type": "alert", "data": {...}, "prev": "<hash of record 6>", "hash": "<this record's>"}

``hash`` is SHA-256 over ``prev`` and the record's canonical JSON (sorted keys,
no spaces, without ``hash``); the first record's ``prev`` is 64 zeros. Editing
any byte changes a hash; deleting, reordering or inserting records breaks the
``seq``/``prev`` chain; a cut-off last line is not valid JSON. What the chain
alone cannot show is that whole records were removed from the end, or that the
whole chain was recomputed, so the service publishes the latest head (seq and
hash) to the SOC often and ``rampart audit watch`` follows those heads from
outside; ``rampart audit verify --head SEQ:HASH`` checks the file still reaches
one: a local attacker cannot rewrite history the SOC has already seen.

The log fails safe: it never stops the service from starting.

- A torn last line (a crash mid-write) is *sealed* at open: the file is cut back
  to the last valid record and an ``audit_sealed`` record keeping the torn bytes
  (base64, at most 64 KiB, with their length and SHA-256) continues the chain.
- Damage anywhere else (an edited or deleted record) moves the file aside as
  ``audit.log.damaged-<UTC time>`` and a new file starts with an
  ``audit_restarted`` record naming it, its SHA-256, its first problem and its
  last good record; the chain goes on from that record.
- Under the running service, ``check`` notices the file renamed, deleted,
  replaced, truncated or written by someone else, and the log goes on in a
  fresh file at the path whose first record, ``audit_continued``, links to the
  in-memory head.

``opened_with`` (and ``check``'s answer) say what happened, for the service to
alert on. Records are flushed and fsynced as they are written (the log is
small: one record per alert, not per message).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path

import msgspec

GENESIS = "0" * 64
FIELDS = frozenset({"seq", "t_ns", "type", "data", "prev", "hash"})
# Records that may begin a file at a seq other than 1: they link to an earlier file's head.
START_TYPES = ("audit_continued", "audit_restarted")
SEAL_KEEP_BYTES = 64 * 1024  # torn bytes kept in an audit_sealed record
RECENT_HASHES = 4096  # seq -> hash kept in memory for ``hash_at``

DEFAULT_HEAD_EVERY_S = 10.0
AUDIT_KEYS = frozenset({"head_every_s"})

log = logging.getLogger("rampart.audit")


def head_every_s(site) -> float:
    """``[audit] head_every_s`` of a site configuration: seconds in [0, 3600], default 10;
    0 turns the published heads off (nothing outside can then check the log).
    Raises ConfigError naming each bad key."""
    from fusion.config import ConfigError

    sec = site.raw.get("audit", {})
    if not isinstance(sec, dict):
        raise ConfigError(site.source, ["audit: must be a table ([audit])"])
    problems = [
        f"audit.{key}: unknown key (known: {', '.join(sorted(AUDIT_KEYS))})"
        for key in sorted(set(sec) - AUDIT_KEYS)
    ]
    value = sec.get("head_every_s", DEFAULT_HEAD_EVERY_S)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 3600:
        problems.append(
            "audit.head_every_s: must be a number of seconds in [0, 3600] (0: no published heads)"
        )
    if problems:
        raise ConfigError(site.source, problems)
    return float(value)


def _canonical(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def record_hash(prev: str, record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(prev.encode("ascii") + _canonical(body)).hexdigest()


def _utc_stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _aside(path: Path, what: str) -> Path:
    """A free name beside ``path`` for a file moved out of the way: ``audit.log.WHAT-<UTC>``."""
    base = path.with_name(f"{path.name}.{what}-{_utc_stamp()}")
    dest, n = base, 1
    while dest.exists():
        dest = base.with_name(f"{base.name}.{n}")
        n += 1
    return dest


class AuditLog:
    """Appends records to the chain at ``path``, continuing an existing file.

    Thread-safe: the engine thread and the delivery monitor both append.
    """

    def __init__(self, path: str | Path, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.seq = 0
        self.head = GENESIS
        self._lock = threading.RLock()
        self._recent: OrderedDict[int, str] = OrderedDict()
        # What opening found, for the service to alert on (None: a clean open).
        self.opened_with: str | None = None
        self.open_details: dict = {}
        # The last head published before this open, as the file's audit_head records
        # say: (seq, hash published, hash the file has at seq now or None).
        self.last_published: tuple[int, str, str | None] | None = None
        self.tampered = 0  # problems ``check`` found
        self.write_errors = 0  # appends that failed (disk full, I/O error)
        first: tuple[str, dict] | None = None
        if self.path.exists() and self.path.stat().st_size:
            first = self._recover(self.path.read_bytes())
        self._open_file()
        if first is not None:
            self.append(first[0], time.time_ns(), first[1])

    # --- opening ---------------------------------------------------------------------------
    def _recover(self, data: bytes) -> tuple[str, dict] | None:
        """Continues the file, sealing a torn tail or moving a damaged file aside.
        Returns the record to write first, if any."""
        result = _walk(data)
        if result.last_published is not None:
            seq, claimed = result.last_published
            now = _hash_in(data, seq, result.first_seq) if seq <= result.last_seq else None
            self.last_published = (seq, claimed, now)
        if result.ok:
            self.seq, self.head = result.last_seq, result.head
            for seq, digest in result.tail_hashes:
                self._remember(seq, digest)
            if not data.endswith(b"\n"):
                # The last record is whole but its line end never reached the disk.
                with open(self.path, "ab") as f:
                    f.write(b"\n")
                self.opened_with = f"{self.path}: the last record lacked its line end (a crash mid-write); added it"
                self.open_details = {"path": str(self.path), "repair": "line end added"}
            lp = self.last_published
            if lp is not None and lp[2] is not None and lp[2] != lp[1]:
                self.opened_with = (
                    f"{self.path}: record {lp[0]} no longer has the hash published for it "
                    f"({lp[1][:16]}..., now {lp[2][:16]}...): history before the last published head was rewritten"
                )
                self.open_details = {
                    "path": str(self.path),
                    "seq": lp[0],
                    "published_hash": lp[1],
                    "hash_now": lp[2],
                }
            return None
        if result.torn:
            torn = data[result.good_end :]
            os.truncate(self.path, result.good_end)
            self.seq, self.head = result.last_seq, result.head
            sealed = {
                "reason": result.problem,
                "offset": result.good_end,
                "torn_bytes": len(torn),
                "torn_sha256": hashlib.sha256(torn).hexdigest(),
                "torn_b64": base64.b64encode(torn[:SEAL_KEEP_BYTES]).decode("ascii"),
                "torn_kept_bytes": min(len(torn), SEAL_KEEP_BYTES),
            }
            self.opened_with = (
                f"{self.path}: {result.problem}; sealed {len(torn)} torn bytes after record "
                f"{result.last_seq} and continued the chain"
            )
            self.open_details = {
                "path": str(self.path),
                **{k: v for k, v in sealed.items() if k != "torn_b64"},
            }
            return "audit_sealed", sealed
        # Damage before the end: never append to a broken chain (that would launder it).
        aside = _aside(self.path, "damaged")
        os.replace(self.path, aside)
        self.seq, self.head = result.last_seq, result.head
        restarted = {
            "damaged_file": str(aside),
            "damaged_sha256": hashlib.sha256(data).hexdigest(),
            "damaged_bytes": len(data),
            "problem": result.problem,
            "last_good_seq": result.last_seq,
            "last_good_hash": result.head,
        }
        self.opened_with = (
            f"{self.path}: audit log is damaged ({result.problem}); moved it aside to {aside} "
            f"and started a new file continuing from its last good record {result.last_seq}"
        )
        self.open_details = {"path": str(self.path), **restarted}
        return "audit_restarted", restarted

    def _open_file(self) -> None:
        self._f = open(self.path, "ab")  # noqa: SIM115 - held for the log's lifetime
        st = os.fstat(self._f.fileno())
        self._ident = (st.st_dev, st.st_ino)
        self._size = st.st_size  # what the file must hold: its size at open + what we wrote

    def _remember(self, seq: int, digest: str) -> None:
        self._recent[seq] = digest
        while len(self._recent) > RECENT_HASHES:
            self._recent.popitem(last=False)

    # --- writing ---------------------------------------------------------------------------
    def append(self, rtype: str, t_ns: int, data: dict) -> str:
        with self._lock:
            record = {
                "seq": self.seq + 1,
                "t_ns": int(t_ns),
                "type": rtype,
                "data": data,
                "prev": self.head,
            }
            record["hash"] = record_hash(self.head, record)
            line = _canonical(record) + b"\n"
            try:
                self._f.write(line)
                self._f.flush()
                if self.fsync:
                    os.fsync(self._f.fileno())
            except OSError:
                # Disk full, I/O error: take back what part of the line reached the file,
                # so the next record does not follow a torn one, and let the caller decide.
                self.write_errors += 1
                with contextlib.suppress(OSError):
                    self._f = _reopen_at(self._f, self.path, self._size)
                raise
            self._size += len(line)
            self.seq += 1
            self.head = record["hash"]
            self._remember(self.seq, self.head)
            return self.head

    def state(self) -> tuple[int, str]:
        """(seq, hash) of the head, read together."""
        with self._lock:
            return self.seq, self.head

    def hash_at(self, seq: int) -> str | None:
        """The in-memory chain's hash of record ``seq`` (recent records only), else None."""
        with self._lock:
            if seq == 0:
                return GENESIS
            return self._recent.get(seq)

    # --- watching the file under us ----------------------------------------------------------
    def check(self) -> str | None:
        """Is the file at ``path`` still the one being written, whole? Cheap (two stats).

        On a problem the log goes on in a fresh file at the path (what was there is
        moved aside as ``audit.log.tampered-<UTC>``), first record ``audit_continued``;
        returns what happened, else None."""
        with self._lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                st = None
            except OSError as exc:
                log.warning("%s: cannot check the audit log: %s", self.path, exc)
                return None
            own = os.fstat(self._f.fileno())
            if st is None:
                problem = f"{self.path} was renamed or deleted under the running service"
            elif (st.st_dev, st.st_ino) != self._ident:
                how = "deleted" if own.st_nlink == 0 else "renamed away"
                problem = f"{self.path} was replaced: the file being written was {how} and another put in its place"
            elif st.st_size < self._size:
                problem = f"{self.path} was truncated from {self._size} to {st.st_size} bytes"
            elif st.st_size > self._size:
                problem = f"{self.path} was written by another process: it grew from {self._size} to {st.st_size} bytes"
            else:
                return None
            self.tampered += 1
            self._continue(problem, st, own)
            return problem

    def _continue(self, problem: str, found: os.stat_result | None, own: os.stat_result) -> None:
        previous = {
            "device": own.st_dev,
            "inode": own.st_ino,
            "links": own.st_nlink,
            "bytes_written": self._size,
            "bytes_found": found.st_size if found is not None else None,
        }
        try:
            self._f.close()
        except OSError as exc:
            log.warning("%s: closing the old audit file: %s", self.path, exc)
        moved = None
        if found is not None:  # keep what is at the path as evidence, out of the way
            moved = _aside(self.path, "tampered")
            os.replace(self.path, moved)
        self._open_file()
        self.append(
            "audit_continued",
            time.time_ns(),
            {
                "reason": problem,
                "previous": previous,
                "moved_aside": str(moved) if moved else None,
            },
        )
        log.error("%s; continuing the chain from record %d in a new file", problem, self.seq - 1)

    def close(self) -> None:
        with self._lock:
            self._f.close()


class AuditSink:
    """Appends every alert to an audit log, as a sink does (``replay --deliver``, the service)."""

    def __init__(self, log: AuditLog):
        self.log = log

    def send(self, alert) -> None:
        # A failing disk must not stop the alert on its way to the SOC: the other sinks
        # still get it, and the failure is logged and counted (rampart_audit_write_errors).
        try:
            self.log.append("alert", alert.t_detect_ns, msgspec.to_builtins(alert))
        except OSError as exc:
            log.error(
                "audit log %s: cannot append alert %s (%s): %s; %d write errors so far",
                self.log.path,
                alert.alert_id,
                alert.kind,
                exc,
                self.log.write_errors,
            )

    def close(self) -> None:
        self.log.close()


class HeadTracker:
    """What each published head says: the details of an ``audit_head`` alert (see
    drivers/audit_watch.py for how they are checked), for one process start."""

    def __init__(self, log: AuditLog):
        self.log = log
        self.boot_id = secrets.token_hex(8)  # lets a watcher tell a restart from a replay
        self.n = 0
        lp = log.last_published
        self.prev: tuple[int, str] | None = lp[:2] if lp else None
        self._prev_now_at_start = lp[2] if lp else None
        self.after_seq = -1  # the log's seq just after the last head's own record
        self._incident: tuple[str, int] | None = None  # (id, first time) for ``alert``

    def details(self) -> dict:
        """The next head: ``seq``/``hash`` now, ``prev_*`` the one published before and the
        hash the log has at its seq now (from the file at start, then the in-memory chain)."""
        seq, digest = self.log.state()
        prev_seq, prev_hash = self.prev if self.prev else (None, None)
        if self.n == 0:
            prev_now = self._prev_now_at_start
        else:
            prev_now = self.log.hash_at(prev_seq) if prev_seq is not None else None
            prev_now = prev_now or prev_hash  # older than the cache: what was published
        self.n += 1
        self.prev = (seq, digest)
        return {
            "seq": seq,
            "hash": digest,
            "prev_seq": prev_seq,
            "prev_hash": prev_hash,
            "prev_hash_now": prev_now,
            "boot_id": self.boot_id,
            "n": self.n,
        }

    def published(self) -> None:
        """The head's alert has been handed on (and so recorded in the log)."""
        self.after_seq = self.log.seq

    def new_records(self) -> bool:
        """Records were appended since the last head's own."""
        return self.log.seq != self.after_seq

    def alert(self, site_id: str, state: str, t_ns: int | None = None):
        """A head as a ready alert, for senders without an incident book (``replay --deliver``)."""
        from fusion.alerts import Alert, deterministic_ulid

        t = time.time_ns() if t_ns is None else t_ns
        details = self.details()
        if self._incident is None:
            self._incident = (deterministic_ulid(t, "audit-head", site_id, self.boot_id), t)
        incident, t_first = self._incident
        return Alert(
            alert_id=deterministic_ulid(t, incident, self.n),
            incident_id=incident,
            seq=self.n,
            state=state,
            kind="audit_head",
            severity="info",
            confidence=1.0,
            site=site_id,
            sensors=[],
            t_event_ns=t_first,
            t_detect_ns=t,
            summary=f"Audit log head: record {details['seq']}",
            details=details,
        )


@dataclass(frozen=True)
class AuditResult:
    ok: bool
    records: int  # valid records (in this file) before the first problem
    head: str  # hash of the last valid record
    line: int = 0  # line of the first problem (1-based), 0 when none
    problem: str = ""
    last_seq: int = 0  # seq of the last valid record (== records for a file from genesis)
    first_seq: int = 1  # seq of the file's first record (> 1: it continues an earlier file)
    start: str = ""  # how a file that does not begin at genesis begins, for people
    notes: tuple[str, ...] = ()  # sealed tails and other things a reader should know
    torn: bool = False  # the problem is a torn last line (a crash mid-write)
    good_end: int = 0  # byte offset just past the last valid record's line
    last_published: tuple[int, str] | None = None  # the last audit_head record's (seq, hash)
    tail_hashes: tuple[tuple[int, str], ...] = ()  # (seq, hash) of the last records


def _hash_in(data: bytes, seq: int, first_seq: int) -> str | None:
    """The hash the file holds at ``seq`` (None if it is not in this file)."""
    index = seq - first_seq
    if index < 0:
        return None
    for i, raw in enumerate(data.split(b"\n")):
        if i == index:
            try:
                record = json.loads(raw)
                return record["hash"] if record.get("seq") == seq else None
            except (ValueError, TypeError, KeyError, AttributeError):
                return None
    return None


def _walk(data: bytes, head: tuple[int, str] | None = None) -> AuditResult:
    lines = data.split(b"\n")
    ends_cleanly = data.endswith(b"\n") or not data
    if ends_cleanly:
        lines = lines[:-1]
    prev = GENESIS
    n = 0  # records in this file
    seq = 0  # seq of the last valid record
    first_seq = 1
    start = ""
    notes: list[str] = []
    offset = good_end = 0
    published: tuple[int, str] | None = None
    tail: deque[tuple[int, str]] = deque(maxlen=RECENT_HASHES)
    first_prev = GENESIS

    def bad(i: int, problem: str, torn: bool = False) -> AuditResult:
        return AuditResult(
            False,
            n,
            prev,
            i,
            problem,
            seq,
            first_seq,
            start,
            tuple(notes),
            torn,
            good_end,
            published,
            tuple(tail),
        )

    for i, raw in enumerate(lines, 1):
        last = i == len(lines)
        offset += len(raw) + 1
        try:
            record = json.loads(raw)
            fields_ok = (
                isinstance(record, dict)
                and set(record) >= FIELDS
                and isinstance(record["seq"], int)
                and isinstance(record["prev"], str)
            )
        except ValueError:
            fields_ok = False
        if not fields_ok:
            if last and not ends_cleanly:
                return bad(i, f"line {i}: cut off (truncated tail)", torn=True)
            if last:
                return bad(i, f"line {i}: not a valid record (torn or edited last line)", True)
            return bad(i, f"line {i}: not a valid record (edited)")
        if i == 1 and record["type"] in START_TYPES and record["seq"] >= 1:
            # A file that goes on from an earlier one's head: its link is its own first record.
            first_seq = record["seq"]
            seq = first_seq - 1
            prev = first_prev = record["prev"]
            d = record["data"] if isinstance(record["data"], dict) else {}
            if record["type"] == "audit_continued":
                start = (
                    f"continues from head {seq}:{prev} (the previous file was lost or replaced "
                    f"under the running service: {d.get('reason', '?')})"
                )
            else:
                start = (
                    f"restarted after damage: continues from record {seq}:{prev} of "
                    f"{d.get('damaged_file', '?')} ({d.get('problem', '?')})"
                )
        if record["seq"] != seq + 1 or record["prev"] != prev:
            if record["seq"] == seq + 1:
                problem = f"line {i}: record {record['seq']} does not follow record {seq}'s hash (a record before it was changed or replaced)"
            elif record["seq"] > seq + 1:
                problem = f"line {i}: record {record['seq']} follows record {seq} (records {seq + 1}..{record['seq'] - 1} deleted)"
            else:
                problem = f"line {i}: record {record['seq']} after record {seq} (records reordered or repeated)"
            return bad(i, problem)
        if record_hash(prev, record) != record["hash"]:
            return bad(i, f"line {i}: record {record['seq']} does not match its hash (edited)")
        prev = record["hash"]
        n += 1
        seq = record["seq"]
        good_end = min(offset, len(data))
        tail.append((seq, prev))
        d = record["data"]
        if record["type"] == "audit_sealed" and isinstance(d, dict):
            notes.append(
                f"line {i}: record {seq} seals {d.get('torn_bytes', '?')} torn bytes "
                f"(sha256 {str(d.get('torn_sha256', '?'))[:16]}...): {d.get('reason', '?')}"
            )
        elif record["type"] == "audit_continued" and i > 1:
            notes.append(f"line {i}: record {seq}: {d.get('reason', '?')}")
        elif record["type"] == "alert" and isinstance(d, dict) and d.get("kind") == "audit_head":
            det = d.get("details") or {}
            if isinstance(det.get("seq"), int) and isinstance(det.get("hash"), str):
                published = (det["seq"], det["hash"])
    if head is not None:
        want_seq, want_hash = head
        if seq < want_seq:
            return bad(
                n + 1,
                f"the log ends at record {seq}, before the published head {want_seq} (records {seq + 1}..{want_seq} removed from the end)",
            )
        if want_seq < first_seq - 1:
            return bad(
                1,
                f"the published head {want_seq} is older than this file, which begins at record {first_seq} ({start}); check it against the earlier file",
            )
        if want_seq == first_seq - 1:
            at_hash = first_prev
        elif want_seq > 0:
            at_hash = json.loads(lines[want_seq - first_seq])["hash"]
        else:
            at_hash = GENESIS
        if at_hash != want_hash:
            return bad(
                max(want_seq - first_seq + 1, 1),
                f"line {max(want_seq - first_seq + 1, 1)}: record {want_seq} is not the published head (history rewritten)",
            )
    return AuditResult(
        True,
        n,
        prev,
        0,
        "",
        seq,
        first_seq,
        start,
        tuple(notes),
        False,
        good_end,
        published,
        tuple(tail),
    )


def verify_file(path: str | Path, head: tuple[int, str] | None = None) -> AuditResult:
    """Checks the whole chain; names the first bad record. ``head``: a published (seq, hash) to reach.

    A file may begin with ``audit_continued`` or ``audit_restarted`` at a seq above 1:
    ``start`` then says which head of the earlier file it continues from."""
    return _walk(Path(path).read_bytes(), head)


def _reopen_at(f, path: Path, size: int):
    """``f`` closed and the file reopened for appending, cut back to ``size`` bytes."""
    with contextlib.suppress(OSError):
        f.close()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.ftruncate(fd, size)
    return os.fdopen(fd, "ab")
