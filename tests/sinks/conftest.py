"""Fixtures: real mosquitto, rsyslog and HTTPS webhook servers on free loopback ports."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from tests.sinks.servers import (
    Mosquitto,
    Rsyslog,
    WebhookReceiver,
    make_certs,
    missing_tools,
    stop_all,
)

REPO = Path(__file__).resolve().parents[2]
SITE_TOML = (REPO / "replay_data" / "sensor_faults" / "site.toml").read_text()


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """Certificates for the test servers (and the check that the servers are installed)."""
    missing = missing_tools()
    if missing:
        pytest.fail(
            f"the server tests need {', '.join(missing)} (Debian packages mosquitto, "
            "mosquitto-clients, rsyslog, rsyslog-gnutls, openssl; `make test` installs them)"
        )
    return make_certs(tmp_path_factory.mktemp("certs"), clients=("client", "soc", "bridge"))


@pytest.fixture
def broker(tmp_path, certs):
    b = Mosquitto(tmp_path / "broker", certs).start()
    yield b
    stop_all(b)


@pytest.fixture
def rsyslog(tmp_path, certs):
    r = Rsyslog(tmp_path / "rsyslog", certs).start()
    yield r
    stop_all(r)


class _Started(list):
    def add(self, server):
        self.append(server)
        return server


@pytest.fixture
def servers():
    """Servers and clients a test starts itself: all stopped at teardown, pass or fail."""
    started = _Started()
    yield started
    stop_all(*reversed(started))


@pytest.fixture
def webhook_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def webhook(certs, webhook_secret):
    w = WebhookReceiver(certs, webhook_secret)
    yield w
    stop_all(w)


def service_toml(
    tmp_path: Path,
    certs,
    *,
    broker=None,
    rsyslog=None,
    webhook=None,
    secret: str = "",
    jsonl: bool = False,
    state_dir: Path | None = None,
    site_toml: str = SITE_TOML,
    extra: str = "",
    retry_max_s: float = 1.0,
) -> Path:
    """A service configuration whose sinks point at the given test servers."""
    parts = [site_toml.rstrip(), ""]
    if state_dir is not None:
        parts.append(f'[state]\ndir = "{state_dir}"\n')
    if broker is not None:
        parts.append(
            f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\ntls = true\nca_file = "{certs.ca}"\n'
            f'cert_file = "{certs.client_cert}"\nkey_file = "{certs.client_key}"\n'
            'client_id = "rampart-test"\n'
        )
        parts.append(f'[[sinks]]\ntype = "mqtt"\nqos = 1\nretry_max_s = {retry_max_s}\n')
    if rsyslog is not None:
        parts.append(
            f'[[sinks]]\ntype = "syslog"\nhost = "127.0.0.1"\nport = {rsyslog.port}\ntls = true\n'
            f'ca_file = "{certs.ca}"\ncert_file = "{certs.client_cert}"\n'
            f'key_file = "{certs.client_key}"\nhostname = "edge-1"\nretry_max_s = {retry_max_s}\n'
        )
    if webhook is not None:
        (tmp_path / "webhook.secret").write_text(secret + "\n")
        parts.append(
            f'[[sinks]]\ntype = "webhook"\nurl = "{webhook.url}"\n'
            f'secret_file = "{tmp_path / "webhook.secret"}"\nca_file = "{certs.ca}"\n'
            f"retry_max_s = {retry_max_s}\n"
        )
    if jsonl:
        parts.append(f'[[sinks]]\ntype = "jsonl"\npath = "{tmp_path / "delivered.jsonl"}"\n')
    parts.append(extra)
    path = tmp_path / "service.toml"
    path.write_text("\n".join(parts))
    return path
