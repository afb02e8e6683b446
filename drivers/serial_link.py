"""A serial port reader that survives unplugging: pyserial in a thread, reopened with backoff.

``SerialLink`` reads a serial device (a path such as ``/dev/ttyACM0`` or any
pyserial URL: ``socket://``, ``rfc2217://``, ``loop://``, ...) in chunks as
they arrive and hands each chunk to a callback with its receive time
(``time.time_ns()`` when the read returned: the arrival of its last byte, to
within the read latency). Chunk boundaries are arbitrary; the stream decoders
(``gnss_stream``, ``power_stream``) keep partial frames between chunks.

When the device disappears (USB unplug, adapter reset, a pty whose other side
closed) the read fails; the link closes the port and tries to open it again
after ``backoff_initial_s``, doubling up to ``backoff_max_s``, and counts each
successful reopen in ``reconnects``. A device that is absent at start-up is
waited for the same way. The backoff stops at 1 s by default: a failed open
of a local device node costs one system call, and what a receiver sends
while nobody reads it is lost, not queued, so a device plugged back in is
read again within a second. ``on_open`` (if given) runs on every open, before
reading: a GNSS receiver that lost power has lost its RAM configuration, so
this is where ``ublox_config.configure`` belongs.

Everything is bounded: each read returns within ``read_timeout_s``, ``stop``
ends the thread within about that time, and ``max_attempts`` (optional)
bounds how many failed opens in a row are tolerated before the link gives up
(``state`` becomes ``"failed"``). A callback that raises is logged and
counted; it never stops the reading.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

log = logging.getLogger("rampart.serial")


@dataclass(frozen=True, slots=True)
class LinkStats:
    state: str
    opens: int
    reconnects: int
    chunks: int
    bytes: int
    failed_opens: int
    callback_errors: int
    last_error: str


class SerialLink:
    def __init__(
        self,
        port: str,
        baud: int,
        on_data: Callable[[int, bytes], None],
        *,
        name: str = "",
        on_open: Callable[[serial.SerialBase], None] | None = None,
        read_size: int = 4096,
        read_timeout_s: float = 0.05,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 1.0,
        max_attempts: int | None = None,
        clock: Callable[[], int] = time.time_ns,
        opener: Callable[..., serial.SerialBase] = serial.serial_for_url,
    ):
        if baud <= 0:
            raise ValueError(f"{name or port}: baud must be positive, not {baud}")
        self.port = port
        self.baud = int(baud)
        self.name = name or port
        self.on_data = on_data
        self.on_open = on_open
        self.read_size = max(int(read_size), 1)
        self.read_timeout_s = max(float(read_timeout_s), 0.001)
        self.backoff_initial_s = max(float(backoff_initial_s), 0.001)
        self.backoff_max_s = max(float(backoff_max_s), self.backoff_initial_s)
        self.max_attempts = max_attempts
        self.clock = clock
        self.opener = opener
        self.state = "idle"  # idle | connecting | open | stopped | failed
        self.opens = 0
        self.reconnects = 0
        self.chunks = 0
        self.bytes = 0
        self.failed_opens = 0
        self.callback_errors = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ser: serial.SerialBase | None = None

    # --- control ----------------------------------------------------------------------------

    def start(self) -> SerialLink:
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: already started")
        self._thread = threading.Thread(target=self.run, name=f"serial-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def stats(self) -> LinkStats:
        return LinkStats(
            self.state,
            self.opens,
            self.reconnects,
            self.chunks,
            self.bytes,
            self.failed_opens,
            self.callback_errors,
            self.last_error,
        )

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Open, read until the device fails, back off, reopen; until ``stop`` (or give-up)."""
        backoff = self.backoff_initial_s
        failures = 0
        while not self._stop.is_set():
            self.state = "connecting"
            ser = self._open()
            if ser is None:
                failures += 1
                if self.max_attempts is not None and failures >= self.max_attempts:
                    self.state = "failed"
                    log.error(
                        "%s: giving up after %d failed opens: %s",
                        self.name,
                        failures,
                        self.last_error,
                    )
                    return
                self._stop.wait(backoff)
                backoff = min(backoff * 2.0, self.backoff_max_s)
                continue
            failures = 0
            if self.opens > 0:
                self.reconnects += 1
                log.warning("%s: reopened (%d reconnects)", self.name, self.reconnects)
            self.opens += 1
            self.state = "open"
            delivered = self._read_until_failure(ser)
            self._close(ser)
            if delivered:
                backoff = self.backoff_initial_s  # it worked for a while: start over quickly
            if not self._stop.is_set():
                self._stop.wait(backoff)
                backoff = min(backoff * 2.0, self.backoff_max_s)
        self.state = "stopped"

    def _open(self) -> serial.SerialBase | None:
        try:
            ser = self.opener(self.port, baudrate=self.baud, timeout=self.read_timeout_s)
        except (serial.SerialException, OSError, ValueError) as exc:
            self.failed_opens += 1
            self._note(exc, "open")
            return None
        self._ser = ser
        if self.on_open is not None:
            try:
                self.on_open(ser)
            except (serial.SerialException, OSError) as exc:
                self._note(exc, "configure")
                self._close(ser)
                return None
            except Exception as exc:  # a configuration bug must not stop the reading
                self.callback_errors += 1
                log.exception("%s: on_open failed: %s", self.name, exc)
        return ser

    def _read_until_failure(self, ser: serial.SerialBase) -> bool:
        delivered = False
        while not self._stop.is_set():
            try:
                waiting = ser.in_waiting
                data = ser.read(min(max(waiting, 1), self.read_size))
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                # TypeError/AttributeError: pyserial's posix port raises them when the fd was
                # closed under it (device gone between select and read).
                self._note(exc, "read")
                return delivered
            if not data:
                continue
            t_rx_ns = self.clock()
            self.chunks += 1
            self.bytes += len(data)
            delivered = True
            try:
                self.on_data(t_rx_ns, bytes(data))
            except Exception as exc:
                self.callback_errors += 1
                log.exception("%s: data callback failed: %s", self.name, exc)
        return delivered

    def _close(self, ser: serial.SerialBase) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            ser.close()
        self._ser = None

    def _note(self, exc: BaseException, what: str) -> None:
        msg = f"{what}: {type(exc).__name__}: {exc}"
        if msg != self.last_error:
            log.warning("%s: %s", self.name, msg)
        self.last_error = msg

    def write(self, data: bytes) -> int:
        """Writes to the open port (e.g. a configuration message); 0 when it is not open."""
        ser = self._ser
        if ser is None:
            return 0
        try:
            return int(ser.write(data) or 0)
        except (serial.SerialException, OSError) as exc:
            self._note(exc, "write")
            return 0
