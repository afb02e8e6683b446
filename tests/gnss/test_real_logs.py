"""Every real receiver log in the shared data: no gnss_jamming / gnss_spoofing alert.

Each log is imported with ``import_serial`` (``rampart import serial``) for a
site whose one receiver, ``gnss-1``, has no surveyed position (the logs' true
antenna positions are unknown), so it self-surveys over its first
``self_survey_s`` of valid fixes and the position tests run after that.

Mobile or not, decided per log from its header and the README: every header
describes a fixed installation (stationary, timing or surveyed-in mode, or a
fixed location) and no log's fixes move more than 25 m, against accuracies of
1-40 m: none is configured ``mobile``. Baud rates come from the headers' gpsd
device lines (38400 for ublox-glo.log, else 9600).

Not receiver logs: ``pygpsdata-MON.log`` and ``pygpsdata-SEC.log`` are
pyubx2 fixtures with hand-edited jamming/spoofing states (README); they are
used here to show that the receiver-flag path fires on real message bytes.
"""

from __future__ import annotations

import math

import pytest

from fusion.gnss import kernels as K
from fusion.gnss.features import ReceiverMonitor
from fusion.gnss.settings import GnssSettings
from tests.conftest import DATA
from tests.gnss.helpers import GNSS_KINDS, import_log, run_recording

FIXTURES = {"pygpsdata-MON.log", "pygpsdata-SEC.log"}
LOGS = sorted(
    p for p in (DATA / "gnss").rglob("*") if p.suffix in (".log", ".ubx") and p.name not in FIXTURES
)
BAUD = {"ublox-glo.log": 38400}
MOBILE: set[str] = set()  # see the module docstring: no log moved
# The Navisys GR-8013 log (indoor, C/N0 <= 35 dB-Hz) loses ~10 dB of C/N0 on every
# satellite for ~20 s while its AGC gain rises from ~2300 to 3900 counts and its CW
# jamming indicator falls: less power reaches the receiver, which is what an obstructed
# or failing antenna does, and the opposite of what a jammer does.
ANTENNA_EVENT = {"navisys-gr8013.log"}


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.name)
def test_real_log_raises_no_jamming_or_spoofing(log, tmp_path):
    rec = import_log(log, tmp_path, BAUD.get(log.name, 9600), log.name in MOBILE)
    run = run_recording(rec)
    assert not run.of_kind(*GNSS_KINDS), [a.summary for a in run.of_kind(*GNSS_KINDS)]
    antenna = [a for a in run.of_kind("sensor_fault") if a.details.get("reason") == "antenna"]
    if log.name in ANTENNA_EVENT:
        assert len({a.incident_id for a in antenna}) == 1
        first = antenna[0]
        assert first.sensors == ["gnss-1"] and first.details["cn0_drop_db"] >= 3.0
        assert "attenuation" in first.details["cause"]
    else:
        assert not antenna, [a.summary for a in antenna]
    mon = run.detector.receivers["gnss-1"]
    assert mon.messages > 0 or log.name == "pygpsdata-NMEABADEND.log"


def test_logs_long_enough_self_survey_and_judge_position(tmp_path):
    rec = import_log(DATA / "gnss" / "gpsd" / "ublox-8.log", tmp_path)
    run = run_recording(rec)
    mon = run.detector.receivers["gnss-1"]
    assert mon.reference_source == "self-survey"
    assert 0.0 <= mon.offset.horizontal_m < mon.offset.limit_m


def test_zed_f9r_compact_mon_rf_is_read_without_jam_ind(tmp_path):
    rec = import_log(DATA / "gnss" / "gpsd" / "ublox-zed-f9r.log", tmp_path)
    run = run_recording(rec)
    mon = run.detector.receivers["gnss-1"]
    assert mon.compact_mon_rf == 7
    assert sorted(mon.blocks) == [0, 1]
    for b in mon.blocks.values():
        assert b.jam_ind.n == 0  # no CW indicator in the compact layout: nothing learned
        assert 0 < b.agc_cnt <= 8191


def test_receiver_flags_in_a_hand_edited_fixture_raise_the_flag_path(tmp_path):
    rec = import_log(DATA / "gnss" / "pyubx2" / "pygpsdata-SEC.log", tmp_path)
    run = run_recording(rec)
    jam = run.of_kind("gnss_jamming")
    assert jam and "receiver_flag" in jam[0].details["evidence_families"]


def test_real_skies_are_judged_by_the_sky_check_and_are_far_from_flat(tmp_path, monkeypatch):
    """The static sky check (spoofing present from the first byte) judged these real skies
    and none came near a simulator's: the lowest C/N0 spread of any judged epoch that did
    not rise with elevation is 2.2 dB (the indoor Navisys log), against a 1.5 dB limit."""
    s = GnssSettings()
    judged: dict[str, list[tuple[float, float]]] = {}
    current = [""]
    original = ReceiverMonitor._judge_sky

    def record(self, t):
        original(self, t)
        sky = self.sky
        n_ok = sky[K.S_N] >= s.sky_min_satellites
        if self.solution_valid(t) and n_ok and sky[K.S_SPAN] >= s.sky_min_elev_span_deg:
            judged.setdefault(current[0], []).append((sky[K.S_SPREAD], sky[K.S_SLOPE]))
        assert not self.flat_sky.active and not self.below_horizon.active

    monkeypatch.setattr(ReceiverMonitor, "_judge_sky", record)
    for i, log in enumerate(LOGS):
        current[0] = log.name
        run_recording(import_log(log, tmp_path / str(i), BAUD.get(log.name, 9600)))
    assert len(judged) >= 15 and sum(map(len, judged.values())) >= 1000
    # Timing receivers (time-only fix) are judged too.
    assert {"u-blox-m8t-time.log", "ublox-lea-m8f.log"} <= set(judged)
    flat_slopes = [
        sp for v in judged.values() for sp, sl in v if not sl > s.sky_flat_slope_db_per_deg
    ]
    assert min(flat_slopes) >= 1.4 * s.sky_flat_spread_db
    assert all(math.isfinite(sp) for v in judged.values() for sp, _ in v)
