"""The ``rampart`` command line (contract §6). ``python -m fusion`` is the same program.

Exit status: 0 success; 1 a check failed (check-config); 2 bad arguments or
unreadable input, with one line on stderr saying what and where.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from fusion import __version__

# Contract commands whose issues have not landed yet: they say so instead of failing obscurely.
NOT_YET: dict[str, int] = {}
TIME_SOURCES = {"device": "receiver's own time messages", "baud": "configured baud rate"}


class UsageError(Exception):
    """Bad arguments or unreadable input: exit 2 with this message."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in NOT_YET:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO if args.log_info else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"rampart: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rampart", description="Rampart: sensor fusion that protects a datacenter site."
    )
    p.add_argument("--version", action="version", version=f"rampart {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    p.add_argument(
        "--log-info",
        action="store_true",
        help="info logging on stderr (rejections are always logged, as warnings)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("replay", help="run a recording through the full pipeline")
    r.add_argument("recording", type=Path)
    pace = r.add_mutually_exclusive_group()
    pace.add_argument("--fast", action="store_true", help="as fast as possible")
    pace.add_argument("--speed", type=float, help="pace at X times real time (default 1)")
    r.add_argument("--alerts-out", type=Path, help="write alerts as JSON lines")
    r.add_argument("--tracks-out", type=Path, help="write confirmed tracks as Parquet")
    r.add_argument("--config", type=Path, help="apply a service configuration's detector settings")
    r.add_argument(
        "--deliver", action="store_true", help="with --config: also send alerts to its sinks"
    )
    r.add_argument(
        "--report", type=Path, metavar="DIR", help="write an HTML report with plots to DIR"
    )
    r.add_argument("--quiet", action="store_true", help="do not print each alert")
    r.set_defaults(func=_cmd_replay)

    s = sub.add_parser("simulate", help="write a synthetic recording with truth")
    s.add_argument("scenario", nargs="?", help="scenario name (--list shows them)")
    s.add_argument("--out", type=Path)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--duration", type=float, help="seconds (default: the scenario's own)")
    s.add_argument("--list", action="store_true", help="list scenarios and exit")
    s.add_argument(
        "--trajectories",
        action="append",
        metavar="FILE[:key=value...][,FILE...]",
        help="fly real tracks past the site (as=drone|bird|glider|aircraft|helicopter, "
        "place=pass|inbound|keep, ...; or a .toml spec; see docs/simulation.md)",
    )
    s.set_defaults(func=_cmd_simulate)

    sc = sub.add_parser("score", help="score alerts against a recording's truth (JSON metrics)")
    sc.add_argument("recording", type=Path)
    sc.add_argument("alerts", type=Path)
    sc.add_argument(
        "--tracks", type=Path, help="tracks Parquet from replay --tracks-out (adds GOSPA)"
    )
    sc.add_argument(
        "--summary", action="store_true", help="a table for people instead of the JSON metrics"
    )
    sc.set_defaults(func=_cmd_score)

    im = sub.add_parser("import", help="turn a raw capture into a recording")
    isub = im.add_subparsers(dest="format", required=True, metavar="FORMAT")
    for name, what in (
        ("serial", "a raw serial capture (e.g. a GNSS receiver log)"),
        ("comtrade", "a COMTRADE record (.cfg)"),
    ):
        ip = isub.add_parser(name, help=what)
        ip.add_argument("input", type=Path)
        ip.add_argument("--sensor", required=True)
        ip.add_argument("--site", type=Path, required=True)
        ip.add_argument("--out", type=Path, required=True)
        ip.set_defaults(func=_cmd_import)

    run = sub.add_parser("run", help="the edge-box service: live sensors in, alerts out")
    run.add_argument("--config", type=Path, required=True)
    run.add_argument(
        "--record", type=Path, metavar="DIR", help="also record every received message to DIR"
    )
    run.add_argument("--max-seconds", type=float, help="stop after this long (tests, trials)")
    run.add_argument("--log-format", choices=("json", "text"), default="json")
    _trust_args(run)
    run.set_defaults(func=_cmd_run)

    rec = sub.add_parser("record", help="record live feeds into a recording (no detection)")
    rec.add_argument("--config", type=Path, required=True)
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--max-seconds", type=float, help="stop after this long")
    rec.add_argument("--log-format", choices=("json", "text"), default="json")
    rec.set_defaults(func=_cmd_record)

    cc = sub.add_parser("check-config", help="validate a configuration")
    cc.add_argument("config", type=Path)
    cc.set_defaults(func=_cmd_check_config)

    kg = sub.add_parser(
        "keygen", help="write an Ed25519 signing key (KEY) and its public half (KEY.pub)"
    )
    kg.add_argument("--out", type=Path, required=True)
    kg.set_defaults(func=_cmd_keygen)

    cf = sub.add_parser("config", help="sign or verify a configuration (two-person rule)")
    cfsub = cf.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    cs = cfsub.add_parser("sign", help="add KEY's signature over CONFIG to CONFIG.sig")
    cs.add_argument("config", type=Path)
    cs.add_argument("--key", type=Path, required=True)
    cs.set_defaults(func=_cmd_config_sign)
    cv = cfsub.add_parser(
        "verify", help="exit 0 only with >= N valid signatures by distinct trusted keys"
    )
    cv.add_argument("config", type=Path)
    cv.add_argument("--keyring", type=Path, required=True)
    cv.add_argument("--min", type=int, default=2)
    cv.add_argument(
        "--state",
        type=Path,
        metavar="DIR",
        help="the service's state directory: count only the keys it trusts (its pin, "
        "endorsements) and check [config] serial against its last accepted configuration",
    )
    cv.set_defaults(func=_cmd_config_verify)

    kr = sub.add_parser("keyring", help="endorse keys, show which keys the service trusts")
    krsub = kr.add_subparsers(dest="keyring_command", required=True, metavar="ACTION")
    ke = krsub.add_parser("endorse", help="add KEY's endorsement of PUBFILE to PUBFILE.sig")
    ke.add_argument("pubfile", type=Path)
    ke.add_argument("--key", type=Path, required=True)
    ke.set_defaults(func=_cmd_keyring_endorse)
    ks = krsub.add_parser("status", help="list keys: trusted (pinned/endorsed) or ignored and why")
    ks.add_argument("--keyring", type=Path, required=True)
    ks.add_argument("--state", type=Path, metavar="DIR", help="apply the service's pin")
    ks.add_argument("--min", type=int, default=2, help="endorsements a new key needs")
    ks.set_defaults(func=_cmd_keyring_status)

    au = sub.add_parser("audit", help="check the hash-chained audit log")
    ausub = au.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    av = ausub.add_parser("verify", help="exit 0 when intact, else 1 naming the first bad record")
    av.add_argument("file", type=Path, nargs="?", help="default: {state.dir}/audit.log")
    av.add_argument(
        "--config", type=Path, help="service configuration whose [state] dir holds the log"
    )
    av.add_argument(
        "--head", help="SEQ:HASH last published to the SOC: the log must still reach it"
    )
    av.set_defaults(func=_cmd_audit_verify)
    aw = ausub.add_parser(
        "watch",
        help="SOC side: follow published audit heads; report missing, repeated, rewound or "
        "rewritten ones (one JSON line each)",
    )
    aw.add_argument("--mqtt", metavar="HOST:PORT", help="subscribe to the alerts on this broker")
    aw.add_argument(
        "--topic", default="rampart/+/alerts", help="with --mqtt (default rampart/+/alerts)"
    )
    aw.add_argument("--tls", action="store_true", help="with --mqtt: TLS (--ca-file ...)")
    aw.add_argument("--ca-file", type=Path)
    aw.add_argument("--cert-file", type=Path)
    aw.add_argument("--key-file", type=Path)
    aw.add_argument(
        "--input",
        metavar="FILE",
        help="JSON alert lines or syslog lines carrying CEF (e.g. rsyslog's file); - for stdin",
    )
    aw.add_argument("--follow", action="store_true", help="with --input: keep reading (tail -f)")
    aw.add_argument("--state", type=Path, help="JSON file keeping what was seen across restarts")
    aw.add_argument(
        "--max-gap-s",
        type=float,
        default=30.0,
        help="report a site whose heads stop for longer (default 30: 3 x head_every_s)",
    )
    aw.add_argument("--max-seconds", type=float, help="stop after this long (tests, trials)")
    aw.set_defaults(func=_cmd_audit_watch)

    for name, issue in NOT_YET.items():
        np_ = sub.add_parser(name, help=f"(not in this release: issue #{issue})")
        np_.set_defaults(func=lambda a, n=name, i=issue: _not_yet(n, i))
    return p


def _not_yet(name: str, issue: int) -> int:
    print(f"rampart {name}: not in this release yet (tracked as issue #{issue})", file=sys.stderr)
    return 2


def _load_site(path: Path):
    from fusion.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise UsageError(f"{exc.source}: " + "; ".join(exc.problems)) from exc


def _trust_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--keyring",
        type=Path,
        default=Path("/etc/rampart/keyring"),
        help="trusted public keys (*.pub); default /etc/rampart/keyring",
    )
    p.add_argument(
        "--min-signatures",
        type=int,
        default=2,
        help="distinct trusted signatures the configuration needs (default 2)",
    )
    p.add_argument(
        "--trust-state",
        type=Path,
        default=Path("/var/lib/rampart"),
        metavar="DIR",
        help="where the pinned keys and the last accepted configuration are kept; "
        "not taken from the configuration, so an edited [state] dir cannot reset them "
        "(default /var/lib/rampart)",
    )
    p.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="development only: accept an unsigned configuration",
    )


