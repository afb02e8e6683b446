"""The service's loopback status endpoint: /healthz, /readyz and Prometheus /metrics.

``/healthz`` answers 200 while the engine loop is alive (it has turned within
the last few seconds); ``/readyz`` answers 200 only once the detectors' kernels
are compiled and every configured sensor connection is up, else 503 with the
reasons, one per line; ``/metrics`` is the Prometheus text exposition.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger("rampart.http")


class StatusServer:
    def __init__(
        self,
        listen: str,
        registry: CollectorRegistry,
        health: Callable[[], list[str]],
        readiness: Callable[[], list[str]],
    ):
        host, _, port = listen.rpartition(":")
        self._registry = registry
        self._health = health
        self._readiness = readiness
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    outer._reply(self, 200, generate_latest(outer._registry), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/readyz"):
                    problems = outer._health() if path == "/healthz" else outer._readiness()
                    body = ("ok\n" if not problems else "\n".join(problems) + "\n").encode()
                    outer._reply(self, 503 if problems else 200, body, "text/plain; charset=utf-8")
                else:
                    outer._reply(self, 404, b"not found\n", "text/plain; charset=utf-8")

            def log_message(self, fmt: str, *args) -> None:
                log.debug("http: " + fmt, *args)

        self.httpd = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="status-http", daemon=True
        )

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, code: int, body: bytes, ctype: str) -> None:
        handler.send_response(code)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
