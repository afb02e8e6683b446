"""Every simulated scenario is a valid recording per the contract, checked WITHOUT project code.

The recording is written by ``rampart simulate`` (a subprocess) and read back
here with plain polars, pyubx2, cobs, zlib, struct and json only: if Rampart's
own decoders and the contract ever disagree, this test says so.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import tomllib
import zlib

import polars as pl
import pytest
from cobs import cobs
from pyubx2 import UBXReader
from pyubx2.ubxtypes_core import ERR_RAISE, NMEA_PROTOCOL, UBX_PROTOCOL, VALCKSUM

SCENARIOS = [
    "approach",
    "swarm",
    "birds",
    "aircraft",
    "far_drone",
    "jamming",
    "spoofing",
    "spoofed_start",
    "emp",
    "emp_family",
    "switching",
    "coordinated",
    "soaring_birds",
    "helicopter",
    "quiet_hour",
]
FEED_SCHEMA = {
    "t_rx_ns": pl.Int64,
    "transport": pl.String,
    "channel": pl.String,
    "payload": pl.Binary,
}
TRUTH_SCHEMA = {
    "object_id": pl.String,
    "kind": pl.String,
    "t_start_ns": pl.Int64,
    "t_end_ns": pl.Int64,
    "must_alert": pl.Boolean,
    "deadline_ns": pl.Int64,
}
TRUTH_KINDS = {
    "drone_approach",
    "gnss_jamming",
    "gnss_spoofing",
    "power_transient_emp",
    "bird",
    "aircraft",
    "drone_far",
    "switching",
    "sag",
    "fault",
    "clutter",
}
# Each scenario at its shortest length that still holds all its events.
MIN_DURATION_S = {
    "approach": 240,
    "swarm": 240,
    "coordinated": 240,
    "jamming": 150,
    "spoofing": 150,
    "emp": 30,
    "helicopter": 120,
    "quiet_hour": 120,
}
HEADER = struct.Struct("<HBBHIqIBBH")


def check_power_frame(frame: bytes, where: str) -> dict:
    assert len(frame) >= HEADER.size + 4, where
    magic, version, flags, board, seq, t0_ns, fs_hz, n_ch, reserved, n_samp = HEADER.unpack_from(
        frame
    )
    assert magic == 0x5750 and version == 1 and reserved == 0, where
    assert len(frame) == HEADER.size + 4 * n_ch + 2 * n_ch * n_samp + 4, where
    (crc,) = struct.unpack_from("<I", frame, len(frame) - 4)
    assert crc == zlib.crc32(frame[:-4]), f"{where}: bad CRC"
    return {"board": board, "seq": seq, "fs": fs_hz, "flags": flags, "t0": t0_ns}


def check_recording(rec) -> None:
    site = tomllib.loads((rec / "site.toml").read_text())
    sensors = {s["id"]: s for s in site["sensors"]}
    files = sorted((rec / "feeds").glob("*.parquet"))
    assert files
    df = pl.concat([pl.read_parquet(f) for f in files])
    assert dict(df.schema) == FEED_SCHEMA
    assert df["t_rx_ns"].is_sorted()
    assert set(df["transport"].unique()) <= {"mqtt", "serial"}
    for (transport, channel), part in df.group_by(["transport", "channel"], maintain_order=True):
        payloads = part["payload"].to_list()
        if transport == "serial":
            sensor = sensors[channel]
            stream = b"".join(payloads)
            if sensor["kind"] == "gnss":
                check_gnss_stream(stream, channel)
            else:
                assert sensor["kind"] == "power"
                frames = stream.split(b"\x00")
                assert frames[-1] == b"", f"{channel}: stream ends mid-frame"
                seqs = [check_power_frame(cobs.decode(f), channel)["seq"] for f in frames[:-1]]
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{channel}: seq gap"
            continue
        stream_name = channel.rsplit("/", 1)[-1]
        assert channel.startswith(f"rampart/{site['site']['id']}/")
        if stream_name == "raw":
            check_gnss_stream(b"".join(payloads), channel)
        elif stream_name == "waveform":
            for p in payloads:
                check_power_frame(p, channel)
        else:
            for p in payloads:
                msg = json.loads(p.decode("utf-8"))
                assert (
                    isinstance(msg, dict)
                    and isinstance(msg["sensor"], str)
                    and isinstance(msg["t"], float | int)
                )
                check_json(stream_name, msg, channel)
    truth = pl.read_parquet(rec / "truth.parquet")
    assert dict(truth.schema) == TRUTH_SCHEMA
    assert set(truth["kind"].unique()) <= TRUTH_KINDS
    assert (truth["t_end_ns"] >= truth["t_start_ns"]).all()
    tracks = pl.read_parquet(rec / "truth_tracks.parquet")
    assert tracks.columns == ["t_ns", "object_id", "class", "x_m", "y_m", "z_m"]


def check_json(stream: str, msg: dict, where: str) -> None:
    if stream == "plots":
        assert isinstance(msg["scan"], int) and isinstance(msg["plots"], list), where
        for p in msg["plots"]:
            assert p["range_m"] >= 0 and 0 <= p["az_deg"] < 360, where
    elif stream == "detections":
        for d in msg["detections"]:
            assert isinstance(d["freq_hz"], float | int) and isinstance(
                d["rssi_dbm"], float | int
            ), where
    elif stream == "spectrum":
        assert msg["bin_hz"] > 0 and msg["f_start_hz"] > 0 and len(msg["power_dbm"]) > 0, where
    elif stream == "events":
        assert msg["event"] in {
            "ats_transfer",
            "breaker_trip",
            "breaker_close",
            "ups_on_battery",
            "ups_on_mains",
            "generator_start",
            "generator_stop",
        }, where
    else:
        raise AssertionError(f"{where}: stream {stream!r} is not in the contract")


def check_gnss_stream(stream: bytes, where: str) -> None:
    reader = UBXReader(
        io.BytesIO(stream),
        protfilter=NMEA_PROTOCOL | UBX_PROTOCOL,
        quitonerror=ERR_RAISE,
        validate=VALCKSUM,
    )
    n = 0
    consumed = 0
    for raw, _parsed in reader:
        n += 1
        consumed += len(raw)
    assert n > 0, where
    assert consumed == len(stream), (
        f"{where}: {len(stream) - consumed} bytes outside valid NMEA/UBX frames"
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_recording_is_valid_per_contract(scenario, tmp_path):
    rec = tmp_path / scenario
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fusion",
            "simulate",
            scenario,
            "--out",
            str(rec),
            "--seed",
            "7",
            "--duration",
            str(MIN_DURATION_S.get(scenario, 60)),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    check_recording(rec)
