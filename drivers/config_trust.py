"""Two-person integrity for the site configuration: Ed25519 signatures and a trusted keyring.

Detection thresholds, zones, sensor lists and sink targets decide what the
site can see, so no single person may change them silently. A configuration
is accepted only when ``CONFIG.sig`` holds valid signatures by at least M
distinct keys (default 2) whose public halves are in the trusted keyring (a
directory of ``*.pub`` files). There are no exceptions by content: a change
that disables a detector or raises a threshold needs the same M signatures as
any other.

Files:
- ``KEY``: Ed25519 private key, PKCS#8 PEM, mode 0600 (``rampart keygen``);
- ``KEY.pub``: its public key, SubjectPublicKeyInfo PEM;
- ``CONFIG.sig``: one JSON object per line, one line per signer:
  ``{"key_id", "public_key", "sha256", "signature"}``. The signature is over
  ``b"rampart-config-v1\\n" + sha256(CONFIG bytes)``: the exact bytes, so any
  edit (a comment, a space) needs fresh signatures.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DOMAIN = b"rampart-config-v1\n"
DEFAULT_MIN_SIGNATURES = 2


class TrustError(Exception):
    """A key, keyring or signature file that cannot be used; the message says which and why."""


def config_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _raw(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(pub: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw(pub)).hexdigest()[:16]


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


def load_keyring(directory: Path) -> dict[str, Ed25519PublicKey]:
    """Trusted public keys by key id, from every ``*.pub`` file in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TrustError(f"{directory}: keyring directory does not exist")
    ring: dict[str, Ed25519PublicKey] = {}
    for p in sorted(directory.glob("*.pub")):
        try:
            pub = serialization.load_pem_public_key(p.read_bytes())
        except ValueError as exc:
            raise TrustError(f"{p}: not a public key ({exc})") from exc
        if not isinstance(pub, Ed25519PublicKey):
            raise TrustError(f"{p}: not an Ed25519 public key")
        ring[key_id(pub)] = pub
    return ring


def sig_path(config: Path) -> Path:
    return Path(f"{config}.sig")


def _read_sigs(config: Path) -> list[dict]:
    path = sig_path(config)
    if not path.is_file():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise TrustError(f"{path}:{n}: not JSON ({exc})") from exc
        if not isinstance(entry, dict):
            raise TrustError(f"{path}:{n}: not a signature object")
        out.append(entry)
    return out


def sign(config: Path, key_path: Path) -> str:
    """Adds (or replaces) this key's signature over ``config`` in ``config.sig``; returns the key id."""
    key = load_private(key_path)
    digest = hashlib.sha256(Path(config).read_bytes()).digest()
    pub = key.public_key()
    kid = key_id(pub)
    entry = {
        "key_id": kid,
        "public_key": base64.b64encode(_raw(pub)).decode(),
        "sha256": digest.hex(),
        "signature": base64.b64encode(key.sign(DOMAIN + digest)).decode(),
    }
    sigs = [s for s in _read_sigs(config) if s.get("key_id") != kid] + [entry]
    sig_path(config).write_text(
        "".join(json.dumps(s, sort_keys=True) + "\n" for s in sigs), encoding="utf-8"
    )
    return kid


@dataclass(frozen=True)
class Verdict:
    ok: bool
    valid_keys: tuple[str, ...]  # distinct trusted key ids with a valid signature
    problems: tuple[str, ...]  # one line per signature that did not count, or why it failed
    sha256: str


def verify(
    config: Path, keyring: dict[str, Ed25519PublicKey], min_signatures: int = DEFAULT_MIN_SIGNATURES
) -> Verdict:
    data = Path(config).read_bytes()
    digest = hashlib.sha256(data).digest()
    problems: list[str] = []
    valid: list[str] = []
    try:
        sigs = _read_sigs(config)
    except TrustError as exc:
        return Verdict(False, (), (str(exc),), digest.hex())
    if not sigs:
        problems.append(f"{sig_path(config)}: no signatures")
    for i, s in enumerate(sigs, 1):
        kid = str(s.get("key_id", "?"))
        pub = keyring.get(kid)
        if pub is None:
            problems.append(f"signature {i}: key {kid} is not in the trusted keyring")
            continue
        if s.get("sha256") != digest.hex():
            problems.append(
                f"signature {i} (key {kid}): made over other contents (the file changed since it was signed)"
            )
            continue
        try:
            pub.verify(
                base64.b64decode(str(s.get("signature", "")), validate=True), DOMAIN + digest
            )
        except (InvalidSignature, ValueError):
            problems.append(f"signature {i} (key {kid}): invalid signature")
            continue
        if kid not in valid:
            valid.append(kid)
    ok = len(valid) >= min_signatures
    if not ok:
        problems.append(
            f"{len(valid)} valid signature(s) by distinct trusted keys; {min_signatures} required"
        )
    return Verdict(ok, tuple(valid), tuple(problems), digest.hex())
