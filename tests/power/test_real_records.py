"""Real relay records (tests/data/shared/power, imported as ``rampart import comtrade`` does):
never ``emp_like``, and what each is reported as instead.

These are grid-side records at 600-2400 samples/s; an EMP-like transient
could not even show in them (their bandwidth ends below ~1 kHz). What they do
hold is ordinary power-system trouble, which must come out as such:

| record | content (tests/data/shared/power/README.md) | reported as |
|---|---|---|
| ru_terminal_mv_intermittent_earth_fault | intermittent single-phase earth fault: one phase down to ~0.63 pu, the others up to ~1.35 pu | ``fault`` |
| sepam_s40_mv_earth_fault_trip | MV earth fault, feeder trip, bus voltage decaying for 3 s | ``fault`` (unbalanced: U21 swells while U32 sags), still under way at the end |
| sac_psl603_demotest_ascii1991 | test-set injection into currents; the voltage inputs read ~0 V | ``interruption`` (no voltage on the feed), still under way |
| ritm_vc4_powerup_binary32 | relay power-up, 0.1 s of noise on the inputs | nothing (too short for an ongoing dip alert) |
| comtrade_fixtures/* | format fixtures (40, 5 and 301 samples; one at 100 samples/s) | nothing |
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.comtrade_import import import_comtrade
from drivers.recording import RecordingReader
from fusion.cli.replay import replay
from fusion.config import parse_config
from fusion.power.detector import PowerTransientDetector
from tests.conftest import DATA

POWER = DATA / "power"
SITE = (DATA / "recording-sample" / "site.toml").read_text()

EXPECTED = {
    "ru_terminal_mv_intermittent_earth_fault.cfg": ["fault"],
    "sepam_s40_mv_earth_fault_trip.CFG": ["fault"],
    "sac_psl603_demotest_ascii1991.cfg": ["interruption"],
    "ritm_vc4_powerup_binary32.cfg": [],
    "sample_ascii.cfg": [],
    "sample_bin.cfg": [],
    "sample_ascii.cff": [],
    "sample_float32.cff": [],
}


def records() -> list[Path]:
    found = sorted(p for p in POWER.iterdir() if p.suffix.lower() == ".cfg")
    found += sorted((POWER / "comtrade_fixtures").glob("*.cf[gf]"))
    return found


def test_every_record_is_covered():
    assert sorted(p.name for p in records()) == sorted(EXPECTED)


@pytest.mark.parametrize("cfg", records(), ids=lambda p: p.name)
def test_real_record_is_never_emp_like(cfg, tmp_path):
    summary = import_comtrade(cfg, parse_config(SITE).sensor("pq-a"), SITE, tmp_path / "rec")
    site = parse_config(RecordingReader(tmp_path / "rec").site_toml())
    det = PowerTransientDetector(site)
    result = replay(tmp_path / "rec", site, [], detectors=[det])
    power = [a for a in result.pipeline.alerts if a.kind == "power_transient"]
    assert not [a for a in power if a.details["subtype"] == "emp_like"]
    assert not [e for e in det.events if e.kind == "impulse"]
    opened = [a.details["subtype"] for a in power if a.state == "open"]
    assert opened == EXPECTED[cfg.name], [a.summary for a in power]
    assert all(a.severity == "low" for a in power)
    # the per-unit thresholds ran against the record's own nominal, not the site's 230 V
    assert site.sensor("pq-a").nominal_v == summary.nominal_v


def test_relay_records_get_their_own_nominal_voltage_and_frequency(tmp_path):
    sensor = parse_config(SITE).sensor("pq-a")
    got = {}
    for name in (
        "ru_terminal_mv_intermittent_earth_fault.cfg",
        "sepam_s40_mv_earth_fault_trip.CFG",
    ):
        s = import_comtrade(POWER / name, sensor, SITE, tmp_path / name)
        got[name] = (s.nominal_v, s.nominal_hz)
    # secondary volts behind a 100 V VT; and a 3.3 kV bus measured line to line
    assert got["ru_terminal_mv_intermittent_earth_fault.cfg"] == (57.7, 50.0)
    assert got["sepam_s40_mv_earth_fault_trip.CFG"] == (3300.0, 50.0)
