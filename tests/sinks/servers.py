"""Real servers for the sink tests, each on a free 127.0.0.1 port, started and stopped by the tests.

- ``make_certs``: a throw-away CA, a server certificate (127.0.0.1, localhost)
  and client certificates, made with the ``openssl`` command line;
- ``Mosquitto``: the Debian broker with a mutual-TLS listener and persistence,
  so tests can stop, kill and restart it;
- ``MosquittoSub``: the ``mosquitto_sub`` client writing payloads to a file;
- ``Rsyslog``: rsyslogd with an ``imtcp`` TLS listener (GnuTLS stream driver,
  client certificates required) writing each message as received to a file;
- ``WebhookReceiver``: an HTTPS server (stdlib ``http.server`` + ``ssl``) that
  verifies every request's Standard Webhooks signature with the reference
  library and answers as told (200, 500s, ...).

Every wait is bounded; every process is stopped by its own pid.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from standardwebhooks import Webhook, WebhookVerificationError

SYSTEM_TOOLS = ("mosquitto", "mosquitto_sub", "rsyslogd", "openssl")


def missing_tools() -> list[str]:
    return [
        t for t in SYSTEM_TOOLS if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout_s: float = 10.0, up: bool = True) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} not {'up' if up else 'down'} after {timeout_s} s")


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every_s)
    raise TimeoutError(f"{what}: not after {timeout_s} s")


# --- certificates -------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client(self, name: str) -> tuple[Path, Path]:
        return self.dir / f"{name}.pem", self.dir / f"{name}.key"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_certs(d: Path, clients: tuple[str, ...] = ("client",)) -> Certs:
    d.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Rampart Test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
        "keyUsage=critical,digitalSignature\nbasicConstraints=critical,CA:FALSE\n"
    )
    (d / "client.ext").write_text(
        "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n"
        "basicConstraints=critical,CA:FALSE\n"
    )
    for name, cn, ext in [("server", "localhost", "server.ext")] + [
        (c, c, "client.ext") for c in clients
    ]:
        _openssl(
            "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            ext,
            cwd=d,
        )
    first = clients[0]
    return Certs(
        d, d / "ca.pem", d / "server.pem", d / "server.key", d / f"{first}.pem", d / f"{first}.key"
    )


# --- processes ----------------------------------------------------------------------------


class _Process:
    name = "process"

    def __init__(self, workdir: Path, port: int):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> _Process:
        log = open(self.dir / f"{self.name}.out", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.dir
        )
        log.close()
        try:
            wait_port(self.port, 10.0)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {self.log_tail()}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
        with contextlib.suppress(TimeoutError):
            wait_port(self.port, 5.0, up=False)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log_tail(self, n: int = 2000) -> str:
        for f in sorted(self.dir.glob("*.out")) + sorted(self.dir.glob("*.log")):
            text = f.read_text(errors="replace")
            if text:
                return text[-n:]
        return ""


class Mosquitto(_Process):
    """A broker with one mutual-TLS listener (client certificates required; CN = username)."""

    name = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        certs: Certs,
        port: int | None = None,
        extra: str = "",
        conf: Callable[[Mosquitto], str] | None = None,
    ):
        super().__init__(workdir, port or free_port())
        self.certs = certs
        self.extra = extra
        self.conf = conf  # a whole configuration of one's own (rendered from deploy/, say)
        (self.dir / "data").mkdir(exist_ok=True)

    def command(self) -> list[str]:
        conf = self.dir / "mosquitto.conf"
        c = self.certs
        if self.conf is not None:
            conf.write_text(self.conf(self))
            return ["mosquitto", "-c", str(conf)]
        conf.write_text(
            f"""per_listener_settings false
