"""Two-person integrity for the site configuration: Ed25519 signatures and a trusted keyring.

Detection thresholds, zones, sensor lists and sink targets decide what the
site can see, so no single person may change them silently. A configuration
is accepted only when ``CONFIG.sig`` holds valid signatures by at least M
distinct keys (default 2) that the keyring trusts (``drivers.keyring``: keys
pinned by the service, or endorsed by M already trusted keys). There are no
exceptions by content: a change that disables a detector or raises a
threshold needs the same M signatures as any other.

Files:
- ``KEY``: Ed25519 private key, PKCS#8 PEM, mode 0600 (``rampart keygen``);
- ``KEY.pub``: its public key, SubjectPublicKeyInfo PEM;
- ``CONFIG.sig``: one JSON object per line, one line per signer:
  ``{"key_id", "public_key", "sha256", "signature"}``. The signature is over
  ``b"rampart-config-v1\\n" + sha256(CONFIG bytes)``: the exact bytes, so any
  edit (a comment, a space) needs fresh signatures.

The service reads a configuration and its ``.sig`` once, as bytes
(``read_signed``), verifies those bytes (``verify_bytes``) and parses the same
bytes, so a file swapped while it loads cannot run under someone else's
signatures. A damaged ``.sig`` line (not UTF-8, not JSON) is a problem named
with its line, never an exception; a ``.sig`` with such a line is refused whole
(no signing tool writes one: someone edited the file).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DOMAIN = b"rampart-config-v1\n"
DEFAULT_MIN_SIGNATURES = 2
MAX_SIG_BYTES = 1 << 20  # a .sig larger than this is not read (one line per signer is ~250 bytes)


class TrustError(Exception):
    """A key, keyring or signature file that cannot be used; the message says which and why."""


def config_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def raw_public(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(pub: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(pub)).hexdigest()[:16]


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Writes ``data`` to ``path`` so that a reader (or a crash) sees the old or the new
    bytes, never a mix: a temporary file beside it, fsynced, then renamed over it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)  # the rename itself survives a power cut
    except OSError:
        pass
    finally:
        os.close(dfd)


def keygen(out: Path) -> str:
    """Writes an Ed25519 private key to ``out`` (0600) and its public half to ``out.pub``."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub = key.public_key()
    Path(f"{out}.pub").write_bytes(
        pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_id(pub)


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise TrustError(f"{path}: not a readable private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise TrustError(f"{path}: not an Ed25519 key")
    return key


def sig_path(config: Path) -> Path:
    return Path(f"{config}.sig")


def read_signed(path: Path) -> tuple[bytes, bytes | None]:
    """A file and its ``.sig``, each read once as bytes (None: no ``.sig``).

    OSError propagates for the file itself (missing, unreadable); a ``.sig``
    that is missing is None, one that cannot be read is OSError too."""
    data = Path(path).read_bytes()
    try:
        with open(sig_path(path), "rb") as f:
            sig = f.read(MAX_SIG_BYTES + 1)
    except FileNotFoundError:
        return data, None
    return data, sig


def parse_signatures(sig: bytes | None, source: str) -> tuple[list[tuple[int, dict]], list[str]]:
    """The signature objects of a ``.sig`` file's bytes, by line number, and one problem
    per line that is not one (not UTF-8, not JSON, not an object). Never raises."""
    if sig is None:
        return [], []
    problems: list[str] = []
    if len(sig) > MAX_SIG_BYTES:
        return [], [f"{source}: larger than {MAX_SIG_BYTES} bytes; not read"]
    entries: list[tuple[int, dict]] = []
    for n, raw in enumerate(sig.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{source}:{n}: not UTF-8 (byte {exc.start}); line ignored")
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            problems.append(f"{source}:{n}: not JSON ({exc}); line ignored")
            continue
        if not isinstance(entry, dict):
            problems.append(f"{source}:{n}: not a signature object; line ignored")
            continue
        entries.append((n, entry))
    return entries, problems


def signature_entry(key: Ed25519PrivateKey, digest: bytes, domain: bytes) -> dict:
    pub = key.public_key()
    return {
        "key_id": key_id(pub),
        "public_key": base64.b64encode(raw_public(pub)).decode(),
        "sha256": digest.hex(),
        "signature": base64.b64encode(key.sign(domain + digest)).decode(),
    }


def add_signature(target: Path, key_path: Path, domain: bytes) -> str:
    """Adds (or replaces) this key's signature over ``target``'s bytes in ``target.sig``
    (written atomically); lines that are not signatures are dropped. Returns the key id."""
    key = load_private(key_path)
    entry = signature_entry(key, hashlib.sha256(Path(target).read_bytes()).digest(), domain)
    try:
        old = sig_path(target).read_bytes()
    except FileNotFoundError:
        old = None
    entries, _ = parse_signatures(old, str(sig_path(target)))
    sigs = [e for _, e in entries if e.get("key_id") != entry["key_id"]] + [entry]
    text = "".join(json.dumps(s, sort_keys=True) + "\n" for s in sigs)
    atomic_write(sig_path(target), text.encode("utf-8"))
    return entry["key_id"]


def sign(config: Path, key_path: Path) -> str:
    """Adds (or replaces) this key's signature over ``config`` in ``config.sig``; returns the key id."""
    return add_signature(config, key_path, DOMAIN)


def check_signatures(
    digest: bytes,
    entries: list[tuple[int, dict]],
    trusted: Mapping[str, Ed25519PublicKey],
    domain: bytes,
    exclude: str = "",
) -> tuple[list[str], list[str]]:
    """Distinct trusted key ids with a valid signature over ``domain + digest``, and one
    problem per signature that did not count. ``exclude``: a key id that does not count
    (a key endorsing itself)."""
    valid: list[str] = []
    problems: list[str] = []
    for n, s in entries:
        kid = str(s.get("key_id", "?"))[:64]
        pub = trusted.get(kid)
        if kid == exclude:
            problems.append(f"signature on line {n}: key {kid} cannot vouch for itself")
            continue
        if pub is None:
            problems.append(f"signature on line {n}: key {kid} is not in the trusted keyring")
            continue
        if s.get("sha256") != digest.hex():
            problems.append(
                f"signature on line {n} (key {kid}): made over other contents (the file changed since it was signed)"
            )
            continue
        try:
            pub.verify(
                base64.b64decode(str(s.get("signature", "")), validate=True), domain + digest
            )
        except (InvalidSignature, ValueError):
            problems.append(f"signature on line {n} (key {kid}): invalid signature")
            continue
        if kid not in valid:
            valid.append(kid)
    return valid, problems


@dataclass(frozen=True)
class Verdict:
    ok: bool
    valid_keys: tuple[str, ...]  # distinct trusted key ids with a valid signature
    problems: tuple[str, ...]  # one line per signature that did not count, or why it failed
    sha256: str


def verify_bytes(
    data: bytes,
    sig: bytes | None,
    keyring: Mapping[str, Ed25519PublicKey],
    min_signatures: int = DEFAULT_MIN_SIGNATURES,
    source: str = "CONFIG",
) -> Verdict:
    """Are ``data`` (a configuration's exact bytes) signed in ``sig`` (its ``.sig`` bytes,
    None: none) by ``min_signatures`` distinct keys of ``keyring``? Never raises."""
    digest = hashlib.sha256(data).digest()
    sig_source = f"{source}.sig"
    entries, problems = parse_signatures(sig, sig_source)
    damaged = len(problems)
    if not entries:
        problems.append(f"{sig_source}: no signatures")
    valid, sig_problems = check_signatures(digest, entries, keyring, DOMAIN)
    problems.extend(sig_problems)
    ok = len(valid) >= min_signatures and not damaged
    if len(valid) < min_signatures:
        problems.append(
            f"{len(valid)} valid signature(s) by distinct trusted keys; {min_signatures} required"
        )
    elif damaged:
        # Nobody's tool writes such lines: someone edited the file. Refuse it whole.
        problems.append(f"{sig_source}: damaged ({damaged} line(s) not signatures); refused")
    return Verdict(ok, tuple(valid), tuple(problems), digest.hex())


def verify(
    config: Path,
    keyring: Mapping[str, Ed25519PublicKey],
    min_signatures: int = DEFAULT_MIN_SIGNATURES,
) -> Verdict:
    """``verify_bytes`` over the file at ``config`` and its ``.sig``, each read once.
    OSError: the file (or its ``.sig``) cannot be read."""
    data, sig = read_signed(config)
    return verify_bytes(data, sig, keyring, min_signatures, source=str(config))


def config_serial(data: bytes) -> int | None:
    """``[config] serial`` of a configuration's bytes (0 when absent); None when they do
    not parse or the serial is not an integer. Read without trusting the bytes: the
    service and ``config verify`` compare it with the last accepted serial."""
    try:
        serial = tomllib.loads(data.decode("utf-8")).get("config", {}).get("serial", 0)
    except (AttributeError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return serial if isinstance(serial, int) and not isinstance(serial, bool) else None
