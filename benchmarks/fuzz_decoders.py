"""Coverage-guided fuzzing of every decoder and the configuration loader (atheris / libFuzzer).

Usage:
  python benchmarks/fuzz_decoders.py [--runs 1000000] [--only NAME ...]   # all targets, a table at the end
  python benchmarks/fuzz_decoders.py --target NAME -runs=N ...            # one target (libFuzzer flags pass through)

Each target runs in its own process, seeded with real payloads from the
interoperability sample recording and the vendored GNSS logs. A crash is any
exception escaping a decoder (decoders must turn bad input into Rejected
records), or a result that is not a list of records; libFuzzer stops on the
first and writes the input to crash-*. The table gives, per target: inputs
run, crashes, the decoders' own internal-error rejections (caught parser
bugs, not crashes, but worth reading), and libFuzzer's peak RSS at the start
and end of the run (flat memory means no leak across a million inputs).
atheris is a benchmark-only dependency (pip install atheris).

``--max-len`` bounds the inputs libFuzzer makes (default 8192 bytes). The
stream targets parse every frame an input holds: ``gnss_stream`` runs about
80 inputs/s at 4 kB and 1,600/s at 512 bytes, with nearly the same coverage
(445 and 433 edges after the first thousands), so its million-input run uses
``--max-len 512``; a 512-byte input still holds several NMEA sentences and
UBX frames, fed in fuzzer-chosen chunks.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "tests" / "data" / "shared" / "recording-sample"
TARGETS = [
    "radar",
    "rf_detections",
    "rf_spectrum",
    "switchgear",
    "gnss_stream",
    "power_serial",
    "power_mqtt",
    "router",
    "config",
]


def seeds(target: str) -> list[bytes]:
    import polars as pl

    df = pl.read_parquet(SAMPLE / "feeds" / "seg-0000.parquet")

    def channel(pattern: str, n: int = 20) -> list[bytes]:
        rows = df.filter(pl.col("channel").str.contains(pattern))["payload"].to_list()
        return [bytes(r) for r in rows[:n]]

    if target == "radar":
        return channel("radar-1/plots")
    if target == "rf_detections":
        return channel("rf-1/detections")
    if target == "rf_spectrum":
        return channel("rf-1/spectrum", 5)
    if target == "switchgear":
        return [
            b'{"sensor": "ats-1", "t": 1767225601.0, "event": "ats_transfer", "feed": "A", "detail": {}}'
        ]
    if target == "gnss_stream":
        logs = sorted((ROOT / "tests" / "data" / "shared" / "gnss").rglob("*.log"))
        return channel("^gnss-1$", 30) + [p.read_bytes()[:4096] for p in logs]
    if target in ("power_serial", "power_mqtt"):
        raw = b"".join(channel("^pq-a$", 10))
        if target == "power_serial":
            return [raw[i : i + 2048] for i in range(0, len(raw), 2048)][:10]
        from cobs import cobs

        return [cobs.decode(seg) for seg in raw.split(b"\x00")[1:-1] if seg][:10]
    if target == "router":
        return [b"rampart/dc-east-1/radar/radar-1/plots\n" + p for p in channel("radar-1/plots", 5)]
    if target == "config":
        return [
            (SAMPLE / "site.toml").read_bytes(),
            (ROOT / "deploy" / "site.example.toml").read_bytes(),
        ]
    raise ValueError(target)


def make_target(target: str):
    """The function libFuzzer calls with each input."""
    from drivers.gnss_stream import GnssStreamDecoder
    from drivers.json_feeds import (
        RadarPlotsDecoder,
        RfDetectionsDecoder,
        RfSpectrumDecoder,
        SwitchgearEventsDecoder,
    )
    from drivers.power_stream import PowerMqttDecoder, PowerSerialDecoder
    from drivers.router import Router
    from fusion.config import ConfigError, Sensor, load_config, parse_config
    from fusion.records import Rejected

    site = load_config(SAMPLE / "site.toml")
    pq = Sensor("pq-a", "power", "serial", port="/dev/null", board=1)
    internal = {"n": 0}

    def check(out) -> None:
        if not isinstance(out, list):
            raise TypeError(f"decoder returned {type(out).__name__}, not a list")
        for r in out:
            if isinstance(r, Rejected) and r.reason in ("internal_error", "decoder_error"):
                internal["n"] += 1

    stateless = {
        "radar": RadarPlotsDecoder("radar-1", "fuzz"),
        "rf_detections": RfDetectionsDecoder("rf-1", "fuzz"),
        "rf_spectrum": RfSpectrumDecoder("rf-1", "fuzz"),
        "switchgear": SwitchgearEventsDecoder("ats-1", "fuzz"),
        "power_mqtt": PowerMqttDecoder(pq, "fuzz"),
    }
    if target in stateless:
        dec = stateless[target]

        def one(data: bytes) -> None:
            check(dec.feed(data, 1))

        return one, internal
    if target in ("gnss_stream", "power_serial"):
        import atheris

        def one(data: bytes) -> None:
            # A fresh decoder per input (state across inputs would make crashes
            # unreproducible), fed in fuzzer-chosen chunks, then flushed.
            fdp = atheris.FuzzedDataProvider(data)
            dec = (
                GnssStreamDecoder("gnss-1", "fuzz")
                if target == "gnss_stream"
                else PowerSerialDecoder(pq, "fuzz")
            )
            while fdp.remaining_bytes():
                check(dec.feed(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 512)), 1))
            check(dec.flush(2))

        return one, internal
    if target == "router":
        router = Router(site)

        def one(data: bytes) -> None:
            head, _, payload = data.partition(b"\n")
            topic = head.decode("utf-8", "replace")
            check(router.decode(1, "mqtt" if len(head) % 2 else "serial", topic, payload))

        return one, internal
    if target == "config":

        def one(data: bytes) -> None:
            # Refusing a bad file with its problems named is the contract; anything else escapes.
            with contextlib.suppress(ConfigError):
                parse_config(data.decode("utf-8", "replace"), source="fuzz")

        return one, internal
    raise ValueError(target)


def run_one(target: str, libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports():
        import drivers.gnss_stream
        import drivers.json_feeds
        import drivers.power_frame
        import drivers.power_stream
        import drivers.router  # noqa: F401
        import fusion.config  # noqa: F401
    one, internal = make_target(target)
    import atexit

    atexit.register(
        lambda: print(f"internal_error rejections: {internal['n']}", file=sys.stderr, flush=True)
    )
    atheris.Setup([sys.argv[0], *libfuzzer_args], one)
    atheris.Fuzz()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", choices=TARGETS)
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--only", nargs="*", choices=TARGETS)
    ap.add_argument(
        "--max-len", type=int, default=8192, help="longest input libFuzzer makes (bytes)"
    )
    args, rest = ap.parse_known_args()
    if args.target:
        run_one(args.target, rest)
        return
    rows = []
    for target in args.only or TARGETS:
        with tempfile.TemporaryDirectory() as corpus:
            for i, seed in enumerate(seeds(target)):
                Path(corpus, f"seed-{i}").write_bytes(seed)
            cmd = [
                sys.executable,
                __file__,
                "--target",
                target,
                f"-runs={args.runs}",
                "-rss_limit_mb=4096",
                f"-max_len={args.max_len}",
                "-print_final_stats=1",
                corpus,
            ]
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                cwd=tempfile.gettempdir(),
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )
        log = proc.stderr
        done = re.findall(r"Done (\d+) runs", log)
        rss = [int(x) for x in re.findall(r"rss: (\d+)Mb", log)]
        internal = re.findall(r"internal_error rejections: (\d+)", log)
        crashed = proc.returncode != 0 or "Traceback" in log or "ERROR: libFuzzer" in log
        rows.append(
            (
                target,
                int(done[-1]) if done else 0,
                1 if crashed else 0,
                int(internal[-1]) if internal else 0,
                rss[0] if rss else 0,
                rss[-1] if rss else 0,
            )
        )
        if crashed:
            print(f"--- {target} crashed:\n{log[-3000:]}", file=sys.stderr)
        r = rows[-1]
        print(
            f"{target:<15} {r[1]:>10} inputs, {r[2]} crashes, {r[3]} internal errors, rss {r[4]} -> {r[5]} MB",
            file=sys.stderr,
            flush=True,
        )
    print(
        f"\n{'target':<15} {'inputs':>10} {'crashes':>8} {'internal':>9} {'rss start':>10} {'rss end':>8}"
    )
    for target, n, crashes, internal, r0, r1 in rows:
        print(f"{target:<15} {n:>10} {crashes:>8} {internal:>9} {r0:>8}MB {r1:>6}MB")
    if any(r[2] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
