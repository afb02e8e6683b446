"""`rampart audit verify` finds each kind of tampering, at the right place."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

from drivers.audit_log import AuditLog, verify_file


def make_log(path, n=10):
    log = AuditLog(path, fsync=False)
    heads = [
        log.append("alert", 1_000 + i, {"alert_id": f"A{i}", "summary": f"alert {i}"})
        for i in range(n)
    ]
    log.close()
    return heads


def lines(path):
    return path.read_bytes().split(b"\n")[:-1]


def write(path, ls, trailing=True):
    path.write_bytes(b"\n".join(ls) + (b"\n" if trailing else b""))


def verify_cli(path, *extra):
    return subprocess.run(
        [sys.executable, "-m", "fusion", "audit", "verify", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_intact_log_verifies_and_continues(tmp_path):
    p = tmp_path / "audit.log"
    heads = make_log(p, 5)
    log = AuditLog(p, fsync=False)  # reopening continues the chain
    assert log.seq == 5 and log.head == heads[-1]
    log.append("config_load", 2_000, {"sha256": "ab" * 32})
    log.close()
    out = verify_cli(p)
    assert out.returncode == 0 and "intact, 6 records" in out.stdout


def test_flipped_byte_found_at_its_record(tmp_path):
    p = tmp_path / "audit.log"
    make_log(p)
    ls = lines(p)
    ls[3] = ls[3].replace(b"alert 3", b"alert 8")  # a plausible edit, still valid JSON
    write(p, ls)
    out = verify_cli(p)
    assert out.returncode == 1
    assert "line 4: record 4 does not match its hash (edited)" in out.stdout
    assert "the 3 records before it are intact" in out.stdout


def test_flipped_byte_breaking_json_found(tmp_path):
    p = tmp_path / "audit.log"
    make_log(p)
    data = bytearray(p.read_bytes())
    at = data.index(b'"seq":6') - 1
    data[at] ^= 0x01
    p.write_bytes(bytes(data))
    result = verify_file(p)
    assert not result.ok and result.line == 6 and "edited" in result.problem


def test_deleted_record_found(tmp_path):
    p = tmp_path / "audit.log"
    make_log(p)
    ls = lines(p)
    del ls[4]
    write(p, ls)
    result = verify_file(p)
    assert not result.ok and result.line == 5
    assert "record 6 follows record 4 (records 5..5 deleted)" in result.problem


def test_swapped_pair_found(tmp_path):
    p = tmp_path / "audit.log"
    make_log(p)
    ls = lines(p)
    ls[6], ls[7] = ls[7], ls[6]
    write(p, ls)
    result = verify_file(p)
    assert not result.ok and result.line == 7 and "record 8 follows record 6" in result.problem


def test_truncated_tail_found(tmp_path):
    p = tmp_path / "audit.log"
    make_log(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 40])
    result = verify_file(p)
    assert not result.ok and result.line == 10 and "cut off (truncated tail)" in result.problem
    assert result.records == 9


def test_whole_records_cut_from_the_end_found_against_published_head(tmp_path):
    p = tmp_path / "audit.log"
    heads = make_log(p)
    write(p, lines(p)[:7])
    assert verify_file(p).ok  # the chain alone cannot tell...
    out = verify_cli(p, "--head", f"10:{heads[-1]}")  # ...the head the SOC saw can
    assert out.returncode == 1 and "ends at record 7, before the published head 10" in out.stdout


def test_rewritten_history_found_against_published_head(tmp_path):
    p = tmp_path / "audit.log"
    heads = make_log(p)
    # An attacker rebuilds a consistent chain with different content.
    p.unlink()
    log = AuditLog(p, fsync=False)
    for i in range(10):
        log.append("alert", 1_000 + i, {"alert_id": f"A{i}", "summary": "nothing to see"})
    log.close()
    assert verify_file(p).ok
    result = verify_file(p, (10, heads[-1]))
    assert not result.ok and "history rewritten" in result.problem


def test_a_damaged_log_is_moved_aside_never_appended_to(tmp_path):
    p = tmp_path / "audit.log"
    heads = make_log(p)
    ls = lines(p)
    rec = json.loads(ls[2])
    rec["data"]["summary"] = "changed"
    ls[2] = json.dumps(rec).encode()
    write(p, ls)
    damaged = p.read_bytes()
    log = AuditLog(p, fsync=False)  # starts: the damage is kept aside, not laundered
    assert log.opened_with is not None and "moved it aside" in log.opened_with
    (aside,) = tmp_path.glob("audit.log.damaged-*")
    assert aside.read_bytes() == damaged
    assert log.open_details["last_good_seq"] == 2
    assert log.open_details["last_good_hash"] == heads[1]
    assert log.open_details["damaged_sha256"] == hashlib.sha256(damaged).hexdigest()
    log.append("alert", 5_000, {"alert_id": "B1"})
    log.close()
    first = json.loads(lines(p)[0])
    assert first["type"] == "audit_restarted" and first["seq"] == 3 and first["prev"] == heads[1]
    out = verify_cli(p)
    assert out.returncode == 0 and "intact, 2 records, head 4:" in out.stdout
    assert "restarted after damage: continues from record 2:" in out.stdout
    assert "moved aside earlier" in out.stdout
