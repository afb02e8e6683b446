"""The keyring under the two-person rule (issue #12 finding 5): write access to the keyring
directory does not make a signer; keys count only when pinned or endorsed by enough
already trusted keys."""

from __future__ import annotations

import json
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.config_trust import keygen, sign
from drivers.keyring import endorse, load_view, pin_path, resolve, scan_keyring
from tests.security.trust_helpers import ListSink, close, flushed, make_keys, make_service, signed


def rampart(*args):
    return subprocess.run(
        [sys.executable, "-m", "fusion", *args], capture_output=True, text=True, timeout=60
    )


def keyring_alerts(sink, severity=None):
    return [a for a in sink.kinds("keyring_changed") if severity is None or a.severity == severity]


def test_first_start_pins_the_keyring_and_says_so(tmp_path):
    ring, keys = make_keys(tmp_path)
    cfg = signed(tmp_path / "site.toml", keys["alice"], keys["bob"])
    sink = ListSink()
    service = make_service(cfg, ring, sink)
    flushed(service)
    close(service)
    (pinned,) = keyring_alerts(sink)
    assert pinned.severity == "high" and "Keyring pinned: 2 keys" in pinned.summary
    pin = pin_path(tmp_path / "state")
    assert oct(pin.stat().st_mode & 0o777) == "0o600" and len(json.loads(pin.read_text())) == 2
    sink = ListSink()
    service = make_service(cfg, ring, sink)  # a restart: nothing changed, nothing alerted
    flushed(service)
    close(service)
    assert not keyring_alerts(sink)


def test_insider_adds_two_keys_and_signs_alone_refused(tmp_path):
    ring, keys = make_keys(tmp_path, names=("alice", "bob", "m1", "m2"))
    cfg = signed(tmp_path / "site.toml", keys["alice"], keys["bob"], serial=1)
    sink = ListSink()
    service = make_service(cfg, ring, sink)
    try:
        good = service.pipeline.config_sha256
        port = int(service.site.section("http")["listen"].rsplit(":", 1)[1])
        for name in ("m1", "m2"):  # the insider can write the keyring...
            (ring / f"{name}.pub").write_bytes((tmp_path / f"{name}.pub").read_bytes())
        endorse(ring / "m1.pub", keys["m2"])  # ...and endorse their keys with each other
        endorse(ring / "m2.pub", keys["m1"])
        endorse(ring / "m2.pub", keys["m2"])  # and with itself
        signed(cfg, keys["m1"], keys["m2"], serial=2, skew=5000.0, port=port)
        service.reload()
        assert service.pipeline.config_sha256 == good
        refused = sink.kinds("config_refused")
        assert refused and "0 valid signature(s)" in refused[-1].summary
        ignored = [a for a in keyring_alerts(sink, "high") if "file" in a.details]
        assert len(ignored) == 2 and all("m" in a.details["file"] for a in ignored)
        assert all("endorsed by 0 trusted key(s); 2 required" in a.summary for a in ignored)
        assert any("cannot vouch for itself" in a.summary for a in ignored)
        service.reload()  # the same keyring again: not alerted again
        assert len([a for a in keyring_alerts(sink, "high") if "file" in a.details]) == 2
    finally:
        close(service)
    out = rampart(
        "config", "verify", str(cfg), "--keyring", str(ring), "--state", str(tmp_path / "state")
    )
    assert out.returncode == 1 and "m1.pub" in out.stdout
    # Without the service's pin, `config verify` counts every key in the directory, and says so.
    out = rampart("config", "verify", str(cfg), "--keyring", str(ring))
    assert out.returncode == 0 and "note: no --state" in out.stdout


