"""The incident manager: lifecycle, de-duplication, throttling, storms, acknowledgements."""

from __future__ import annotations

import threading

import pytest

from fusion.alerts import encode_alert
from fusion.config import ConfigError, parse_config
from fusion.detector import Finding
from fusion.engine import Engine
from fusion.incidents import Acknowledgement, IncidentBook, IncidentSettings
from fusion.records import SwitchgearEvent
from fusion.rejects import RejectLedger

NS = 1_000_000_000
T0 = 1_767_225_600 * NS


def finding(key="k1", state="open", kind="sensor_fault", severity="medium", summary="s", **kw):
    return Finding(
        key=key,
        state=state,
        kind=kind,
        severity=severity,
        confidence=kw.pop("confidence", 0.9),
        sensors=kw.pop("sensors", ("radar-1",)),
        t_event_ns=kw.pop("t_event_ns", T0),
        summary=summary,
        details=kw.pop("details", {}),
    )


def at(s: float) -> int:
    return T0 + int(s * NS)


def test_lifecycle_keeps_one_incident_id_and_counts_seq():
    book = IncidentBook("site")
    a = book.apply("det", finding(), at(0))
    b = book.apply("det", finding(state="update", summary="later"), at(10))
    c = book.apply("det", finding(state="closed", summary="over"), at(20))
    msgs = a + b + c
    assert [m.state for m in msgs] == ["open", "update", "closed"]
    assert [m.seq for m in msgs] == [1, 2, 3]
    assert len({m.incident_id for m in msgs}) == 1
    assert len({m.alert_id for m in msgs}) == 3
    assert all(m.t_event_ns == T0 for m in msgs)
    again = book.apply("det", finding(t_event_ns=at(30)), at(30))
    assert again[0].state == "open" and again[0].incident_id != a[0].incident_id
    assert book.apply("det", finding(key="never", state="closed"), at(31)) == []


def test_an_open_for_an_open_key_is_an_update_and_exact_repeats_are_dropped():
    book = IncidentBook("site")
    book.apply("det", finding(), at(0))
    assert book.apply("det", finding(state="open"), at(10)) == []  # says nothing new
    assert book.duplicates == 1
    upd = book.apply("det", finding(state="open", summary="changed"), at(11))
    assert [(m.state, m.seq) for m in upd] == [("update", 2)]


def test_updates_are_throttled_but_the_newest_goes_out_later():
    book = IncidentBook("site", IncidentSettings(update_interval_s=5.0))
    book.apply("det", finding(), at(0))
    held = [
        book.apply("det", finding(state="update", summary=f"v{i}"), at(1 + i)) for i in range(3)
    ]
    assert held == [[], [], []] and book.throttled == 3
    # another incident's finding after the interval lets the held-back update out first
    out = book.apply("det", finding(key="k2"), at(6))
    assert [(m.state, m.summary) for m in out] == [("update", "v2"), ("open", "s")]
    assert out[0].t_detect_ns == at(6)


def test_a_newer_update_supersedes_the_held_back_one():
    book = IncidentBook("site", IncidentSettings(update_interval_s=5.0))
    book.apply("det", finding(), at(0))
    assert book.apply("det", finding(state="update", summary="stale"), at(1)) == []
    out = book.apply("det", finding(state="update", summary="fresh"), at(6))
    assert [(m.state, m.seq, m.summary) for m in out] == [("update", 2, "fresh")]


def test_severity_or_attack_status_changes_pass_the_throttle():
    book = IncidentBook("site")
    book.apply("det", finding(kind="power_transient", details={"subtype": "surge"}), at(0))
    up = book.apply(
        "det",
        finding(
            state="update", kind="power_transient", severity="high", details={"subtype": "surge"}
        ),
        at(0.5),
    )
    assert [m.severity for m in up] == ["high"]
    emp = book.apply(
        "det",
        finding(
            state="update", kind="power_transient", severity="high", details={"subtype": "emp_like"}
        ),
        at(1.0),
    )
    assert [m.details["subtype"] for m in emp] == ["emp_like"]
    down = book.apply(
        "det",
        finding(
            state="update", kind="power_transient", severity="low", details={"subtype": "emp_like"}
        ),
        at(1.5),
    )
    assert [m.severity for m in down] == ["low"]


def test_a_close_supersedes_a_held_back_update_and_finish_flushes_the_rest():
    book = IncidentBook("site", IncidentSettings(update_interval_s=5.0))
    book.apply("det", finding(), at(0))
    book.apply("det", finding(key="k2"), at(0))
    assert book.apply("det", finding(state="update", summary="x"), at(1)) == []
    assert book.apply("det", finding(key="k2", state="update", summary="y"), at(1)) == []
    closed = book.apply("det", finding(state="closed", summary="bye"), at(2))
    assert [(m.state, m.summary) for m in closed] == [("closed", "bye")]
    final = book.flush(at(3))
    assert [(m.state, m.summary, m.t_detect_ns) for m in final] == [("update", "y", at(3))]
    assert book.flush(at(4)) == []


