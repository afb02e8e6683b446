"""A pretend GNSS receiver on a pseudo-terminal, for the live serial test.

Usage: python -m tests.gnss.pty_writer SCHEDULE LINK RESULT --baud B --unplug-at S --unplug-for S

SCHEDULE holds the chunks a receiver sent (records of ``<d I`` = the data time
in seconds from the start at which the chunk's last byte left the receiver,
and its length, then the bytes). The writer opens a pty pair, points the
symlink LINK at its slave side (as udev's /dev/serial/by-id links point at a
/dev/ttyACM device) and writes every chunk at the baud rate, 10 bits a byte,
so that its last byte goes out at its scheduled time.

The unplug: at the first chunk due after ``--unplug-at`` seconds the writer
waits for the line to go idle (the receiver's epoch has been sent), closes
both sides of the pty and removes the link, as a USB unplug removes the
device node; the reader's next read fails. After ``--unplug-for`` seconds
minus one, a new pty appears behind the same link (the device re-enumerates),
and the receiver resumes with the first chunk due after ``--unplug-for``
seconds: chunks due while it was unplugged are never sent.

RESULT gets a JSON object: the wall-clock start (ns) that the schedule is
relative to, the indices of the chunks written, and the unplug/replug times.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
import tty

PIECE = 64  # bytes written at a time: the line trickles, the reader reads what has arrived
IDLE_S = 0.25  # line idle before the unplug: the reader has drained the last epoch


def read_schedule(path: str) -> list[tuple[float, bytes]]:
    with open(path, "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos < len(data):
        t, n = struct.unpack_from("<dI", data, pos)
        pos += 12
        out.append((t, data[pos : pos + n]))
        pos += n
    return out


def write_schedule(path: str, rows: list[tuple[float, bytes]]) -> None:
    with open(path, "wb") as f:
        for t, payload in rows:
            f.write(struct.pack("<dI", t, len(payload)))
            f.write(payload)


def plug(link: str) -> tuple[int, int]:
    master, slave = os.openpty()
    tty.setraw(slave)
    tmp = link + ".new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.ttyname(slave), tmp)
    os.replace(tmp, link)
    return master, slave


def unplug(link: str, fds: tuple[int, int]) -> None:
    for fd in fds:
        os.close(fd)
    if os.path.lexists(link):
        os.unlink(link)


def sleep_until(t: float) -> None:
    while True:
        d = t - time.time()
        if d <= 0:
            return
        time.sleep(min(d, 0.05))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("schedule")
    ap.add_argument("link")
    ap.add_argument("result")
    ap.add_argument("--baud", type=int, required=True)
    ap.add_argument("--unplug-at", type=float, required=True)
    ap.add_argument("--unplug-for", type=float, required=True)
    ap.add_argument("--start-delay", type=float, default=1.0)
    args = ap.parse_args(argv)
    schedule = read_schedule(args.schedule)
    byte_s = 10.0 / args.baud
    fds = plug(args.link)
    t0 = time.time() + args.start_delay  # the reader has this long to open the port
    result = {"t0_ns": int(t0 * 1e9), "written": [], "unplugged_ns": None, "replugged_ns": None}
    resume_at = None
    last_end = t0
    for i, (t_rel, payload) in enumerate(schedule):
        if resume_at is None and t_rel >= args.unplug_at:
            sleep_until(last_end + IDLE_S)
            unplug(args.link, fds)
            result["unplugged_ns"] = time.time_ns()
            resume_at = time.time() + args.unplug_for
            sleep_until(resume_at - 1.0)
            fds = plug(args.link)
            result["replugged_ns"] = time.time_ns()
        start = t0 + t_rel - len(payload) * byte_s
        if resume_at is not None and start < resume_at:
            continue  # sent while unplugged: lost
        for k in range(0, len(payload), PIECE):
            piece = payload[k : k + PIECE]
            sleep_until(start + (k + len(piece)) * byte_s)
            os.write(fds[0], piece)
        last_end = start + len(payload) * byte_s
        result["written"].append(i)
    sleep_until(last_end + 1.0)  # let the reader drain before the device goes away
    unplug(args.link, fds)
    with open(args.result, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