def _trust_policy(args):
    from fusion.cli.service import TrustPolicy

    if getattr(args, "allow_unsigned", True):
        logging.getLogger("rampart").warning(
            "running with an UNSIGNED configuration (--allow-unsigned): development only"
        )
        return None
    if not args.keyring.is_dir():
        raise UsageError(
            f"{args.keyring}: no keyring; give --keyring DIR (trusted *.pub keys) or, for development, --allow-unsigned"
        )
    if args.min_signatures < 1:
        raise UsageError(f"--min-signatures must be at least 1, not {args.min_signatures}")
    return TrustPolicy(args.keyring, args.min_signatures, state_dir=args.trust_state)


def _service(args, record_dir: Path | None, process: bool):
    from fusion.cli.service import JsonLogFormatter, Service
    from fusion.config import ConfigError

    if args.log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLogFormatter())
        logging.getLogger().setLevel(logging.INFO)
    if not args.config.is_file():
        raise UsageError(f"{args.config}: cannot read: no such file")
    trust = _trust_policy(args) if process else None
    if trust is None:
        service_cfg = _load_site(args.config)
        sinks = _build_sinks(service_cfg, args.config.parent) if process else []
    else:
        # Built from the configuration the service accepts (the file may be refused and
        # the last accepted one run instead): an unsigned file never chooses the sinks.
        def sinks(site):
            return _build_sinks(site, args.config.parent)

    try:
        service = Service(
            args.config, sinks=sinks, record_dir=record_dir, process=process, trust=trust
        )
    except ConfigError as exc:
        for problem in exc.problems:
            logging.getLogger("rampart").error("%s: %s", exc.source, problem)
        why = exc.problems[-1] if exc.problems else "invalid"
        print(f"rampart: {exc.source}: configuration refused; not starting: {why}", file=sys.stderr)
        return 1
    except UsageError:
        raise
    except (OSError, ValueError) as exc:
        raise UsageError(f"{args.config}: cannot start: {exc}") from exc
    except Exception as exc:  # one line, not a traceback (which goes to the debug log)
        logging.getLogger("rampart").debug("start-up failed", exc_info=True)
        print(f"rampart: {args.config}: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    service.install_signal_handlers()
    return service.run(max_seconds=args.max_seconds)


def _cmd_run(args) -> int:
    return _service(args, args.record, process=True)


def _cmd_record(args) -> int:
    return _service(args, args.out, process=False)


def _cmd_keygen(args) -> int:
    from drivers.config_trust import keygen

    if args.out.exists():
        raise UsageError(f"{args.out}: exists; refusing to overwrite a key")
    try:
        kid = keygen(args.out)
    except OSError as exc:
        raise UsageError(f"{args.out}: {exc.strerror or exc}") from exc
    print(f"wrote {args.out} (private, keep it secret) and {args.out}.pub (key id {kid})")
    return 0


def _cmd_config_sign(args) -> int:
    from drivers.config_trust import TrustError, sig_path, sign

    if not args.config.is_file():
        raise UsageError(f"{args.config}: no such file")
    try:
        kid = sign(args.config, args.key)
    except TrustError as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        raise UsageError(f"{exc.filename or args.config}: {exc.strerror or exc}") from exc
    print(f"signed {args.config} with key {kid} -> {sig_path(args.config)}")
    return 0


def _keyring_view(args):
    """The keyring as ``--keyring`` and ``--state`` give it (exit 2 when unreadable)."""
    from drivers.keyring import load_view, pin_path

    if args.min < 1:
        raise UsageError(f"--min must be at least 1, not {args.min}")
    if not args.keyring.is_dir():
        raise UsageError(f"{args.keyring}: no such keyring directory")
    if args.state is not None and not args.state.is_dir():
        raise UsageError(f"{args.state}: no such state directory")
    view = load_view(args.keyring, args.state, args.min)
    if args.state is None:
        note = "no --state: every valid key in the keyring counts (the service counts only keys it has pinned or that are endorsed)"
    elif view.first_pin:
        note = f"no pin {pin_path(args.state)} yet: every valid key counts, as at the service's first start"
    else:
        note = ""
    return view, note


def _cmd_config_verify(args) -> int:
    from drivers.config_trust import read_signed, verify_bytes

    view, note = _keyring_view(args)
    try:
        data, sig = read_signed(args.config)
    except OSError as exc:
        raise UsageError(f"{exc.filename or args.config}: {exc.strerror or exc}") from exc
    verdict = verify_bytes(data, sig, view.trusted, args.min, source=str(args.config))
    if note:
        print(f"{args.keyring}: note: {note}")
    for ignored in view.ignored:
        print(f"{args.keyring}: ignored {ignored.path}: {ignored.reason}")
    problems = list(verdict.problems)
    if args.state is not None:
        problems.extend(_rollback_problems(data, args.state))
    for problem in problems:
        print(f"{args.config}: {problem}")
    if verdict.ok and len(problems) == len(verdict.problems):
        print(
            f"{args.config}: ok, signed by {len(verdict.valid_keys)} trusted keys ({', '.join(verdict.valid_keys)}); sha256 {verdict.sha256}"
        )
        return 0
    return 1


def _rollback_problems(data: bytes, state: Path) -> list[str]:
    """What the service would say about ``[config] serial`` against its last accepted file."""
    from drivers.config_trust import config_serial

    try:
        last = (state / "last-accepted.toml").read_bytes()
    except OSError:
        return []
    if last == data:
        return []
    new, old = config_serial(data), config_serial(last)
    if new is None or old is None or new > old:
        return []
    return [f"config.serial {new} is not above the last accepted serial {old} (rollback)"]


def _cmd_keyring_endorse(args) -> int:
    from drivers.config_trust import TrustError
    from drivers.keyring import endorse

    if not args.pubfile.is_file():
        raise UsageError(f"{args.pubfile}: no such file")
    try:
        kid = endorse(args.pubfile, args.key)
    except TrustError as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        raise UsageError(f"{exc.filename or args.pubfile}: {exc.strerror or exc}") from exc
    print(f"endorsed {args.pubfile} with key {kid} -> {args.pubfile}.sig")
    return 0


def _cmd_keyring_status(args) -> int:
    from drivers.keyring import describe

    view, note = _keyring_view(args)
    if note:
        print(f"note: {note}")
    for line in describe(view):
        print(line)
    print(f"{len(view.trusted)} trusted, {len(view.ignored)} ignored")
    return 0


def _cmd_audit_verify(args) -> int:
    from drivers.audit_log import verify_file

    path = args.file
    if path is None:
        state = Path("/var/lib/rampart")
        if args.config is not None:
            cfg = _load_site(args.config)
            state = Path(cfg.section("state").get("dir", state))
            if not state.is_absolute():
                state = args.config.parent / state
        path = state / "audit.log"
    if not path.is_file():
        raise UsageError(f"{path}: no such audit log")
    head = None
    if args.head:
        seq, _, digest = args.head.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise UsageError(f"--head must be SEQ:HASH (64 hex digits), not {args.head!r}")
        head = (int(seq), digest)
    try:
        result = verify_file(path, head)
    except OSError as exc:
        raise UsageError(f"{path}: unreadable: {exc.strerror or exc}") from exc
    if result.ok:
        print(f"{path}: intact, {result.records} records, head {result.last_seq}:{result.head}")
    else:
        print(f"{path}: {result.problem}; the {result.records} records before it are intact")
    # What a reader should know besides: where the file begins, sealed tails, files moved aside.
    if result.first_seq > 1 or result.start:
        print(f"  begins at record {result.first_seq}: {result.start}")
    for note in result.notes:
        print(f"  {note}")
    for other in sorted(path.parent.glob(f"{path.name}.damaged-*")) + sorted(
        path.parent.glob(f"{path.name}.tampered-*")
    ):
        print(f"  moved aside earlier: {other} (verify it on its own)")
    return 0 if result.ok else 1


def _cmd_audit_watch(args) -> int:
    import queue
    import signal
    import threading
    import time

    from drivers.audit_watch import (
        AuditWatch,
        MqttInput,
        StateFile,
        follow_file,
        mqtt_lines,
        run_watch,
    )

    log = logging.getLogger("rampart.audit_watch")
    if (args.mqtt is None) == (args.input is None):
        raise UsageError("audit watch needs exactly one of --mqtt HOST:PORT or --input FILE")
    if not args.max_gap_s > 0:
        raise UsageError(f"--max-gap-s must be > 0, not {args.max_gap_s}")
    state = StateFile(args.state)
    try:
        saved = state.load()
        watch = AuditWatch(args.max_gap_s, saved, started=time.time())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{args.state}: unreadable watch state: {exc}") from exc
    lines: queue.Queue = queue.Queue(maxsize=10000)
    done = threading.Event()
    stop = threading.Event()
    found = 0

    def emit(problem) -> None:
        nonlocal found
        found += 1
        print(json.dumps(problem.as_json(), sort_keys=True), flush=True)
        log.error("%s: %s", problem.kind, problem.summary)

    client = None
    reader = None
    if args.mqtt is not None:
        host, _, port = args.mqtt.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--mqtt must be HOST:PORT, not {args.mqtt!r}")
        for f in (args.ca_file, args.cert_file, args.key_file):
            if f is not None and not f.is_file():
                raise UsageError(f"{f}: no such file")
        spec = MqttInput(
            host, int(port), args.topic, args.tls, args.ca_file, args.cert_file, args.key_file
        )
        client = mqtt_lines(
            spec,
            lines,
            lambda: print(
                f"rampart audit watch: subscribed to {spec.topic} on {spec.host}:{spec.port}",
                file=sys.stderr,
                flush=True,
            ),
        )
    else:
        if args.input == "-":
            stream, name = sys.stdin.buffer, "<stdin>"
        else:
            try:
                stream, name = open(args.input, "rb"), args.input  # noqa: SIM115
            except OSError as exc:
                raise UsageError(f"{args.input}: {exc.strerror or exc}") from exc

        def pump() -> None:
            try:
                for item in follow_file(stream, name, args.follow, stop):
                    while not stop.is_set():
                        try:
                            lines.put(item, timeout=0.5)
                            break
                        except queue.Full:
                            continue
            finally:
                done.set()

        reader = threading.Thread(target=pump, name="audit-watch-input", daemon=True)
        reader.start()
    signal.signal(signal.SIGTERM, lambda *_: (stop.set(), done.set()))  # ends, state saved
    try:
        counts = run_watch(
            watch,
            lines,
            done,
            emit,
            state,
            max_seconds=args.max_seconds,
            event_time=args.input is not None and not args.follow,
        )
    finally:
        stop.set()
        if client is not None:
            client.loop_stop()
            client.disconnect()
        if reader is not None:
            reader.join(timeout=2.0)
    log.warning(
        "audit watch: %d lines, %d heads from %d sites, %d rejected, %d problems",
        counts["lines"],
        counts["heads"],
        len(watch.sites),
        counts["rejected"],
        found,
    )
    return 1 if found else 0


def _cmd_check_config(args) -> int:
    from drivers.audit_log import head_every_s
    from drivers.limits import Limits
    from drivers.sinks.base import SinkConfigError
    from drivers.sinks.config import parse_delivery
    from fusion.config import ConfigError, load_config, unknown_keys
    from fusion.detectors import build_detectors
    from fusion.incidents import IncidentSettings

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}")
        return 1
    # Sections and keys nobody reads (a misspelt key would be ignored silently), then
    # the sections the site format leaves to Rampart: detectors, incidents, limits,
    # audit, sinks.
    problems: list[str] = unknown_keys(cfg)
    for check in (build_detectors, IncidentSettings.from_site, Limits.from_site, head_every_s):
        try:
            check(cfg)
        except ConfigError as exc:
            problems.extend(exc.problems)
    try:
        parse_delivery(cfg, args.config.parent)
    except SinkConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        for problem in problems:
            print(f"{args.config}: {problem}")
        return 1
    print(
        f"{args.config}: ok (site {cfg.site.id}, {len(cfg.sensors)} sensors, {len(cfg.zones)} zones)"
    )
    return 0


