"""The site every simulated scenario runs at (sections of contract §1)."""

from __future__ import annotations

from fusion.config import SiteConfig, parse_config

# 2026-01-06T08:00:00Z: a fixed start so recordings are reproducible byte for byte.
SIM_T0_NS = 1_767_686_400 * 1_000_000_000

SIM_SITE_TOML = """\
# Simulated site: one radar, one RF sensor, two GNSS receivers, two power feeds, an ATS.
# alt_m values are WGS-84 ellipsoidal heights; the site origin is at ground level.

[site]
id = "sim-site"
lat = 52.00000
lon = 4.00000
alt_m = 55.0

[[zones]]
name = "hall-a"
polygon = [[52.00070, 3.99855], [52.00070, 4.00146], [51.99935, 4.00146], [51.99935, 3.99855]]
alert_radius_m = 1500.0

[[sensors]]
id = "radar-1"
kind = "radar"
lat = 52.00025
lon = 4.00040
alt_m = 73.0
transport = "mqtt"
topic = "rampart/sim-site/radar/radar-1/plots"

[[sensors]]
id = "rf-1"
kind = "rf"
lat = 52.00020
lon = 4.00030
alt_m = 71.0
transport = "mqtt"
topic = "rampart/sim-site/rf/rf-1/+"

[[sensors]]
id = "gnss-1"
kind = "gnss"
lat = 52.00030
lon = 3.99990
alt_m = 70.2
transport = "serial"
port = "/dev/ttyACM0"
baud = 115200

[[sensors]]
id = "gnss-2"
kind = "gnss"
lat = 51.99960
lon = 4.00080
alt_m = 68.9
transport = "mqtt"
topic = "rampart/sim-site/gnss/gnss-2/raw"

[[sensors]]
id = "pq-a"
kind = "power"
transport = "serial"
port = "/dev/ttyUSB0"
baud = 921600
feed = "A"
board = 1
channels = ["va", "vb", "vc"]
nominal_hz = 50.0
nominal_v = 230.0

[[sensors]]
id = "pq-b"
kind = "power"
transport = "serial"
port = "/dev/ttyUSB1"
baud = 921600
feed = "B"
board = 2
channels = ["va", "vb", "vc"]
nominal_hz = 50.0
nominal_v = 230.0

[[sensors]]
id = "ats-1"
kind = "switchgear"
transport = "mqtt"
topic = "rampart/sim-site/switchgear/ats-1/events"
"""


def sim_site() -> SiteConfig:
    return parse_config(SIM_SITE_TOML, source="<simulated site>")
