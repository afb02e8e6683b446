"""The [gnss] section: defaults, overrides, and errors that name the key."""

from __future__ import annotations

import pytest

from fusion.config import ConfigError, parse_config
from fusion.gnss import GnssDetector, GnssSettings, gnss_settings

SITE = """
[site]
id = "s"
lat = 52.0
lon = 4.0
alt_m = 10.0

[[sensors]]
id = "gnss-1"
kind = "gnss"
transport = "serial"
port = "/dev/ttyACM0"
"""


def test_defaults_without_a_section():
    assert gnss_settings(parse_config(SITE)) == GnssSettings()


def test_overrides_are_applied_and_ints_accepted_for_floats():
    s = gnss_settings(parse_config(SITE + "\n[gnss]\ncn0_drop_db = 4\nspoof_cluster_min = 5\n"))
    assert s.cn0_drop_db == 4.0 and isinstance(s.cn0_drop_db, float)
    assert s.spoof_cluster_min == 5
    s = gnss_settings(
        parse_config(SITE + "\n[gnss]\nsky_flat_spread_db = 2\nsky_min_satellites = 8\n")
    )
    assert s.sky_flat_spread_db == 2.0 and s.sky_min_satellites == 8


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("cn0_drop_db = -1.0", "gnss.cn0_drop_db"),
        ("cn0_drop_db = true", "gnss.cn0_drop_db"),
        ("spoof_cluster_min = 2.5", "gnss.spoof_cluster_min"),
        ("position_limit_m = 'far'", "gnss.position_limit_m"),
        ("cn0_drop_dB = 3.0", "gnss.cn0_drop_dB: unknown setting"),
        ("cn0_clear_db = 5.0", "gnss.cn0_clear_db: must not exceed cn0_drop_db"),
        ("rf_only_rise_db = 1.0", "gnss.rf_only_rise_db"),
        ("sky_min_satellites = 2", "gnss.sky_min_satellites"),
        ("sky_flat_spread_db = 0.0", "gnss.sky_flat_spread_db"),
        ("below_horizon_min = 1.5", "gnss.below_horizon_min"),
    ],
)
def test_bad_values_name_their_key(text, key):
    site = parse_config(SITE + f"\n[gnss]\n{text}\n")
    with pytest.raises(ConfigError) as err:
        GnssDetector(site)
    assert any(p.startswith(key) for p in err.value.problems), err.value.problems


def test_every_problem_is_listed_at_once():
    site = parse_config(SITE + "\n[gnss]\ncn0_drop_db = 0\nstale_s = 0\nnope = 1\n")
    with pytest.raises(ConfigError) as err:
        gnss_settings(site)
    assert len(err.value.problems) == 3


def test_a_section_that_is_not_a_table():
    site = parse_config(SITE.replace("[site]", 'gnss = "on"\n[site]'))
    with pytest.raises(ConfigError, match="gnss: must be a table"):
        gnss_settings(site)
