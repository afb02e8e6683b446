"""Recordings: writer/reader round trip, rotation, and a foreign implementation's sample."""

from __future__ import annotations

import itertools

import polars as pl

from drivers.recording import RecordingReader, RecordingWriter


def test_round_trip_with_rotation(tmp_path):
    rows = [
        (1_000 + i, "mqtt" if i % 2 else "serial", f"ch{i % 3}", bytes([i % 256]) * (i % 50))
        for i in range(1000)
    ]
    with RecordingWriter(tmp_path / "rec", "[site]\n", rotate_rows=128) as w:
        for r in rows:
            w.append(*r)
    reader = RecordingReader(tmp_path / "rec")
    assert len(reader.segments) == 8
    assert [p.name for p in reader.segments] == sorted(p.name for p in reader.segments)
    back = [(m.t_rx_ns, m.transport, m.channel, m.payload) for m in reader.messages()]
    assert back == rows
    assert reader.row_count() == 1000
    assert reader.time_span_ns() == (1000, 1999)
    df = pl.read_parquet(reader.segments[0])
    assert df.schema == pl.Schema(
        {"t_rx_ns": pl.Int64, "transport": pl.Utf8, "channel": pl.Utf8, "payload": pl.Binary}
    )


def test_rows_going_back_in_time_are_clamped(tmp_path):
    with RecordingWriter(tmp_path / "rec", "") as w:
        w.append(10, "mqtt", "a", b"1")
        w.append(5, "mqtt", "a", b"2")
    times = [m.t_rx_ns for m in RecordingReader(tmp_path / "rec").messages()]
    assert times == [10, 10]


def test_foreign_sample_reads(sample_recording):
    reader = RecordingReader(sample_recording)
    msgs = list(reader.messages())
    assert len(msgs) == pl.read_parquet(sample_recording / "feeds" / "seg-0000.parquet").height
    assert all(a.t_rx_ns <= b.t_rx_ns for a, b in itertools.pairwise(msgs))
    assert {m.transport for m in msgs} == {"mqtt", "serial"}
    assert reader.truth() is None