user root
persistence true
persistence_location {self.dir / "data"}/
autosave_interval 1
log_dest file {self.dir / "mosquitto.log"}
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
listener {self.port} 127.0.0.1
cafile {c.ca}
certfile {c.server_cert}
keyfile {c.server_key}
require_certificate true
use_identity_as_username true
{self.extra}
"""
        )
        return ["mosquitto", "-c", str(conf)]


class MosquittoSub(_Process):
    """``mosquitto_sub`` with a persistent MQTT v5 session, one payload per line to a file."""

    name = "mosquitto_sub"

    def __init__(self, workdir: Path, broker: Mosquitto, topic: str, client_id: str = "soc-sub"):
        super().__init__(workdir, broker.port)
        self.broker = broker
        self.topic = topic
        self.client_id = client_id
        self.out = self.dir / f"{client_id}.jsonl"

    def command(self) -> list[str]:
        c = self.broker.certs
        cert, key = c.client("soc")
        return [
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "--cafile",
            str(c.ca),
            "--cert",
            str(cert),
            "--key",
            str(key),
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-c",
            "-x",
            "86400",
            "-i",
            self.client_id,
            "-t",
            self.topic,
        ]

    def start(self) -> MosquittoSub:
        self._spawn()
        try:
            wait_for(lambda: self._subscribed(), 10.0, "mosquitto_sub subscribed")
        except TimeoutError:
            self.stop()
            raise
        self._stopping = threading.Event()
        self._watch = threading.Thread(target=self._supervise, daemon=True)
        self._watch.start()
        return self

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(
            self.command(),
            stdout=open(self.out, "ab"),  # noqa: SIM115 - the child holds it
            stderr=subprocess.DEVNULL,
        )

    def _supervise(self) -> None:
        """Restarts it when it exits: libmosquitto gives up for good on a TLS error while
        reconnecting (e.g. to a broker that is just restarting), so a SOC runs it under a
        supervisor (systemd ``Restart=always``); this is that supervisor, bounded."""
        restarts = 0
        while not self._stopping.wait(0.5) and restarts < 300:
            p = self.proc
            if p is not None and p.poll() is not None:
                restarts += 1
                self._spawn()  # same client id: the persistent session resumes

    def _subscribed(self) -> bool:
        log = self.broker.dir / "mosquitto.log"
        return log.exists() and f"{self.client_id} 1 {self.topic}" in log.read_text(
            errors="replace"
        )

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        if getattr(self, "_stopping", None) is not None:
            self._stopping.set()
            self._watch.join(timeout=5)
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)

    def alerts(self) -> list[dict]:
        """Every complete line so far (the last one may still be being written)."""
        data = self.out.read_bytes() if self.out.exists() else b""
        lines = data.split(b"\n")[:-1]  # a line counts once its newline is there
        return [json.loads(line) for line in lines if line.strip()]


class Rsyslog(_Process):
    """rsyslogd with an imtcp TLS listener (gtls, x509/certvalid) writing ``%rawmsg%`` lines."""

    name = "rsyslogd"

    def __init__(self, workdir: Path, certs: Certs, port: int | None = None):
        super().__init__(workdir, port or free_port())
        self.certs = certs
        self.received = self.dir / "received.log"
        (self.dir / "work").mkdir(exist_ok=True)

    def command(self) -> list[str]:
        c = self.certs
        conf = self.dir / "rsyslog.conf"
        conf.write_text(
            f"""global(workDirectory="{self.dir / "work"}" maxMessageSize="64k"
       DefaultNetstreamDriver="gtls"
       DefaultNetstreamDriverCAFile="{c.ca}"
       DefaultNetstreamDriverCertFile="{c.server_cert}"
       DefaultNetstreamDriverKeyFile="{c.server_key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1"
       StreamDriver.AuthMode="x509/certvalid")
input(type="imtcp" port="{self.port}" address="127.0.0.1")
template(name="raw" type="string" string="%rawmsg%\\n")
action(type="omfile" file="{self.received}" template="raw" asyncWriting="off" flushOnTXEnd="on")
"""
        )
        return ["rsyslogd", "-n", "-f", str(conf), "-i", str(self.dir / "rsyslogd.pid")]

    def lines(self) -> list[str]:
        """Every complete line so far (the last one may still be being written)."""
        if not self.received.exists():
            return []
        text = self.received.read_text(errors="replace")
        return [x for x in text.split("\n")[:-1] if x]


# --- webhook receiver ---------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    error: str
    status: int


class WebhookReceiver:
    """HTTPS receiver verifying every Standard Webhooks signature; ``mode`` sets its answer:
    ``"ok"`` (200, empty), ``"ack"`` (200 with an acknowledgement body), ``"fail"`` (500),
    ``"refuse"`` (400)."""

    def __init__(self, certs: Certs, secret: str, port: int | None = None):
        self.port = port or free_port()
        self.secret = secret
        self.mode = "ok"
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(receiver.secret).verify(body, headers)
                    verified, error = True, ""
                except WebhookVerificationError as exc:
                    verified, error = False, str(exc)
                mode = receiver.mode
                status = (
                    {"ok": 200, "ack": 200, "fail": 500, "refuse": 400}[mode] if verified else 401
                )
                reply = b""
                if status == 200 and mode == "ack":
                    reply = json.dumps(
                        {"ack": True, "by": "soc-ticket-42", "note": "seen"}
                    ).encode()
                with receiver._lock:
                    receiver.received.append(Received(headers, body, verified, error, status))
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                if reply:
                    self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(certs.server_cert), str(certs.server_key))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/rampart"

    def accepted(self) -> list[dict]:
        """Bodies answered 2xx, parsed."""
        with self._lock:
            return [json.loads(r.body) for r in self.received if 200 <= r.status < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def stop_all(*procs) -> None:
    for p in procs:
        with contextlib.suppress(Exception):
            if isinstance(p, WebhookReceiver):
                p.close()
            elif p is not None:
                p.stop()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