def _cmd_replay(args) -> int:
    from drivers.jsonl_sink import JsonlSink
    from drivers.recording import RecordingError, RecordingReader
    from fusion.cli.replay import format_alert, replay, summary_table, write_tracks
    from fusion.config import ConfigError, parse_config

    try:
        reader = RecordingReader(args.recording)
        site = parse_config(reader.site_toml(), source=str(reader.site_path))
    except RecordingError as exc:
        raise UsageError(str(exc)) from exc
    except ConfigError as exc:
        raise UsageError(f"{exc.source}: " + "; ".join(exc.problems)) from exc
    sinks = []
    heads = None  # --deliver: the audit log's head goes out at the start and the end
    if args.config is not None:
        service = _load_site(args.config)
        site = _apply_service_settings(site, service)
        if args.deliver:
            from drivers.audit_log import AuditLog, AuditSink, HeadTracker

            state = Path(service.section("state").get("dir", "/var/lib/rampart"))
            state = state if state.is_absolute() else args.config.parent / state
            try:
                audit = AuditLog(state / "audit.log")
            except OSError as exc:
                raise UsageError(f"{state / 'audit.log'}: {exc}") from exc
            if audit.opened_with is not None:
                print(f"rampart: warning: {audit.opened_with}", file=sys.stderr)
            audit_sink = AuditSink(audit)
            sinks.append(audit_sink)
            sinks.extend(_build_sinks(service, args.config.parent, replay=True))
            for sink in sinks[1:]:  # delivery's own alerts are audited too
                sink.delivery.on_own_alert = audit_sink.send
            heads = (HeadTracker(audit), service.site.id, list(sinks))

            def send_head(state: str) -> None:
                tracker, site_id, to = heads
                alert = tracker.alert(site_id, state)
                for sink in to:  # the log and the SOC; not --alerts-out (the replay's own)
                    sink.send(alert)
                tracker.published()

            send_head("open")
    elif args.deliver:
        raise UsageError("--deliver needs --config (the sinks come from the service configuration)")
    if args.alerts_out:
        sinks.append(JsonlSink(args.alerts_out))
    speed = None if args.fast else (args.speed if args.speed else 1.0)
    if speed is not None and speed <= 0:
        raise UsageError(f"--speed must be > 0, not {speed}")
    on_alert = None if args.quiet else (lambda a: print(format_alert(a), flush=True))
    result = replay(
        args.recording,
        site,
        sinks,
        speed=speed,
        keep_activity=args.report is not None,
        on_alert=on_alert,
    )
    if heads is not None:
        send_head("closed")
    for sink in sinks:
        sink.close()
    if args.tracks_out:
        write_tracks(args.tracks_out, result)
    print(summary_table(result))
    undelivered = False
    for sink in sinks:
        if hasattr(sink, "summary"):  # --deliver: what reached the sinks
            print(sink.summary(), file=sys.stderr if not sink.drained else sys.stdout)
            undelivered = undelivered or not sink.drained
    if args.report is not None:
        from fusion.cli.report import write_replay_report

        index = write_replay_report(args.report, args.recording, result)
        print(f"report: {index}")
    return 1 if undelivered else 0


