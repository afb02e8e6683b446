"""The tamper-evident audit log: an append-only, hash-chained JSON-lines file.

Every alert, configuration load or refusal, and operator acknowledgement is
appended as one record:

    {"seq": 7, "t_ns": ..., "type": "alert", "data": {...}, "prev": "<hash of record 6>", "hash": "<this record's>"}

``hash`` is SHA-256 over ``prev`` and the record's canonical JSON (sorted keys,
no spaces, without ``hash``); the first record's ``prev`` is 64 zeros. Editing
any byte changes a hash; deleting, reordering or inserting records breaks the
``seq``/``prev`` chain; a cut-off last line is not valid JSON. What the chain
alone cannot show is that whole records were removed from the end, so the
service publishes the latest head (seq and hash) to the SOC periodically and
``rampart audit verify --head SEQ:HASH`` checks the file still reaches it: a
local attacker cannot rewrite history the SOC has already seen.

Records are flushed and fsynced as they are written (the log is small: one
record per alert, not per message).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

GENESIS = "0" * 64


def _canonical(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def record_hash(prev: str, record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(prev.encode("ascii") + _canonical(body)).hexdigest()


class AuditLog:
    """Appends records to the chain at ``path``, continuing an existing file."""

    def __init__(self, path: str | Path, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.seq = 0
        self.head = GENESIS
        if self.path.exists() and self.path.stat().st_size:
            result = verify_file(self.path)
            if not result.ok:
                # Never append to a broken chain: that would launder the damage.
                raise ValueError(
                    f"{self.path}: audit log is damaged ({result.problem}); move it aside to start a new one"
                )
            self.seq, self.head = result.records, result.head
        self._f = open(self.path, "ab")  # noqa: SIM115 - held for the log's lifetime

    def append(self, rtype: str, t_ns: int, data: dict) -> str:
        record = {
            "seq": self.seq + 1,
            "t_ns": int(t_ns),
            "type": rtype,
            "data": data,
            "prev": self.head,
        }
        record["hash"] = record_hash(self.head, record)
        self._f.write(_canonical(record) + b"\n")
        self._f.flush()
        if self.fsync:
            os.fsync(self._f.fileno())
        self.seq += 1
        self.head = record["hash"]
        return self.head

    def close(self) -> None:
        self._f.close()


class AuditSink:
    """Appends every alert to an audit log, as a sink does (``replay --deliver``, the service)."""

    def __init__(self, log: AuditLog):
        self.log = log

    def send(self, alert) -> None:
        self.log.append("alert", alert.t_detect_ns, msgspec.to_builtins(alert))

    def close(self) -> None:
        self.log.close()


@dataclass(frozen=True)
class AuditResult:
    ok: bool
    records: int  # valid records before the first problem
    head: str  # hash of the last valid record
    line: int = 0  # line of the first problem (1-based), 0 when none
    problem: str = ""


def verify_file(path: str | Path, head: tuple[int, str] | None = None) -> AuditResult:
    """Checks the whole chain; names the first bad record. ``head``: a published (seq, hash) to reach."""
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    ends_cleanly = data.endswith(b"\n") or not data
    if ends_cleanly:
        lines = lines[:-1]
    prev = GENESIS
    n = 0
    for i, raw in enumerate(lines, 1):
        last = i == len(lines)
        try:
            record = json.loads(raw)
            fields_ok = isinstance(record, dict) and {
                "seq",
                "t_ns",
                "type",
                "data",
                "prev",
                "hash",
            } <= set(record)
        except ValueError:
            fields_ok = False
        if not fields_ok:
            what = (
                "cut off (truncated tail)"
                if last and not ends_cleanly
                else "not a valid record (edited)"
            )
            return AuditResult(False, n, prev, i, f"line {i}: {what}")
        if record["seq"] != n + 1 or record["prev"] != prev:
            if record["seq"] == n + 1:
                problem = f"line {i}: record {record['seq']} does not follow record {n}'s hash (a record before it was changed or replaced)"
            elif record["seq"] > n + 1:
                problem = f"line {i}: record {record['seq']} follows record {n} (records {n + 1}..{record['seq'] - 1} deleted)"
            else:
                problem = f"line {i}: record {record['seq']} after record {n} (records reordered or repeated)"
            return AuditResult(False, n, prev, i, problem)
        if record_hash(prev, record) != record["hash"]:
            return AuditResult(
                False,
                n,
                prev,
                i,
                f"line {i}: record {record['seq']} does not match its hash (edited)",
            )
        prev = record["hash"]
        n += 1
    if head is not None:
        want_seq, want_hash = head
        if n < want_seq:
            return AuditResult(
                False,
                n,
                prev,
                n + 1,
                f"the log ends at record {n}, before the published head {want_seq} (records {n + 1}..{want_seq} removed from the end)",
            )
        if n >= want_seq and want_seq > 0:
            at = json.loads(lines[want_seq - 1])
            if at["hash"] != want_hash:
                return AuditResult(
                    False,
                    n,
                    prev,
                    want_seq,
                    f"line {want_seq}: record {want_seq} is not the published head (history rewritten)",
                )
    return AuditResult(True, n, prev)
