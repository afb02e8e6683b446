"""Site configuration: parsing and problems that name key and line."""

from __future__ import annotations

import pytest

from fusion.config import ConfigError, load_config, parse_config

GOOD = """
[site]
id = "dc-east-1"
lat = 52.0
lon = 4.0
alt_m = 10.0

[[zones]]
name = "hall-a"
polygon = [[52.0010, 4.0010], [52.0010, 4.0030], [51.9995, 4.0030]]
alert_radius_m = 1500.0

[[sensors]]
id = "radar-1"
kind = "radar"
lat = 52.0002
lon = 4.0002
alt_m = 25.0
transport = "mqtt"
topic = "rampart/dc-east-1/radar/radar-1/plots"

[[sensors]]
id = "pq-a"
kind = "power"
transport = "serial"
port = "/dev/ttyUSB0"
board = 1
"""


def test_good_config_parses_with_defaults():
    cfg = parse_config(GOOD)
    assert cfg.site.id == "dc-east-1"
    assert cfg.zones[0].polygon[0] == (52.001, 4.001)
    radar, pq = cfg.sensors
    assert radar.fault_after_s == 5.0 and pq.fault_after_s == 2.0
    assert pq.channels == ("va", "vb", "vc") and pq.nominal_hz == 50.0
    assert cfg.engine.lateness_s == 1.0


def test_sample_recording_site_parses(sample_recording):
    cfg = load_config(sample_recording / "site.toml")
    assert [s.id for s in cfg.sensors] == ["radar-1", "rf-1", "gnss-1", "pq-a", "pq-b", "ats-1"]


def test_problems_name_key_and_line():
    bad = GOOD.replace('kind = "power"', 'kind = "powr"').replace("lat = 52.0\n", "lat = 95.0\n", 1)
    with pytest.raises(ConfigError) as err:
        parse_config(bad, source="site.toml")
    problems = err.value.problems
    assert any(p.startswith("site.lat (line 4)") for p in problems), problems
    kind_line = bad.splitlines().index('kind = "powr"') + 1
    assert any(p.startswith(f"sensors[1].kind (line {kind_line})") for p in problems), problems


def test_duplicate_ids_and_boards_rejected():
    dup = GOOD + GOOD[GOOD.index('[[sensors]]\nid = "pq-a"') :]
    with pytest.raises(ConfigError) as err:
        parse_config(dup)
    text = " ".join(err.value.problems)
    assert "duplicate sensor id 'pq-a'" in text and "board 1 used twice" in text


def test_not_toml():
    with pytest.raises(ConfigError) as err:
        parse_config("[site\nid=1")
    assert "not valid TOML" in err.value.problems[0]


BROKEN = [
    ("lat = 52.0\n", 'lat = "north"\n', "site.lat"),
    ('id = "dc-east-1"', 'id = ""', "site.id"),
    (
        "polygon = [[52.0010, 4.0010], [52.0010, 4.0030], [51.9995, 4.0030]]",
        "polygon = [[52.0, 4.0]]",
        "zones[0].polygon",
    ),
    ("alert_radius_m = 1500.0", "alert_radius_m = -1.0", "zones[0].alert_radius_m"),
    ('kind = "radar"', 'kind = "sonar"', "sensors[0].kind"),
    ('transport = "mqtt"', 'transport = "carrier-pigeon"', "sensors[0].transport"),
    ('topic = "rampart/dc-east-1/radar/radar-1/plots"\n', "", "sensors[0].topic"),
    ('port = "/dev/ttyUSB0"\n', "", "sensors[1].port"),
    ("board = 1\n", "board = -4\n", "sensors[1].board"),
    ("board = 1\n", "board = 1\nchannels = []\n", "sensors[1].channels"),
    ("board = 1\n", "board = 1\nfault_after_s = -2\n", "sensors[1].fault_after_s"),
    ("board = 1\n", "board = 1\nnominal_hz = 5000\n", "sensors[1].nominal_hz"),
    ("board = 1\n", "board = 1\nmobile = 3\n", "sensors[1].mobile"),
    ("[[zones]]", "[engine]\nlateness_s = 600\n\n[[zones]]", "engine.lateness_s"),
]


@pytest.mark.parametrize(("old", "new", "key"), BROKEN, ids=[b[2] for b in BROKEN])
def test_each_broken_config_is_refused_naming_its_key(old, new, key):
    assert old in GOOD
    with pytest.raises(ConfigError) as err:
        parse_config(GOOD.replace(old, new, 1), source="site.toml")
    assert any(p.startswith(key + " ") or p.startswith(key + ":") for p in err.value.problems), (
        err.value.problems
    )
    assert all("(line " in p for p in err.value.problems if p.startswith(key))


def test_unknown_sections_and_keys_are_named_with_their_line():
    from fusion.config import unknown_keys

    text = GOOD.replace("alert_radius_m = 1500.0", "alert_radius = 500.0").replace(
        'transport = "mqtt"', 'transport = "mqtt"\nfault_after = 1.0', 1
    )
    text += '\n[engine]\nlateness_s = 1.0\nlatenes_s = 9.0\n\n[drone_alerts]\nx = 1\n\n[http]\nlisten = "127.0.0.1:9"\n'
    problems = unknown_keys(parse_config(text))
    assert len(problems) == 4, problems
    by_key = {p.split(" ", 1)[0].rstrip(":"): p for p in problems}
    assert set(by_key) == {
        "zones[0].alert_radius",
        "sensors[0].fault_after",
        "engine.latenes_s",
        "drone_alerts",
    }
    line_of = {n + 1: ln for n, ln in enumerate(text.splitlines())}
    for key, problem in by_key.items():
        line = int(problem.split("(line ", 1)[1].split(")", 1)[0])
        assert key.rsplit(".", 1)[-1].split("[")[0] in line_of[line], (key, line_of[line])
    assert "unknown section" in by_key["drone_alerts"]
    assert unknown_keys(parse_config(GOOD)) == []


@pytest.mark.parametrize("reserved", ["unknown", "engine"])
def test_source_labels_of_unowned_input_are_not_sensor_ids(reserved):
    with pytest.raises(ConfigError, match="reserved"):
        parse_config(GOOD.replace('id = "radar-1"', f'id = "{reserved}"'))