def test_properly_endorsed_key_counts_and_a_removed_key_does_not(tmp_path):
    ring, keys = make_keys(tmp_path, names=("alice", "bob", "carol"))
    cfg = signed(tmp_path / "site.toml", keys["alice"], keys["bob"], serial=1)
    sink = ListSink()
    service = make_service(cfg, ring, sink)
    try:
        port = int(service.site.section("http")["listen"].rsplit(":", 1)[1])
        (ring / "carol.pub").write_bytes((tmp_path / "carol.pub").read_bytes())
        out = rampart("keyring", "endorse", str(ring / "carol.pub"), "--key", str(keys["alice"]))
        assert out.returncode == 0, out.stderr
        signed(cfg, keys["alice"], keys["carol"], serial=2, port=port)
        service.reload()  # one endorsement: carol does not count yet
        assert service.site.serial == 1
        assert any("endorsed by 1 trusted key(s); 2 required" in a.summary for a in sink.alerts)
        endorse(ring / "carol.pub", keys["bob"])
        service.reload()  # two: carol is trusted, pinned, and her signature counts
        assert service.site.serial == 2
        added = [a for a in keyring_alerts(sink, "medium") if "added" in a.summary]
        assert len(added) == 1 and len(added[0].details["endorsed_by"]) == 2
        pin = json.loads(pin_path(tmp_path / "state").read_text())
        assert len(pin) == 3
        status = rampart(
            "keyring", "status", "--keyring", str(ring), "--state", str(tmp_path / "state")
        )
        assert status.returncode == 0 and "3 trusted, 0 ignored" in status.stdout
        assert "endorsed by" not in status.stdout  # pinned now
        (ring / "bob.pub").unlink()  # bob leaves
        signed(cfg, keys["alice"], keys["bob"], serial=3, port=port)
        service.reload()
        assert service.site.serial == 2  # bob's signature no longer counts
        removed = [a for a in keyring_alerts(sink) if "removed" in a.summary]
        assert len(removed) == 1 and removed[0].severity == "medium"
        assert len(json.loads(pin_path(tmp_path / "state").read_text())) == 2
        (ring / "bob.pub").write_bytes((tmp_path / "bob.pub").read_bytes())
        service.reload()  # put back: not pinned any more, needs endorsements again
        assert service.site.serial == 2
    finally:
        close(service)


def test_junk_signature_files_and_corrupt_pin_never_raise(tmp_path):
    ring, _ = make_keys(tmp_path)
    (ring / "alice.pub.sig").write_bytes(b"\xff\xfe\n[]\n{}\n")
    (ring / "empty.pub").write_bytes(b"")
    (ring / "dir.pub").mkdir()
    state = tmp_path / "state"
    state.mkdir()
    view = load_view(ring, state, 2)  # no pin yet: trust on first use
    assert set(view.trusted) and view.first_pin
    assert {i.path.rsplit("/", 1)[-1] for i in view.ignored} >= {"empty.pub", "dir.pub"}
    pin_path(state).write_bytes(b"\x00not json")
    view = load_view(ring, state, 2)  # a damaged pin pins nothing; never trust on first use again
    assert not view.trusted and not view.first_pin and view.problems


# --- the rule itself, against a naive model ---------------------------------------------------

N_KEYS = 5
_PRIVATE: list = []  # (directory, key ids) made once: key generation is not what is tested


def _private_keys(tmp_path_factory):
    if not _PRIVATE:
        d = tmp_path_factory.mktemp("private")
        _PRIVATE.append((d, [keygen(d / f"k{i}") for i in range(N_KEYS)]))
    return _PRIVATE[0]


@settings(max_examples=30, deadline=None)
@given(
    pinned=st.sets(st.integers(0, N_KEYS - 1)),
    edges=st.sets(st.tuples(st.integers(0, N_KEYS - 1), st.integers(0, N_KEYS - 1)), max_size=12),
    present=st.sets(st.integers(0, N_KEYS - 1), min_size=1),
    need=st.integers(1, 3),
)
def test_resolve_matches_a_naive_fixpoint(tmp_path_factory, pinned, edges, present, need):
    private, ids = _private_keys(tmp_path_factory)
    ring = tmp_path_factory.mktemp("ring")
    for i in present:
        (ring / f"key{i}.pub").write_bytes((private / f"k{i}.pub").read_bytes())
    for endorser, endorsed in edges:
        if endorsed in present:
            endorse(ring / f"key{endorsed}.pub", private / f"k{endorser}")
    keys, ignored, _ = scan_keyring(ring)
    pin = {ids[i]: keys[ids[i]].raw_b64 for i in pinned if i in present}
    view = resolve(keys, pin, need, ignored)
    # Naive model: start from pinned-and-present; add a key while it has `need` distinct
    # endorsers that are trusted and not itself.
    trusted = {i for i in pinned if i in present}
    while True:
        more = {
            j
            for j in present - trusted
            if len({e for e, t in edges if t == j and e in trusted and e != j}) >= need
        }
        if not more:
            break
        trusted |= more
    assert set(view.trusted) == {ids[i] for i in trusted}
    assert set(view.pin) == set(view.trusted)
    assert {i.key_id for i in view.ignored if "required" in i.reason} == {
        ids[i] for i in present - trusted
    }
    assert {kid for kid, _ in view.added} == {ids[i] for i in trusted - pinned}


def test_config_sign_survives_a_damaged_sig(tmp_path):
    _, keys = make_keys(tmp_path)
    cfg = signed(tmp_path / "site.toml")
    (tmp_path / "site.toml.sig").write_bytes(b"\xff\xfe\n")
    sign(cfg, keys["alice"])
    assert len((tmp_path / "site.toml.sig").read_text().splitlines()) == 1
