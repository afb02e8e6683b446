"""The syslog sink: RFC 5424 messages carrying CEF, over TLS (RFC 5425) or TCP (RFC 6587).

Each alert is one RFC 5424 message (Gerhards, "The Syslog Protocol", 2009, §6)::

    <PRI>1 TIMESTAMP HOSTNAME rampart - KIND [rampart@32473 alertId=".." incidentId=".." seq=".." state=".."] CEF:0|...

- PRI = facility × 8 + severity; alert severity critical/high/medium/low/info
  maps to syslog crit(2)/err(3)/warning(4)/notice(5)/info(6).
- TIMESTAMP is the alert's decision time ``t_detect_ns`` (microseconds, UTC), so
  a message is the same bytes however often it is re-sent.
- MSGID is the alert kind; the structured-data element repeats the
  de-duplication key (``alertId``) so a collector can drop repeats without
  parsing CEF. Its SD-ID uses 32473, the enterprise number RFC 5612 reserves
  for documentation; set ``sd_id`` to your own.
- MSG is the CEF line (``drivers.sinks.cef``), UTF-8, without a BOM: most CEF
  parsers read the BOM as part of the ``CEF:`` marker.

Frames use octet counting, ``MSG-LEN SP SYSLOG-MSG`` (RFC 5425 §4.3 over TLS,
RFC 6587 §3.4.1 over plain TCP).

Syslog has no application-level acknowledgement, so a message is confirmed
once the receiver's TCP stack has acknowledged every byte written (the
socket's send queue, ``SIOCOUTQ``, is empty), the connection is still healthy,
and it stayed so for ``settle_s`` — long enough for a receiver that was
stopping with our bytes unread to reset the connection instead. A stopped or
unreachable server, a reset, or a queue that does not drain within
``confirm_timeout_s`` fails everything unconfirmed, which is sent again after
reconnecting. What this cannot see is a receiver that read the bytes and then
crashed before storing them; only an application-level protocol (RELP) closes
that gap.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import select
import socket
import ssl
import struct
import termios
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drivers.sinks.base import OutboxItem, Outcome, client_tls_context
from drivers.sinks.cef import to_cef
from fusion import __version__
from fusion.alerts import Alert

log = logging.getLogger("rampart.sinks.syslog")

FACILITIES = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "syslog": 5,
    "lpr": 6,
    "news": 7,
    "uucp": 8,
    "cron": 9,
    "authpriv": 10,
    "ftp": 11,
    "ntp": 12,
    "security": 13,
    "console": 14,
    "local0": 16,
    "local1": 17,
    "local2": 18,
    "local3": 19,
    "local4": 20,
    "local5": 21,
    "local6": 22,
    "local7": 23,
}
SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}
_TCP_ESTABLISHED, _TCP_CLOSE_WAIT = 1, 8


@dataclass(frozen=True, slots=True)
class SyslogSettings:
    host: str
    port: int = 6514
    tls: bool = True
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify_hostname: bool = True
    facility: str = "local0"
    hostname: str = "-"  # RFC 5424 HOSTNAME; the config layer defaults it to this machine's
    app_name: str = "rampart"
    sd_id: str = "rampart@32473"
    connect_timeout_s: float = 10.0
    confirm_timeout_s: float = 10.0
    settle_s: float = 0.2
    max_unconfirmed: int = 500


def rfc5424(alert: Alert, s: SyslogSettings, device_version: str = __version__) -> bytes:
    """The RFC 5424 message of one alert (without framing)."""
    pri = FACILITIES[s.facility] * 8 + SYSLOG_SEVERITY[alert.severity]
    ts = datetime.fromtimestamp(alert.t_detect_ns // 1000 / 1e6, tz=UTC)
    timestamp = ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sd = (
        f'[{s.sd_id} alertId="{_sd(alert.alert_id)}" incidentId="{_sd(alert.incident_id)}" '
        f'seq="{alert.seq}" state="{_sd(alert.state)}" site="{_sd(alert.site)}"]'
    )
    header = (
        f"<{pri}>1 {timestamp} {_token(s.hostname, 255)} {_token(s.app_name, 48)} - "
        f"{_token(alert.kind, 32)} {sd} "
    )
    return header.encode("ascii") + to_cef(alert, device_version).encode("utf-8")


def octet_frame(msg: bytes) -> bytes:
    """RFC 5425 §4.3 / RFC 6587 §3.4.1 octet-counting framing."""
    return str(len(msg)).encode("ascii") + b" " + msg


def _sd(value: str) -> str:
    """An SD-PARAM value: escape ``"``, ``\\`` and ``]`` (RFC 5424 §6.3.3)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _token(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, or the NILVALUE."""
    out = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return out or "-"


