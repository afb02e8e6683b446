"""Coverage-guided fuzzing of every decoder and the configuration loader (atheris / libFuzzer).

Usage:
  python benchmarks/fuzz_decoders.py [--runs 1000000] [--only NAME ...]   # all targets, a table at the end
  python benchmarks/fuzz_decoders.py --target NAME -runs=N ...            # one target (libFuzzer flags pass through)
  python benchmarks/fuzz_decoders.py --structured [--runs N] [--only ...] # structure-aware JSON inputs

Each target runs in its own process, seeded with real payloads from the
interoperability sample recording and the vendored GNSS logs. A crash is any
exception escaping a decoder (decoders must turn bad input into Rejected
records), or a result that is not a list of records; libFuzzer stops on the
first and writes the input to crash-*. The table gives, per target: inputs
run, crashes, the decoders' own internal-error rejections (caught parser
bugs, not crashes, but worth reading), and libFuzzer's peak RSS at the start
and end of the run (flat memory means no leak across a million inputs).
atheris is a benchmark-only dependency (pip install atheris).

``--max-seconds`` stops each target after that long and reports the inputs
it ran (libFuzzer's final stats). ``--max-len`` bounds the inputs libFuzzer makes (default 8192 bytes). The
stream targets parse every frame an input holds: ``gnss_stream`` runs about
80 inputs/s at 4 kB and 1,600/s at 512 bytes, with nearly the same coverage
(445 and 433 edges after the first thousands), so its million-input run uses
``--max-len 512``; a 512-byte input still holds several NMEA sentences and
UBX frames, fed in fuzzer-chosen chunks.

``--structured`` (the JSON targets and ``router``): instead of feeding the
fuzzer's bytes as the payload, it reads them as choices
(``atheris.FuzzedDataProvider``) and builds a JSON text shaped like the
target's message: each field kept, dropped, given a value of the wrong type,
or duplicated; extra unknown fields; and values drawn from what breaks
parsers: nesting up to 200,000 deep (balanced or not), arrays of up to 50,000
items, strings up to 100,000 characters, odd numbers (``1e308``, ``1e309``,
``-0``, ``NaN``, ``Infinity``, ``1e-400``, 30-digit and 2**64 integers,
``01``, ``.5``), unicode escapes (lone surrogates, ``\u0000``), invalid
UTF-8. Decoders must turn every one into records; ``too_deep`` and
``over_limit`` rejections are counted in the table's ``limits`` column.
"""

from __future__ import annotations

import argparse
import contextlib
import json
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


STRUCTURED = ["radar", "rf_detections", "rf_spectrum", "switchgear", "router"]
TEMPLATES = {
    "radar": {
        "sensor": "radar-1",
        "t": 1767225601.0,
        "scan": 1,
        "plots": [{"range_m": 800.0, "az_deg": 30.0, "el_deg": 2.0, "vr_mps": -5.0}],
    },
    "rf_detections": {
        "sensor": "rf-1",
        "t": 1767225601.0,
        "detections": [{"freq_hz": 2.44e9, "rssi_dbm": -60.0, "protocol": "dji", "uas_id": "x"}],
    },
    "rf_spectrum": {
        "sensor": "rf-1",
        "t": 1767225601.0,
        "f_start_hz": 2.4e9,
        "bin_hz": 1e6,
        "power_dbm": [-90.0, -80.0],
    },
    "switchgear": {
        "sensor": "ats-1",
        "t": 1767225601.0,
        "event": "ats_transfer",
        "feed": "A",
        "detail": {"to": "B"},
    },
}
ROUTER_TOPICS = [
    ("mqtt", "rampart/dc-east-1/radar/radar-1/plots", "radar"),
    ("mqtt", "rampart/dc-east-1/rf/rf-1/detections", "rf_detections"),
    ("mqtt", "rampart/dc-east-1/rf/rf-1/spectrum", "rf_spectrum"),
    ("mqtt", "rampart/dc-east-1/switchgear/ats-1/events", "switchgear"),
    ("mqtt", "rampart/dc-east-1/radar/radar-9/plots", "radar"),
    ("mqtt", "rampart/dc-east-1/radar/radar-1/status", "radar"),
    ("serial", "gnss-1", "radar"),
    ("serial", "ttyUSB9", "radar"),
]
ODD_NUMBERS = [
    "1e308",
    "-1e308",
    "1e309",
    "-1e309",
    "-0",
    "-0.0",
    "0e0",
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "1e-400",
    "4.9e-324",
    "123456789012345678901234567890",
    "18446744073709551616",
    "-9223372036854775809",
    "01",
    ".5",
    "1.",
    "+1",
    "1e",
    "0x10",
]
ODD_STRINGS = [
    '""',
    '"\\u0000"',
    '"\\ud800"',
    '"\\udc00\\ud800"',
    '"\\u00e9"',
    '"\u00e9"',
    '"\\""',
    '"\\\\"',
    '"\\x41"',
    '"\\u12"',
    '"radar-1"',
    '"rf-1"',
    '"ats-1"',
]