def _apply_service_settings(site, service):
    """Detector/engine settings from a service configuration; sensors and zones stay the recording's."""
    from dataclasses import replace

    raw = dict(site.raw)
    for key, value in service.raw.items():
        if key not in ("site", "zones", "sensors"):
            raw[key] = value
    return replace(site, engine=service.engine, raw=raw)


def _build_sinks(service, base: Path, replay: bool = False) -> list:
    """The service configuration's sinks behind its durable outbox (drivers/sinks/), as the
    service sends. ``replay``: for ``replay --deliver`` (a temporary outbox unless the
    configuration names one, and a bounded drain before returning)."""
    from drivers.sinks.base import SinkConfigError
    from drivers.sinks.config import ConfiguredDelivery, parse_delivery
    from drivers.sinks.outbox import OutboxLocked

    try:
        if not parse_delivery(service, base).sinks:
            return []
        delivery = ConfiguredDelivery(service, base, replay=replay)
    except SinkConfigError as exc:
        raise UsageError(f"{service.source}: " + "; ".join(exc.problems)) from exc
    except (OutboxLocked, OSError) as exc:
        raise UsageError(f"{service.source}: cannot open the outbox: {exc}") from exc
    return [delivery]


def _cmd_simulate(args) -> int:
    from drivers.simulated import scenarios

    if args.list or not args.scenario:
        for name, desc in scenarios.list_scenarios():
            print(f"{name:<12} {desc}")
        return 0
    if args.out is None:
        raise UsageError("simulate needs --out DIR")
    if args.scenario not in scenarios.SCENARIOS:
        raise UsageError(
            f"unknown scenario {args.scenario!r}; one of: {', '.join(scenarios.SCENARIOS)}"
        )
    if args.duration is not None and not 1 <= args.duration <= 24 * 3600:
        raise UsageError(f"--duration must be between 1 and 86400 s, not {args.duration}")
    from fusion.cli.simulate import write_scenario

    try:
        specs = None
        if args.trajectories:
            from drivers.simulated.flown import parse_specs

            specs = [s for text in args.trajectories for s in parse_specs(text)]
        summary = write_scenario(args.scenario, args.out, args.seed, args.duration, specs)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(summary)
    return 0