class SyslogSink:
    def __init__(self, settings: SyslogSettings, name: str | None = None):
        self.s = settings
        self.name = name or f"syslog:{settings.host}:{settings.port}"
        self._sock: socket.socket | ssl.SSLSocket | None = None
        self._ctx = (
            client_tls_context(
                settings.ca_file, settings.cert_file, settings.key_file, settings.verify_hostname
            )
            if settings.tls
            else None
        )
        # [item id, monotonic time its bytes were seen acknowledged (None: not yet)]
        self._unconfirmed: list[list] = []
        self._last_write = 0.0
        self._failed: list[Outcome] = []
        self.connected = False
        self.last_error = ""

    # --- Sink ----------------------------------------------------------------------------
    def room(self) -> int:
        if self._failed:
            return 0  # report the failure first; the worker backs off
        return max(0, self.s.max_unconfirmed - len(self._unconfirmed))

    def offer(self, item: OutboxItem) -> None:
        if self._failed:  # already failing this round: do not hammer the receiver
            self._failed.append(Outcome(item.id, False, self.last_error))
            return
        frame = octet_frame(rfc5424(item.alert, self.s))
        try:
            sock = self._connection()
            if self._peer_closed(sock):
                raise ConnectionResetError(errno.ECONNRESET, "receiver closed the connection")
            sock.sendall(frame)
        except (OSError, ssl.SSLError) as exc:
            self._fail_all(f"{self.name}: {exc}", extra=(item.id,))
            return
        self._unconfirmed.append([item.id, None])
        self._last_write = time.monotonic()

    def poll(self, timeout_s: float) -> list[Outcome]:
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            if self._failed:
                out, self._failed = self._failed, []
                return out
            if not self._unconfirmed:
                return []
            done = self._check()
            if done:
                return done
            now = time.monotonic()
            if now >= deadline:
                return []
            time.sleep(min(0.005, deadline - now))

    def close(self) -> None:
        if isinstance(self._sock, ssl.SSLSocket):  # a clean TLS close (close_notify)
            with contextlib.suppress(OSError, ssl.SSLError, ValueError):
                self._sock.settimeout(1.0)
                self._sock.unwrap()
        self._disconnect()

    # --- connection ----------------------------------------------------------------------
    def _connection(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        raw = socket.create_connection((self.s.host, self.s.port), timeout=self.s.connect_timeout_s)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = (
                self._ctx.wrap_socket(raw, server_hostname=self.s.host)
                if self._ctx is not None
                else raw
            )
        except BaseException:
            raw.close()
            raise
        sock.settimeout(self.s.confirm_timeout_s)
        self._sock = sock
        if not self.connected:
            log.info("%s: connected%s", self.name, " (TLS)" if self._ctx else "")
        self.connected = True
        return sock

    def _disconnect(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self.connected = False

    def _fail_all(self, error: str, extra: tuple[int, ...] = ()) -> None:
        if error != self.last_error:
            log.warning("%s", error)
        self.last_error = error
        ids = [u[0] for u in self._unconfirmed] + list(extra)
        self._unconfirmed = []
        self._failed += [Outcome(i, False, error) for i in ids]
        self._disconnect()

    def _peer_closed(self, sock: socket.socket) -> bool:
        """Has the receiver closed? It never sends data, so anything readable is either its
        close (EOF, close_notify, reset) or TLS housekeeping (TLS 1.3 session tickets)."""
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        sock.setblocking(False)
        try:
            return sock.recv(4096) == b""
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return False  # only TLS records without application data
        except OSError:
            return True
        finally:
            sock.settimeout(self.s.confirm_timeout_s)

    def _check(self) -> list[Outcome]:
        """Confirms what the receiver's TCP acknowledged and kept for ``settle_s``."""
        sock = self._sock
        if sock is None:
            self._fail_all(f"{self.name}: connection lost")
            return []
        try:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, errno.errorcode.get(err, "socket error"))
            state = struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))[0]
            if state not in (_TCP_ESTABLISHED, _TCP_CLOSE_WAIT):
                raise ConnectionResetError(errno.ECONNRESET, "receiver closed the connection")
            unacked = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[
                0
            ]
        except (OSError, ssl.SSLError) as exc:
            self._fail_all(f"{self.name}: {exc}")
            return []
        now = time.monotonic()
        if unacked:
            if now - self._last_write > self.s.confirm_timeout_s:
                self._fail_all(
                    f"{self.name}: receiver did not acknowledge {unacked} bytes "
                    f"within {self.s.confirm_timeout_s:g} s"
                )
                return []
        else:
            # The queue is empty: everything written so far has been acknowledged now.
            for u in self._unconfirmed:
                if u[1] is None:
                    u[1] = now
        n = 0  # acknowledged long enough, in write order
        while n < len(self._unconfirmed) and (
            self._unconfirmed[n][1] is not None and now - self._unconfirmed[n][1] >= self.s.settle_s
        ):
            n += 1
        if not n:
            return []
        ids = [u[0] for u in self._unconfirmed[:n]]
        del self._unconfirmed[:n]
        if state == _TCP_CLOSE_WAIT and not self._unconfirmed:
            # It read everything and then closed (unread data would have been a reset).
            self._disconnect()
        return [Outcome(i, True) for i in ids]