class JsonBuilder:
    """Builds one JSON-like text from a fuzzer's bytes (atheris.FuzzedDataProvider)."""

    def __init__(self, fdp, budget: int = 400_000):
        self.fdp = fdp
        self.budget = budget  # characters; bounds one input's cost

    def pick(self, options):
        return options[self.fdp.ConsumeIntInRange(0, len(options) - 1)]

    def big(self, most: int) -> int:
        """Usually small, sometimes huge: a count up to ``most``."""
        n = self.fdp.ConsumeIntInRange(0, 3)
        hi = (4, 64, 4096, most)[n]
        return min(self.fdp.ConsumeIntInRange(0, hi), max(self.budget, 0))

    def value(self, level: int = 0) -> str:
        fdp = self.fdp
        kind = fdp.ConsumeIntInRange(0, 12) if level < 6 else fdp.ConsumeIntInRange(0, 6)
        if kind == 0:
            return self.pick(["null", "true", "false"])
        if kind == 1:
            return self.pick(ODD_NUMBERS)
        if kind == 2:
            return repr(fdp.ConsumeFloat()).replace("inf", "Infinity").replace("nan", "NaN")
        if kind == 3:
            return str(fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 16)))
        if kind == 4:
            return self.pick(ODD_STRINGS)
        if kind == 5:
            n = self.big(100_000)
            self.budget -= n
            return '"' + self.pick(["a", "\\u0041", "\\\\", "\u00e9", "["]) * n + '"'
        if kind == 6:
            raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 16))
            return '"' + raw.decode("latin-1").replace('"', "") + '"'
        if kind == 7:
            n = self.big(200_000)
            self.budget -= 2 * n
            inner = self.value(level + 1) if fdp.ConsumeBool() else ""
            opener, closer = self.pick([("[", "]"), ('{"a":', "}"), ("[", "}"), ("[", "")])
            return opener * n + inner + closer * n
        if kind in (8, 9):
            n = self.big(50_000)
            item = self.value(level + 1)
            self.budget -= n * (len(item) + 1)
            if self.budget < 0:
                n = 1
            return "[" + ",".join([item] * n) + "]"
        keys = [self.pick(["a", "sensor", "t", "x", "", "\\u0000", "plots"]) for _ in range(3)]
        return "{" + ",".join(f'"{k}":{self.value(level + 1)}' for k in keys) + "}"

    def message(self, template: dict) -> bytes:
        """The template's fields, each kept, dropped, wrong-typed or duplicated, plus extras."""
        fdp = self.fdp
        parts = []
        for key, good in template.items():
            action = fdp.ConsumeIntInRange(0, 5)
            if action == 1:
                continue  # missing
            if isinstance(good, list) and action == 0:
                item = json.dumps(good[0]) if good else "1"
                n = self.big(50_000)
                self.budget -= n * len(item)
                items = [self.item(good[0]) if fdp.ConsumeBool() else item for _ in range(3)]
                body = ",".join(items + [item] * max(min(n, 50_000) if self.budget > 0 else 0, 0))
                parts.append(f'"{key}":[{body}]')
                continue
            if action in (0, 5):
                parts.append(f'"{key}":{json.dumps(good)}')
            else:
                parts.append(f'"{key}":{self.value()}')
            if action == 4:
                parts.append(f'"{key}":{self.value()}')  # duplicated key
        for _ in range(fdp.ConsumeIntInRange(0, 2)):
            parts.append(f'"{self.pick(["extra", "x", "detail"])}":{self.value()}')
        text = "{" + ",".join(parts) + "}"
        if fdp.ConsumeIntInRange(0, 15) == 0:
            cut = fdp.ConsumeIntInRange(0, len(text))
            text = text[:cut]  # truncated
        data = text.encode("utf-8", "surrogatepass")
        if fdp.ConsumeIntInRange(0, 15) == 0:
            data += fdp.ConsumeBytes(8)  # trailing garbage, maybe invalid UTF-8
        return data

    def item(self, good) -> str:
        """One array element (a plot, a detection) with some fields replaced."""
        if not isinstance(good, dict):
            return self.value(2)
        fields = [
            f'"{k}":{self.value(3) if self.fdp.ConsumeIntInRange(0, 2) == 0 else repr(v)}'
            for k, v in good.items()
            if self.fdp.ConsumeIntInRange(0, 5)
        ]
        return "{" + ",".join(fields).replace("'", '"') + "}"


