"""``rampart audit watch``: the SOC's side of the audit chain, checked from outside the box.

The service publishes its audit log's head as an ``audit_head`` info alert
after every batch of alerts and at least every ``[audit] head_every_s``. Its
details:

    seq, hash            the chain's head (before this alert's own record)
    prev_seq, prev_hash  the head published before this one (at a start: the last
                         one the log file itself records)
    prev_hash_now        the hash the log has *now* at prev_seq
    boot_id, n           a random id per process start, and a count per boot

Someone with the box's disk can cut records off the end of the log or rebuild
the whole chain; ``rampart audit verify`` alone cannot tell. The watcher keeps
what it has seen (``--state FILE``, so a restart of the watcher forgets
nothing) and reports, per site:

- ``audit_head_missing``: no head for more than ``max_gap_s``;
- ``audit_head_repeated``: within one boot, a head number re-published with a
  different seq or hash, or a seq lower than the last one seen;
- ``audit_head_rewound``: a new boot whose head is below the last seen one
  (records removed from the end of the log);
- ``audit_head_mismatch``: a record whose hash differs from the one published
  for it before (same seq, other hash; or ``prev_hash_now`` not what was
  published for ``prev_seq``): history the SOC had seen was rewritten.

``AuditWatch`` is pure (``feed(head, now)``, ``tick(now)`` return problems);
the readers below feed it from MQTT or from JSON-lines / syslog-CEF files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from drivers.cef_reader import parse_cef

log = logging.getLogger("rampart.audit_watch")

DEFAULT_MAX_GAP_S = 30.0  # 3 x the service's default head_every_s (10 s)
KEEP_SEQS = 4096  # published (seq -> hash) kept per site
KEEP_NS = 1024  # head numbers of the current boot kept per site
STATE_VERSION = 1
HEX64 = re.compile(r"^[0-9a-f]{64}$")


class HeadError(ValueError):
    """An ``audit_head`` alert whose details are not a head."""


@dataclass(frozen=True)
class Head:
    site: str
    seq: int
    hash: str
    boot_id: str = ""
    n: int = 0
    prev_seq: int | None = None
    prev_hash: str | None = None
    prev_hash_now: str | None = None
    alert_id: str = ""
    t_detect_ns: int = 0
    source: str = ""  # where it was read: topic, file:line


@dataclass(frozen=True)
class Problem:
    kind: str  # audit_head_missing | audit_head_repeated | audit_head_rewound | audit_head_mismatch
    site: str
    summary: str
    details: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return asdict(self)


def head_from_alert(alert: dict, source: str = "") -> Head | None:
    """The head an ``audit_head`` alert carries; None for any other alert; HeadError if malformed."""
    if not isinstance(alert, dict) or alert.get("kind") != "audit_head":
        return None
    d = alert.get("details")
    site = alert.get("site")
    if not isinstance(d, dict) or not isinstance(site, str) or not site:
        raise HeadError("audit_head without a site or details")
    seq, digest = d.get("seq"), d.get("hash")
    if (
        not isinstance(seq, int)
        or seq < 0
        or not isinstance(digest, str)
        or not HEX64.match(digest)
    ):
        raise HeadError(f"audit_head details need seq (int) and hash (64 hex): {d!r:.200}")

    def opt_int(key: str) -> int | None:
        v = d.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    def opt_hash(key: str) -> str | None:
        v = d.get(key)
        return v if isinstance(v, str) and HEX64.match(v) else None

    return Head(
        site=site,
        seq=seq,
        hash=digest,
        boot_id=str(d.get("boot_id") or ""),
        n=opt_int("n") or 0,
        prev_seq=opt_int("prev_seq"),
        prev_hash=opt_hash("prev_hash"),
        prev_hash_now=opt_hash("prev_hash_now"),
        alert_id=str(alert.get("alert_id") or ""),
        t_detect_ns=alert.get("t_detect_ns") if isinstance(alert.get("t_detect_ns"), int) else 0,
        source=source,
    )


class _Site:
    def __init__(self) -> None:
        self.boot_id = ""
        self.n = -1
        self.seq = -1
        self.hash = ""
        self.seen_at = 0.0
        self.missing = False
        self.seqs: OrderedDict[int, str] = OrderedDict()  # what was first published per seq
        self.ns: OrderedDict[int, tuple[int, str]] = OrderedDict()  # this boot: n -> (seq, hash)

    def to_json(self) -> dict:
        return {
            "last": {"boot_id": self.boot_id, "n": self.n, "seq": self.seq, "hash": self.hash},
            "seen_at": self.seen_at,
            "missing": self.missing,
            "seqs": {str(k): v for k, v in self.seqs.items()},
            "ns": {str(k): list(v) for k, v in self.ns.items()},
        }

    @classmethod
    def from_json(cls, d: dict) -> _Site:
        s = cls()
        last = d.get("last", {})
        s.boot_id = str(last.get("boot_id", ""))
        s.n = int(last.get("n", -1))
        s.seq = int(last.get("seq", -1))
        s.hash = str(last.get("hash", ""))
        s.seen_at = float(d.get("seen_at", 0.0))
        s.missing = bool(d.get("missing", False))
        s.seqs = OrderedDict((int(k), str(v)) for k, v in d.get("seqs", {}).items())
        s.ns = OrderedDict((int(k), (int(v[0]), str(v[1]))) for k, v in d.get("ns", {}).items())
        return s


class AuditWatch:
    """Follows published heads per site; ``feed`` and ``tick`` return the problems found.

    ``now`` is seconds on any clock that survives a restart of the watcher when a
    state is kept (wall-clock time); ``started``: when watching began, so a gap
    while the watcher itself was down is not blamed on the site."""

    def __init__(
        self,
        max_gap_s: float = DEFAULT_MAX_GAP_S,
        state: dict | None = None,
        started: float | None = None,
    ):
        if not max_gap_s > 0:
            raise ValueError(f"max_gap_s must be > 0, not {max_gap_s}")
        self.max_gap_s = float(max_gap_s)
        self.started = started
        self.sites: dict[str, _Site] = {}
        self.heads = 0
        self.duplicates = 0
        self.problems = 0
        if state:
            if state.get("version") != STATE_VERSION:
                raise ValueError(f"unknown watch state version {state.get('version')!r}")
            self.sites = {k: _Site.from_json(v) for k, v in state.get("sites", {}).items()}

    def state(self) -> dict:
        return {
            "version": STATE_VERSION,
            "sites": {k: s.to_json() for k, s in sorted(self.sites.items())},
        }

    def feed(self, head: Head, now: float) -> list[Problem]:
        self.heads += 1
        s = self.sites.get(head.site)
        if s is None:
            s = self.sites[head.site] = _Site()
            self._record(s, head, now, advance=True)
            return []
        out: list[Problem] = []
        where = {
            "seq": head.seq,
            "hash": head.hash,
            "boot_id": head.boot_id,
            "n": head.n,
            "alert_id": head.alert_id,
            "source": head.source,
        }
        last = {"seq": s.seq, "hash": s.hash, "boot_id": s.boot_id, "n": s.n}
        advance = True
        if head.boot_id == s.boot_id:
            seen = s.ns.get(head.n)
            if seen == (head.seq, head.hash):
                self.duplicates += 1  # delivered twice (MQTT QoS 1, a file read again)
                s.seen_at = max(s.seen_at, now)
                s.missing = False
                return []
            if seen is not None:
                out.append(
                    Problem(
                        "audit_head_repeated",
                        head.site,
                        f"{head.site}: head n={head.n} of boot {head.boot_id} re-published as "
                        f"{head.seq}:{head.hash[:16]}..., first {seen[0]}:{seen[1][:16]}...",
                        {**where, "first_seq": seen[0], "first_hash": seen[1]},
                    )
                )
                advance = False
            elif head.n < s.n:
                if s.seqs.get(head.seq) == head.hash:
                    self.duplicates += 1  # a late copy of a head whose number we no longer keep
                    return []
                out.append(
                    Problem(
                        "audit_head_repeated",
                        head.site,
                        f"{head.site}: head n={head.n} arrived after n={s.n} of the same boot "
                        f"with a hash never published for record {head.seq}",
                        {**where, "last": last},
                    )
                )
                advance = False
            elif head.seq < s.seq:
                out.append(
                    Problem(
                        "audit_head_repeated",
                        head.site,
                        f"{head.site}: head {head.seq} is below the last one seen ({s.seq}) "
                        f"in the same boot {head.boot_id}: an old head replayed",
                        {**where, "last": last},
                    )
                )
                advance = False
        elif head.seq < s.seq:
            out.append(
                Problem(
                    "audit_head_rewound",
                    head.site,
                    f"{head.site}: after a restart the audit log's head is {head.seq}, below the "
                    f"last published {s.seq}: records {head.seq + 1}..{s.seq} are gone from the log",
                    {**where, "last": last},
                )
            )
        known = s.seqs.get(head.seq)
        if known is not None and known != head.hash and not out:
            out.append(
                Problem(
                    "audit_head_mismatch",
                    head.site,
                    f"{head.site}: record {head.seq} now has hash {head.hash[:16]}..., but "
                    f"{known[:16]}... was published for it: the log was rewritten",
                    {**where, "published_hash": known},
                )
            )
        if head.prev_seq is not None and head.prev_hash_now is not None:
            published = s.seqs.get(head.prev_seq)
            if published is not None and published != head.prev_hash_now:
                out.append(
                    Problem(
                        "audit_head_mismatch",
                        head.site,
                        f"{head.site}: the log now has {head.prev_hash_now[:16]}... at record "
                        f"{head.prev_seq}, but {published[:16]}... was published for it: history "
                        f"the SOC had seen was rewritten",
                        {
                            **where,
                            "prev_seq": head.prev_seq,
                            "prev_hash_now": head.prev_hash_now,
                            "published_hash": published,
                        },
                    )
                )
        self._record(s, head, now, advance)
        self.problems += len(out)
        return out

    def _record(self, s: _Site, head: Head, now: float, advance: bool) -> None:
        s.seen_at = max(s.seen_at, now)
        s.missing = False
        if head.seq not in s.seqs:  # the first published hash stays the reference
            s.seqs[head.seq] = head.hash
            while len(s.seqs) > KEEP_SEQS:
                s.seqs.popitem(last=False)
        if not advance:
            return
        if head.boot_id != s.boot_id:
            s.ns.clear()
        s.ns[head.n] = (head.seq, head.hash)
        while len(s.ns) > KEEP_NS:
            s.ns.popitem(last=False)
        s.boot_id, s.n, s.seq, s.hash = head.boot_id, head.n, head.seq, head.hash

    def tick(self, now: float) -> list[Problem]:
        """Heads overdue: one ``audit_head_missing`` per site and gap."""
        out: list[Problem] = []
        base0 = self.started if self.started is not None else float("-inf")
        for site, s in sorted(self.sites.items()):
            since = max(s.seen_at, base0)
            if not s.missing and now - since > self.max_gap_s:
                s.missing = True
                out.append(
                    Problem(
                        "audit_head_missing",
                        site,
                        f"{site}: no audit head for {now - since:.0f} s (more than "
                        f"{self.max_gap_s:g} s); the last was {s.seq}:{s.hash[:16]}...",
                        {
                            "last_seq": s.seq,
                            "last_hash": s.hash,
                            "boot_id": s.boot_id,
                            "n": s.n,
                            "silent_s": round(now - since, 1),
                            "max_gap_s": self.max_gap_s,
                        },
                    )
                )
        if not self.sites and self.started is not None and now - self.started > self.max_gap_s:
            self.started = now  # once per gap
            out.append(
                Problem(
                    "audit_head_missing",
                    "*",
                    f"no audit head from any site for more than {self.max_gap_s:g} s",
                    {"max_gap_s": self.max_gap_s},
                )
            )
        self.problems += len(out)
        return out


# --- reading heads off the wire and out of files ------------------------------------------
def parse_alert_line(line: str) -> dict | None:
    """A JSON alert, or a syslog line carrying CEF (drivers.sinks.cef), as an alert dict.

    None for a blank line; ValueError for a line that is neither."""
    text = line.strip()
    if not text:
        return None
    if text.startswith("{"):
        obj = json.loads(text)
        if not isinstance(obj, dict):
            raise ValueError("a JSON line that is not an object")
        return obj
    at = text.find("CEF:")
    if at < 0:
        raise ValueError("neither a JSON alert nor a CEF line")
    cef = parse_cef(text[at:])
    header, ext = cef["header"], cef["ext"]
    if len(header) < 6:
        raise ValueError("a CEF header with fewer than 7 fields")
    alert: dict[str, Any] = {
        "kind": header[3],
        "summary": header[4],
        "alert_id": ext.get("externalId", ""),
        "site": ext.get("deviceExternalId", ""),
        "state": ext.get("act", ""),
    }
    if "cn3" in ext:
        with contextlib.suppress(ValueError):
            alert["t_detect_ns"] = int(ext["cn3"])
    if "cs3" in ext:
        try:
            alert["details"] = json.loads(ext["cs3"])
        except ValueError as exc:
            raise ValueError(f"CEF cs3 (details) is not JSON: {exc}") from exc
    return alert


def follow_file(
    stream: IO[bytes], name: str, follow: bool, stop: threading.Event, poll_s: float = 0.2
) -> Iterator[tuple[str, str]]:
    """(line, "name:lineno") from ``stream``; with ``follow``, waits for more at the end
    (like ``tail -f``; a half-written line waits for its end) until ``stop`` is set."""
    buf = b""
    lineno = 0
    while not stop.is_set():
        chunk = stream.readline()
        if chunk:
            buf += chunk
            if not buf.endswith(b"\n"):
                continue
            lineno += 1
            yield buf.decode("utf-8", "replace"), f"{name}:{lineno}"
            buf = b""
            continue
        if not follow:
            break
        stop.wait(poll_s)
    if buf and not follow:
        lineno += 1
        yield buf.decode("utf-8", "replace"), f"{name}:{lineno}"


@dataclass
class MqttInput:
    host: str
    port: int
    topic: str
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    client_id: str = ""


def mqtt_lines(spec: MqttInput, out: queue.Queue, on_subscribed: Callable[[], None]):
    """Subscribes (paho-mqtt 2.x) and puts (payload text, topic) on ``out``; returns the
    client (the caller stops it with ``loop_stop``/``disconnect``)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=spec.client_id or f"rampart-audit-watch-{os.getpid()}",
        protocol=mqtt.MQTTv5,
    )
    if spec.tls:
        client.tls_set(
            ca_certs=str(spec.ca_file) if spec.ca_file else None,
            certfile=str(spec.cert_file) if spec.cert_file else None,
            keyfile=str(spec.key_file) if spec.key_file else None,
        )

    def on_connect(c, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.error("mqtt %s:%d refused the connection: %s", spec.host, spec.port, reason_code)
            return
        c.subscribe(spec.topic, qos=1)

    def on_subscribe(c, userdata, mid, reason_codes, properties):
        log.info("watching %s on %s:%d", spec.topic, spec.host, spec.port)
        on_subscribed()

    def on_message(c, userdata, msg):
        out.put((msg.payload.decode("utf-8", "replace"), f"mqtt:{msg.topic}"))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.reconnect_delay_set(0.5, 10)
    client.connect_async(spec.host, spec.port, keepalive=30)
    client.loop_start()
    return client


class StateFile:
    """The watcher's memory, written atomically (temp file + rename)."""

    def __init__(self, path: Path | None):
        self.path = path

    def load(self) -> dict | None:
        if self.path is None or not self.path.exists():
            return None
        return json.loads(self.path.read_text(encoding="utf-8"))

    def save(self, state: dict) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(state, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)


def run_watch(
    watch: AuditWatch,
    lines: queue.Queue,
    done: threading.Event,
    emit: Callable[[Problem], None],
    state: StateFile,
    max_seconds: float | None = None,
    clock: Callable[[], float] = time.time,
    event_time: bool = False,
) -> dict[str, int]:
    """Feeds queued (line, source) pairs to ``watch`` until ``done`` is set and the queue is
    empty, or ``max_seconds`` pass; ticks for gaps. ``event_time``: the heads' own
    decision times are the clock (reading an archive, not following a live feed)."""
    counts = {"lines": 0, "heads": 0, "rejected": 0, "problems": 0}
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    last_save = time.monotonic()
    dirty = False
    now = 0.0 if event_time else clock()
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            break
        try:
            line, source = lines.get(timeout=0.2)
        except queue.Empty:
            if done.is_set():
                break
            line = None
        problems: list[Problem] = []
        if line is not None:
            counts["lines"] += 1
            try:
                alert = parse_alert_line(line)
                head = head_from_alert(alert, source) if alert is not None else None
            except ValueError as exc:
                counts["rejected"] += 1
                log.warning("%s: rejected: %s", source, exc)
                head = None
            if head is not None:
                counts["heads"] += 1
                if event_time and head.t_detect_ns:
                    now = max(now, head.t_detect_ns / 1e9)
                    problems += watch.tick(now)
                elif not event_time:
                    now = clock()
                problems += watch.feed(head, now)
                dirty = True
        if not event_time:
            now = clock()
            problems += watch.tick(now)
        for p in problems:
            counts["problems"] += 1
            emit(p)
            dirty = True
        if dirty and time.monotonic() - last_save >= 1.0:
            state.save(watch.state())
            last_save, dirty = time.monotonic(), False
    state.save(watch.state())
    return counts
