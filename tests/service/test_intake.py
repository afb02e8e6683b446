"""The intake's bounded per-source queues: a flood drops only its own oldest messages."""

from __future__ import annotations

import threading

from fusion.cli.intake import Intake, Received


def item(i: int, ch: str) -> Received:
    return Received(i, "mqtt", ch, b"x")


def test_flooding_source_drops_its_oldest_and_others_keep_flowing():
    intake = Intake(per_source=100)
    for i in range(10_000):
        intake.put("radar", item(i, "radar"))
        if i % 100 == 0:
            intake.put("rf", item(i, "rf"))
    assert intake.dropped["radar"] == 9_900 and intake.dropped["rf"] == 0
    assert intake.size == 200
    batch = intake.take(1000, 0.0)
    radar = [r.t_rx_ns for r in batch if r.channel == "radar"]
    rf = [r.t_rx_ns for r in batch if r.channel == "rf"]
    assert radar == list(range(9_900, 10_000))  # the newest kept, in order
    assert len(rf) == 100  # every message of the quiet source got through
    assert intake.size == 0


def test_round_robin_serves_every_source_in_a_small_batch():
    intake = Intake(per_source=1000)
    for i in range(500):
        intake.put("flood", item(i, "flood"))
    intake.put("gnss", item(0, "gnss"))
    batch = intake.take(4, 0.0)
    assert "gnss" in [r.channel for r in batch]


def test_made_up_sources_cannot_grow_memory():
    intake = Intake(per_source=10, max_sources=8)
    for i in range(5000):
        intake.put(f"rampart/x/radar/fake-{i}/plots", item(i, "fake"))
    assert len(intake.depth()) <= 9
    assert intake.size <= 9 * 10


def test_take_waits_for_a_producer_thread():
    intake = Intake()
    t = threading.Timer(0.05, lambda: intake.put("a", item(1, "a")))
    t.start()
    got = intake.take(10, 5.0)
    t.join()
    assert [r.t_rx_ns for r in got] == [1]
