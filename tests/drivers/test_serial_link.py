"""SerialLink: chunks with receive times, reopen with backoff, bounded, never killed by a callback."""

from __future__ import annotations

import itertools
import os
import threading
import time
import tty

import pytest
import serial

from drivers.serial_link import SerialLink

WAIT_S = 5.0  # upper bound on any wait in these tests


def wait_for(cond, timeout_s: float = WAIT_S) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


class FakePort:
    """A port that returns scripted chunks, then fails as an unplugged device does."""

    def __init__(self, chunks: list[bytes], fail_with: Exception | None = None):
        self.chunks = list(chunks)
        self.fail_with = fail_with
        self.closed = False
        self.written = bytearray()

    @property
    def in_waiting(self) -> int:
        return len(self.chunks[0]) if self.chunks else 0

    def read(self, n: int) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.fail_with is not None:
            raise self.fail_with
        time.sleep(0.005)
        return b""

    def write(self, data: bytes) -> int:
        self.written += data
        return len(data)

    def close(self) -> None:
        self.closed = True


class Opener:
    """serial_for_url stand-in: fails ``failures`` times, then hands out ``ports`` in turn."""

    def __init__(self, ports: list[FakePort], failures: int = 0):
        self.ports = list(ports)
        self.failures = failures
        self.calls = 0
        self.kwargs: list[dict] = []

    def __call__(self, url, **kwargs):
        self.calls += 1
        self.kwargs.append(kwargs)
        if self.failures > 0 or not self.ports:
            self.failures -= 1
            raise serial.SerialException(f"could not open port {url}: No such file or directory")
        return self.ports.pop(0)


def test_chunks_reach_the_callback_with_receive_times_and_unplugs_reopen():
    unplug = serial.SerialException("device reports readiness to read but returned no data")
    first = FakePort([b"$GPGGA,1", b"23*00\r\n"], fail_with=unplug)
    second = FakePort([b"\xb5\x62after"], fail_with=OSError(5, "Input/output error"))
    third = FakePort([b"end"])
    opener = Opener([first, second, third], failures=2)
    got: list[tuple[int, bytes]] = []
    ticks = itertools.count(1000)
    opened: list[object] = []
    link = SerialLink(
        "/dev/ttyACM0",
        115200,
        lambda t, d: got.append((t, d)),
        opener=opener,
        clock=lambda: next(ticks),
        on_open=opened.append,
        backoff_initial_s=0.001,
        backoff_max_s=0.004,
    )
    link.start()
    try:
        assert wait_for(lambda: len(got) == 4)
    finally:
        link.stop()
    assert [d for _, d in got] == [b"$GPGGA,1", b"23*00\r\n", b"\xb5\x62after", b"end"]
    assert [t for t, _ in got] == sorted(t for t, _ in got)
    assert link.failed_opens == 2 and link.opens == 3 and link.reconnects == 2
    assert opened == [first, second, third]  # configured on every (re)open
    assert first.closed and second.closed
    assert link.bytes == sum(len(d) for _, d in got) and link.chunks == 4
    assert opener.kwargs[0] == {"baudrate": 115200, "timeout": link.read_timeout_s}
    assert link.state == "stopped" and not link._thread.is_alive()


def test_backoff_doubles_to_its_cap_and_max_attempts_bounds_the_retries():
    opener = Opener([], failures=10**6)
    waits: list[float] = []
    link = SerialLink(
        "/dev/absent",
        9600,
        lambda t, d: None,
        opener=opener,
        backoff_initial_s=0.001,
        backoff_max_s=0.004,
        max_attempts=6,
    )
    real_wait = link._stop.wait

    def recording_wait(timeout=None):
        waits.append(timeout)
        return real_wait(timeout)

    link._stop.wait = recording_wait
    link.run()  # returns by itself: bounded
    assert link.state == "failed" and opener.calls == 6 and link.failed_opens == 6
    assert waits == [0.001, 0.002, 0.004, 0.004, 0.004]
    assert "No such file" in link.last_error


def test_a_failing_callback_is_counted_and_reading_goes_on():
    port = FakePort([b"a", b"b", b"c"])
    seen: list[bytes] = []

    def callback(t, data):
        seen.append(data)
        if data == b"b":
            raise RuntimeError("bug in the consumer")

    link = SerialLink("x", 9600, callback, opener=Opener([port]))
    link.start()
    try:
        assert wait_for(lambda: len(seen) == 3)
    finally:
        link.stop()
    assert seen == [b"a", b"b", b"c"] and link.callback_errors == 1


def test_loop_url_and_write():
    got: list[bytes] = []
    link = SerialLink("loop://", 9600, lambda t, d: got.append(d))
    link.start()
    try:
        assert wait_for(lambda: link.state == "open")
        assert link.write(b"\xb5\x62\x06\x8a") == 4
        assert wait_for(lambda: b"".join(got) == b"\xb5\x62\x06\x8a")
    finally:
        link.stop()
    assert link.write(b"x") == 0  # closed: nothing written, no exception


def test_bad_baud_is_refused():
    with pytest.raises(ValueError, match="baud"):
        SerialLink("/dev/ttyACM0", 0, lambda t, d: None)


def test_a_real_pty_that_appears_late_disappears_and_comes_back(tmp_path):
    link_path = str(tmp_path / "ttyGNSS")
    got = bytearray()
    lock = threading.Lock()

    def on_data(t, data):
        with lock:
            got.extend(data)

    def plug():
        master, slave = os.openpty()
        tty.setraw(slave)
        os.symlink(os.ttyname(slave), link_path)
        return master, slave

    def unplug(fds):
        os.close(fds[0])
        os.close(fds[1])
        os.unlink(link_path)

    link = SerialLink(
        link_path, 115200, on_data, read_timeout_s=0.01, backoff_initial_s=0.01, backoff_max_s=0.05
    )
    link.start()
    try:
        assert wait_for(lambda: link.failed_opens >= 2)  # the device is not there yet
        fds = plug()
        assert wait_for(lambda: link.state == "open")
        os.write(fds[0], b"$GPTXT,first*00\r\n")
        assert wait_for(lambda: b"first" in got)
        unplug(fds)
        assert wait_for(lambda: link.state == "connecting")
        fds = plug()
        assert wait_for(lambda: link.reconnects == 1 and link.state == "open")
        os.write(fds[0], b"$GPTXT,second*00\r\n")
        assert wait_for(lambda: b"second" in got)
        unplug(fds)
    finally:
        link.stop()
    assert bytes(got) == b"$GPTXT,first*00\r\n$GPTXT,second*00\r\n"