def _cmd_score(args) -> int:
    import polars as pl

    from drivers.recording import RecordingError, RecordingReader
    from fusion.score import score

    try:
        reader = RecordingReader(args.recording)
    except RecordingError as exc:
        raise UsageError(str(exc)) from exc
    truth = reader.truth()
    if truth is None:
        raise UsageError(
            f"{args.recording}: no truth.parquet (only simulated or labelled recordings can be scored)"
        )
    try:
        lines = args.alerts.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"{args.alerts}: {exc.strerror}") from exc
    alerts = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            alerts.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise UsageError(f"{args.alerts}:{n}: not JSON: {exc.msg}") from exc
    tracks = None
    if args.tracks:
        try:
            tracks = pl.read_parquet(args.tracks)
        except Exception as exc:
            raise UsageError(f"{args.tracks}: unreadable tracks file: {exc}") from exc
    metrics = score(
        truth, alerts, reader.time_span_ns(), tracks=tracks, truth_tracks=reader.truth_tracks()
    )
    if args.summary:
        from fusion.score import summary_lines

        print("\n".join(summary_lines(metrics)))
    else:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


def _cmd_import(args) -> int:
    site = _load_site(args.site)
    sensor = site.sensor(args.sensor)
    if sensor is None:
        raise UsageError(
            f"{args.site}: no sensor {args.sensor!r} (have: {', '.join(s.id for s in site.sensors)})"
        )
    if not args.input.is_file():
        raise UsageError(f"{args.input}: no such file")
    if args.format == "serial":
        from drivers.serial_import import import_serial

        if sensor.kind != "gnss":
            raise UsageError(
                f"{args.site}: sensor {sensor.id} is a {sensor.kind} sensor; serial import takes GNSS receivers"
            )
        s = import_serial(args.input, sensor, site.text, args.out)
        span_s = (s.t_last_ns - s.t_first_ns) / 1e9
        print(
            f"{args.input} -> {args.out}: {s.bytes} bytes in {s.rows} chunks, {s.messages} GNSS messages, "
            f"{span_s:.1f} s; receive times from the {TIME_SOURCES[s.time_source]}"
        )
        return 0
    else:
        from drivers.comtrade_import import import_comtrade

        if sensor.kind != "power":
            raise UsageError(
                f"{args.site}: sensor {sensor.id} is a {sensor.kind} sensor; COMTRADE import needs a power sensor"
            )
        try:
            s = import_comtrade(args.input, sensor, site.text, args.out)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{args.input}: {exc}") from exc
        print(
            f"{args.input} -> {args.out}: {s.frames} frames, {s.samples} samples per channel in "
            f"{s.rate_blocks} rate block(s), {(s.t_last_ns - s.t_first_ns) / 1e9:.3f} s; channels "
            + ", ".join(
                f"{r}->{c} ({u})"
                for r, c, u in zip(s.channels_used, s.sensor_channels, s.units, strict=False)
            )
        )
        for note in s.notes:
            print(f"  note: {note}")
    return 0