def test_a_flood_becomes_one_storm_incident_with_counts():
    settings = IncidentSettings(storm_threshold=10, storm_window_s=60.0)
    book = IncidentBook("site", settings)
    alerts = []
    for i in range(2000):  # 2000 detections in 40 s, each its own key, each closed 0.1 s later
        t = 0.02 * i
        alerts += book.apply(
            "pq",
            finding(
                f"ev{i}",
                kind="power_transient",
                severity="low",
                t_event_ns=at(t),
                details={"subtype": "surge"},
            ),
            at(t),
        )
        alerts += book.apply(
            "pq",
            finding(
                f"ev{i}",
                state="closed",
                kind="power_transient",
                severity="low",
                details={"subtype": "surge"},
            ),
            at(t + 0.1),
        )
    # one "high" at the end of the flood raises the storm's severity at once
    big = book.apply(
        "pq",
        finding("big", kind="power_transient", severity="high", details={"subtype": "surge"}),
        at(41),
    )
    assert (big[-1].severity, "storm" in big[-1].details) == ("high", True)
    alerts += big
    alerts += book.apply(
        "pq",
        finding(
            "big",
            state="closed",
            kind="power_transient",
            severity="high",
            details={"subtype": "surge"},
        ),
        at(42),
    )
    alerts += book.apply("other", finding("quiet"), at(200))  # the flood has stopped for a window
    assert len(alerts) < 60, len(alerts)
    storm = [a for a in alerts if "storm" in a.details]
    assert len({a.incident_id for a in storm}) == 1
    assert storm[0].state == "open" and storm[-1].state == "closed"
    assert storm[-1].details["storm"]["incidents"] == 2000 + 1 - 10
    assert storm[-1].details["storm"]["open"] == 0
    assert storm[-1].t_event_ns == at(0.2)  # first absorbed detection
    individual = {
        a.incident_id for a in alerts if "storm" not in a.details and a.kind != "sensor_fault"
    }
    assert len(individual) == 10
    assert book.storm_absorbed == 2 * (2000 - 10) + 2


def test_acknowledgements_are_recorded_on_the_incident_and_carried_by_later_messages():
    book = IncidentBook("site", IncidentSettings(update_interval_s=0))
    (opened,) = book.apply("det", finding(), at(0))
    ack = Acknowledgement(opened.incident_id, "analyst-7", "mqtt", at(1), "team dispatched")
    done = threading.Event()
    threading.Thread(target=lambda: (book.acknowledge(ack), done.set())).start()
    assert done.wait(5)
    view = book.incident(opened.incident_id)
    assert view is not None and view.acks == (ack,) and view.state == "open"
    (upd,) = book.apply("det", finding(state="update", summary="more"), at(2))
    assert upd.details["ack"]["by"] == "analyst-7" and upd.details["ack"]["count"] == 1
    (closed,) = book.apply("det", finding(state="closed"), at(3))
    assert closed.details["ack"]["via"] == "mqtt"
    # a reply that arrives after the close is still recorded on the (closed) incident
    assert book.acknowledge(Acknowledgement(opened.incident_id, "ticket-1", "webhook", at(4)))
    assert len(book.incident(opened.incident_id).acks) == 2
    assert not book.acknowledge(Acknowledgement("01NOPE", "x", "mqtt", at(5)))
    assert book.unknown_acks == 1


def test_same_findings_give_byte_identical_alerts():
    def run():
        book = IncidentBook("site")
        out = []
        for i in range(50):
            out += book.apply(
                "det",
                finding(
                    f"k{i % 7}",
                    state=("open", "update", "closed")[i % 3],
                    summary=f"n{i}",
                    t_event_ns=at(i),
                ),
                at(i * 0.7),
            )
        out += book.flush(at(100))
        return b"\n".join(encode_alert(a) for a in out)

    assert run() == run()


class _Scripted:
    """A detector that says what it is told, at given record times."""

    name = "scripted"
    consumes = (SwitchgearEvent,)

    def __init__(self, script):
        self.script = dict(script)

    def on_record(self, record):
        return self.script.get(record.t_ns, [])

    def on_tick(self, watermark_ns):
        return []


def test_engine_sends_held_back_updates_at_the_end_of_input():
    det = _Scripted({at(0): [finding()], at(1): [finding(state="update", summary="last word")]})
    alerts = []
    engine = Engine([det], IncidentBook("site"), RejectLedger(), alerts.append)
    for s in (0, 1):
        engine.push(SwitchgearEvent("ats-1", at(s), at(s), "ats_transfer", "A"))
        engine.advance(at(s))
    engine.finish()
    assert [(a.state, a.summary) for a in alerts] == [("open", "s"), ("update", "last word")]


def test_settings_come_from_the_site_configuration_and_bad_keys_are_named():
    base = '[site]\nid = "s"\nlat = 52.0\nlon = 4.0\nalt_m = 0.0\n'
    site = parse_config(base + "[incidents]\nupdate_interval_s = 2\n[correlation]\nwindow_s = 60\n")
    book = IncidentBook.for_site(site)
    assert book.settings.update_interval_s == 2.0
    assert book.settings.correlation.window_s == 60.0
    assert book.settings.storm_threshold == 10
    bad = parse_config(
        base + "[incidents]\nstorm_threshold = -1\nbogus = 1\n[correlation]\nmin_kinds = 5\n"
    )
    with pytest.raises(ConfigError) as err:
        IncidentBook.for_site(bad)
    text = "\n".join(err.value.problems)
    assert "incidents.storm_threshold" in text
    assert "incidents.bogus: unknown key" in text
    assert "correlation.min_kinds" in text
