"""Multi-site: two site brokers bridged to a central SOC broker with the shipped example configs."""

from __future__ import annotations

import re
import time

from drivers.sinks.config import build_delivery
from fusion.config import load_config
from tests.sinks.burst import burst_alert
from tests.sinks.conftest import REPO, SITE_TOML, service_toml
from tests.sinks.servers import Mosquitto, MosquittoSub, make_certs, stop_all, wait_for

DEPLOY = REPO / "deploy" / "mosquitto"


def _set(text: str, directive: str, value: str) -> str:
    """Replaces the value of every ``directive`` line of a mosquitto configuration."""
    text, n = re.subn(rf"(?m)^{directive} .*$", f"{directive} {value}", text)
    assert n, f"{directive} not in the example configuration"
    return text


def central_conf(certs, tmp_path):
    def render(b: Mosquitto) -> str:
        text = (DEPLOY / "soc-central.conf").read_text()
        text = _set(text, "listener", f"{b.port} 127.0.0.1")
        text = _set(text, "persistence_location", f"{b.dir / 'data'}/")
        text = _set(text, "autosave_interval", "1")
        text = _set(text, "cafile", str(certs.ca))
        text = _set(text, "certfile", str(certs.server_cert))
        text = _set(text, "keyfile", str(certs.server_key))
        acl = tmp_path / "soc-central.acl"
        acl.write_text((DEPLOY / "soc-central.acl").read_text())
        text = _set(text, "acl_file", str(acl))
        return text + f"user root\nlog_dest file {b.dir / 'mosquitto.log'}\nlog_type all\n"

    return render


def bridge_conf(site: str, central: Mosquitto, certs) -> str:
    text = (DEPLOY / "bridge-to-soc.conf").read_text().replace("dc-east-1", site)
    text = _set(text, "address", f"127.0.0.1:{central.port}")
    cert, key = certs.client(site)
    text = _set(text, "bridge_cafile", str(certs.ca))
    text = _set(text, "bridge_certfile", str(cert))
    text = _set(text, "bridge_keyfile", str(key))
    return "max_queued_messages 100000\n" + _set(text, "restart_timeout", "1 2")


def test_two_sites_reach_one_soc_through_bridges_and_a_central_restart_loses_nothing(
    servers, tmp_path, certs
):
    certs = make_certs(tmp_path / "certs", clients=("client", "soc", "site-a", "site-b"))  # own CNs
    central = servers.add(
        Mosquitto(tmp_path / "central", certs, conf=central_conf(certs, tmp_path)).start()
    )
    soc = servers.add(
        MosquittoSub(tmp_path / "soc", central, "rampart/+/alerts", client_id="soc-siem").start()
    )
    sites, deliveries = [], []
    for site in ("site-a", "site-b"):
        b = servers.add(
            Mosquitto(tmp_path / site, certs, extra=bridge_conf(site, central, certs)).start()
        )
        sites.append(b)
        wait_for(
            lambda s=site: f"bridge-{s}" in (central.dir / "mosquitto.log").read_text(),
            15,
            f"{site} bridged",
        )
        cfg = service_toml(
            tmp_path / site, certs, broker=b, site_toml=SITE_TOML.replace('"sim-site"', f'"{site}"')
        )
        deliveries.append(
            build_delivery(
                load_config(cfg), tmp_path / site, outbox_path=tmp_path / site / "o.sqlite"
            )
        )
    wanted = set()
    for i in range(300):
        if i == 100:
            central.stop()  # the SOC broker restarts mid-stream: down for ~2 s of alerts
        if i == 200:
            central.start()
        for site, d in zip(("site-a", "site-b"), deliveries, strict=True):
            a = burst_alert(i, site)
            wanted.add(a.alert_id)
            d.send(a)
        if 100 <= i < 200:
            time.sleep(0.02)
    for d in deliveries:
        assert d.drain(20)  # each site's broker has every alert
    wait_for(lambda: wanted <= {a["alert_id"] for a in soc.alerts()}, 30, "all alerts at the SOC")
    got = soc.alerts()
    assert {a["site"] for a in got} == {"site-a", "site-b"}
    assert len({a["alert_id"] for a in got}) == 600
    for d in deliveries:
        d.close()
    stop_all(soc, *sites, central)


def test_a_site_bridge_cannot_publish_as_another_site(servers, tmp_path, certs):
    certs = make_certs(tmp_path / "certs", clients=("client", "soc", "site-a"))
    central = servers.add(
        Mosquitto(tmp_path / "central", certs, conf=central_conf(certs, tmp_path)).start()
    )
    soc = servers.add(
        MosquittoSub(tmp_path / "soc", central, "rampart/+/alerts", client_id="soc-siem").start()
    )
    # site-a's bridge misconfigured to forward site-b's topic: the central ACL drops it
    conf = bridge_conf("site-a", central, certs).replace(
        "topic rampart/site-a/alerts out 1",
        "topic rampart/site-b/alerts out 1\ntopic rampart/site-a/alerts out 1",
    )
    site = servers.add(Mosquitto(tmp_path / "site-a", certs, extra=conf).start())
    wait_for(lambda: "bridge-site-a" in (central.dir / "mosquitto.log").read_text(), 15, "bridged")
    for s in ("site-b", "site-a"):
        (tmp_path / s).mkdir(exist_ok=True)
        cfg = service_toml(
            tmp_path / s, certs, broker=site, site_toml=SITE_TOML.replace('"sim-site"', f'"{s}"')
        )
        d = build_delivery(load_config(cfg), tmp_path / s, outbox_path=tmp_path / s / "o.sqlite")
        d.send(burst_alert(1, s))
        assert d.drain(10)
        d.close()
    wait_for(lambda: len(soc.alerts()) >= 1, 10, "site-a's alert")
    assert [a["site"] for a in soc.alerts()] == ["site-a"]
    log = (central.dir / "mosquitto.log").read_text()
    assert "Denied PUBLISH from bridge-site-a" in log and "rampart/site-b/alerts" in log
    stop_all(soc, site, central)