def make_target(target: str, structured: bool = False):
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
    internal = {"n": 0, "limits": 0}

    def check(out) -> None:
        if not isinstance(out, list):
            raise TypeError(f"decoder returned {type(out).__name__}, not a list")
        for r in out:
            if isinstance(r, Rejected) and r.reason in ("internal_error", "decoder_error"):
                internal["n"] += 1
            if isinstance(r, Rejected) and r.reason in ("too_deep", "over_limit"):
                internal["limits"] += 1

    stateless = {
        "radar": RadarPlotsDecoder("radar-1", "fuzz"),
        "rf_detections": RfDetectionsDecoder("rf-1", "fuzz"),
        "rf_spectrum": RfSpectrumDecoder("rf-1", "fuzz"),
        "switchgear": SwitchgearEventsDecoder("ats-1", "fuzz"),
        "power_mqtt": PowerMqttDecoder(pq, "fuzz"),
    }
    if structured:
        import atheris

        if target not in STRUCTURED:
            raise ValueError(f"--structured applies to {', '.join(STRUCTURED)}, not {target}")
        router = Router(site) if target == "router" else None
        dec = stateless.get(target)

        def one(data: bytes) -> None:
            fdp = atheris.FuzzedDataProvider(data)
            builder = JsonBuilder(fdp)
            if router is None:
                check(dec.feed(builder.message(TEMPLATES[target]), 1))
                return
            transport, channel, shape = builder.pick(ROUTER_TOPICS)
            check(router.decode(1, transport, channel, builder.message(TEMPLATES[shape])))

        return one, internal
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


def run_one(target: str, libfuzzer_args: list[str], structured: bool = False) -> None:
    import atheris

    # Numba kernels cannot be instrumented (atheris rewrites their bytecode): load them first.
    import drivers.limits

    drivers.limits.warm_up()
    with atheris.instrument_imports():
        import drivers.gnss_stream
        import drivers.json_feeds
        import drivers.power_frame
        import drivers.power_stream
        import drivers.router
        import fusion.config  # noqa: F401
    target_one, internal = make_target(target, structured)
    calls = {"n": 0}

    def report() -> None:
        print(
            f"internal_error rejections: {internal['n']}\nlimit rejections: {internal['limits']}",
            file=sys.stderr,
            flush=True,
        )

    def one(data: bytes) -> None:
        # libFuzzer ends the process with exit() at -runs, past Python's atexit: report as we go.
        target_one(data)
        calls["n"] += 1
        if calls["n"] % 1000 == 0:
            report()

    import atexit

    atexit.register(report)
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
    ap.add_argument(
        "--max-seconds",
        type=int,
        default=0,
        help="stop each target after this long (libFuzzer -max_total_time); 0: no limit",
    )
    ap.add_argument(
        "--structured",
        action="store_true",
        help="build structure-aware JSON from the fuzzer's bytes (JSON targets and router)",
    )
    args, rest = ap.parse_known_args()
    if args.target:
        run_one(args.target, rest, args.structured)
        return
    rows = []
    for target in args.only or (STRUCTURED if args.structured else TARGETS):
        with tempfile.TemporaryDirectory() as corpus:
            for i, seed in enumerate(seeds(target)):
                Path(corpus, f"seed-{i}").write_bytes(seed)
            cmd = [
                sys.executable,
                __file__,
                "--target",
                target,
                *(["--structured"] if args.structured else []),
                f"-runs={args.runs}",
                *([f"-max_total_time={args.max_seconds}"] if args.max_seconds else []),
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
        # "Done N runs" on completion; a run ended by --max-seconds reports its count
        # only in the final stats.
        done = re.findall(r"Done (\d+) runs", log) or re.findall(
            r"stat::number_of_executed_units: (\d+)", log
        )
        rss = [int(x) for x in re.findall(r"rss: (\d+)Mb", log)]
        internal = re.findall(r"internal_error rejections: (\d+)", log)
        limited = re.findall(r"limit rejections: (\d+)", log)
        crashed = proc.returncode != 0 or "Traceback" in log or "ERROR: libFuzzer" in log
        rows.append(
            (
                target,
                int(done[-1]) if done else 0,
                1 if crashed else 0,
                int(internal[-1]) if internal else 0,
                rss[0] if rss else 0,
                rss[-1] if rss else 0,
                int(limited[-1]) if limited else 0,
            )
        )
        if crashed:
            print(f"--- {target} crashed:\n{log[-3000:]}", file=sys.stderr)
        r = rows[-1]
        print(
            f"{target:<15} {r[1]:>10} inputs, {r[2]} crashes, {r[3]} internal errors,"
            f" {r[6]} limit rejections, rss {r[4]} -> {r[5]} MB",
            file=sys.stderr,
            flush=True,
        )
    print(
        f"\n{'target':<15} {'inputs':>10} {'crashes':>8} {'internal':>9} {'limits':>8}"
        f" {'rss start':>10} {'rss end':>8}"
    )
    for target, n, crashes, internal, r0, r1, limited in rows:
        print(f"{target:<15} {n:>10} {crashes:>8} {internal:>9} {limited:>8} {r0:>8}MB {r1:>6}MB")
    if any(r[2] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
