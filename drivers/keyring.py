"""The keyring under the two-person rule: which public keys may sign a configuration.

A keyring directory holds ``NAME.pub`` files (Ed25519, SubjectPublicKeyInfo
PEM) and, optionally, ``NAME.pub.sig``: endorsements of that key by other
keys, in the JSON-lines format of ``CONFIG.sig`` (``drivers.config_trust``),
signed over ``b"rampart-key-v1\\n" + sha256(NAME.pub bytes)``.

Write access to the directory is not enough to add a signer. Modelled on
TUF's pinned root of trust (The Update Framework specification, section 5.3):
the service pins the keys it trusts in its state directory
(``trusted-keys.json``: key id -> base64 raw public key). The first start with
no pin trusts every valid key present (trust on first use) and pins them.
From then on a key is trusted only while its file is present and it is
pinned, or it is endorsed by at least ``min_signatures`` distinct keys that
are already trusted (not by itself; endorsements chain, to a fixpoint). A
newly endorsed key joins the pin; a pinned key whose file is gone leaves it.
Everything else in the directory (an insider's own keys, junk, unreadable
files, bad endorsements) is ignored, with a reason, and never stops anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from drivers.config_trust import (
    MAX_SIG_BYTES,
    TrustError,
    add_signature,
    atomic_write,
    check_signatures,
    key_id,
    parse_signatures,
    raw_public,
    sig_path,
)

DOMAIN = b"rampart-key-v1\n"
PIN_FILE = "trusted-keys.json"
MAX_PUB_BYTES = 64 * 1024  # an Ed25519 PEM public key is 113 bytes


@dataclass(frozen=True)
class KeyFile:
    """A valid public key found in the keyring directory, with its endorsements."""

    path: Path
    key_id: str
    public_key: Ed25519PublicKey
    sha256: bytes  # of the .pub file's bytes: what endorsements sign
    endorsements: tuple[tuple[int, dict], ...] = ()
    problems: tuple[str, ...] = ()  # lines of its .sig that are not endorsements

    @property
    def raw_b64(self) -> str:
        return base64.b64encode(raw_public(self.public_key)).decode()


@dataclass(frozen=True)
class Ignored:
    """A file in the keyring that does not count, and why."""

    path: str
    key_id: str  # "" when the file is not a usable key
    reason: str


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    path: str
    pinned: bool
    endorsed_by: tuple[str, ...]


@dataclass(frozen=True)
class KeyringView:
    """The keyring as the service sees it now: what counts, what not, and what changed."""

    trusted: dict[str, Ed25519PublicKey]
    keys: tuple[TrustedKey, ...]
    ignored: tuple[Ignored, ...]
    pin: dict[str, str]  # what the pin holds after this load (key id -> base64 raw key)
    old_pin: dict[str, str] | None  # what it held before (None: there was no pin file)
    added: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (key id, endorsed by)
    removed: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default=())  # the directory or the pin file itself

    @property
    def first_pin(self) -> bool:
        return self.old_pin is None

    @property
    def changed(self) -> bool:
        return self.old_pin != self.pin


def _load_pub(path: Path) -> tuple[Ed25519PublicKey | None, bytes, str]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PUB_BYTES + 1)
    except OSError as exc:
        return None, b"", f"unreadable ({exc.strerror or exc})"
    if len(data) > MAX_PUB_BYTES:
        return None, b"", f"larger than {MAX_PUB_BYTES} bytes; not a public key"
    try:
        pub = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        return None, data, f"not a public key ({str(exc).splitlines()[0] if str(exc) else exc})"
    except Exception as exc:  # the parser's own failures on hostile bytes: the file is junk
        return None, data, f"not a public key ({type(exc).__name__})"
    if not isinstance(pub, Ed25519PublicKey):
        return None, data, "not an Ed25519 public key"
    return pub, data, ""


def scan_keyring(directory: Path) -> tuple[dict[str, KeyFile], list[Ignored], list[str]]:
    """Every valid ``*.pub`` key of ``directory`` by key id, the files that are not, and
    problems with the directory itself. Never raises."""
    directory = Path(directory)
    keys: dict[str, KeyFile] = {}
    ignored: list[Ignored] = []
    try:
        paths = sorted(p for p in directory.iterdir() if p.name.endswith(".pub"))
    except OSError as exc:
        return {}, [], [f"{directory}: keyring directory unreadable ({exc.strerror or exc})"]
    for p in paths:
        pub, data, why = _load_pub(p)
        if pub is None:
            ignored.append(Ignored(str(p), "", why))
            continue
        kid = key_id(pub)
        if kid in keys:
            ignored.append(Ignored(str(p), kid, f"the same key as {keys[kid].path.name}"))
            continue
        try:
            with open(sig_path(p), "rb") as f:
                sig: bytes | None = f.read(MAX_SIG_BYTES + 1)
        except FileNotFoundError:
            sig = None
        except OSError as exc:
            sig = None
            ignored.append(
                Ignored(str(sig_path(p)), kid, f"unreadable ({exc.strerror or exc}); not counted")
            )
        entries, problems = parse_signatures(sig, str(sig_path(p)))
        digest = hashlib.sha256(data).digest()
        keys[kid] = KeyFile(p, kid, pub, digest, tuple(entries), tuple(problems))
    return keys, ignored, []


def pin_path(state_dir: Path) -> Path:
    return Path(state_dir) / PIN_FILE


def read_pin(state_dir: Path) -> tuple[dict[str, str] | None, str]:
    """The pinned keys (None: no pin file yet) and a problem ("" when none). A pin file
    that exists but cannot be used pins nothing: it never means trust on first use again."""
    path = pin_path(state_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return {}, f"{path}: unreadable ({exc.strerror or exc}); no key is pinned"
    try:
        pin = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return {}, f"{path}: not JSON ({exc}); no key is pinned"
    if not isinstance(pin, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in pin.items()
    ):
        return {}, f"{path}: not an object of key id -> public key; no key is pinned"
    return pin, ""


def write_pin(state_dir: Path, pin: Mapping[str, str]) -> None:
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    data = json.dumps(dict(sorted(pin.items())), indent=1).encode() + b"\n"
    atomic_write(pin_path(state_dir), data, mode=0o600)


def resolve(
    keys: Mapping[str, KeyFile],
    pin: Mapping[str, str] | None,
    min_signatures: int,
    ignored: list[Ignored] | tuple[Ignored, ...] = (),
    problems: list[str] | tuple[str, ...] = (),
) -> KeyringView:
    """Which keys count: present AND (pinned OR endorsed by ``min_signatures`` distinct
    trusted keys other than itself), iterated to a fixpoint. ``pin`` None: first start,
    every present key is pinned."""
    ignored = list(ignored)
    if pin is None:
        trusted = {kid: k.public_key for kid, k in keys.items()}
        pinned = set(trusted)
    else:
        pinned = {kid for kid, k in keys.items() if pin.get(kid) == k.raw_b64}
        trusted = {kid: keys[kid].public_key for kid in sorted(pinned)}
    endorsed_by: dict[str, tuple[str, ...]] = {}
    last_problems: dict[str, list[str]] = {}
    added: list[tuple[str, tuple[str, ...]]] = []
    grew = True
    while grew:
        grew = False
        for kid, k in sorted(keys.items()):
            if kid in trusted:
                continue
            valid, why = check_signatures(k.sha256, list(k.endorsements), trusted, DOMAIN, kid)
            last_problems[kid] = why
            if len(valid) >= min_signatures:
                trusted[kid] = k.public_key
                endorsed_by[kid] = tuple(sorted(valid))
                added.append((kid, endorsed_by[kid]))
                grew = True
    for kid, k in sorted(keys.items()):
        if kid in trusted:
            continue
        valid, _ = check_signatures(k.sha256, list(k.endorsements), trusted, DOMAIN, kid)
        reason = (
            f"not pinned, and endorsed by {len(valid)} trusted key(s); {min_signatures} required"
        )
        details = list(k.problems) + last_problems.get(kid, [])
        if details:
            reason += " (" + "; ".join(details[:4]) + ")"
        ignored.append(Ignored(str(k.path), kid, reason))
    for kid, k in sorted(keys.items()):
        if kid in trusted and k.problems:
            ignored.append(Ignored(str(sig_path(k.path)), kid, "; ".join(k.problems[:4])))
    new_pin = {kid: keys[kid].raw_b64 for kid in sorted(trusted)}
    removed = tuple(sorted(set(pin or {}) - set(keys)))
    view_keys = tuple(
        TrustedKey(kid, str(keys[kid].path), kid in pinned, endorsed_by.get(kid, ()))
        for kid in sorted(trusted)
    )
    return KeyringView(
        trusted,
        view_keys,
        tuple(sorted(ignored, key=lambda i: (i.path, i.key_id))),
        new_pin,
        None if pin is None else dict(pin),
        tuple(added),
        removed,
        tuple(problems),
    )


def load_view(directory: Path, state_dir: Path | None, min_signatures: int) -> KeyringView:
    """The keyring at ``directory`` under the pin in ``state_dir`` (None: no pin applies,
    every valid key counts as given). Reads only; never writes the pin, never raises."""
    keys, ignored, problems = scan_keyring(directory)
    if state_dir is None:
        return resolve(keys, None, min_signatures, ignored, problems)
    pin, pin_problem = read_pin(state_dir)
    if pin_problem:
        problems = [*problems, pin_problem]
    return resolve(keys, pin, min_signatures, ignored, problems)


def endorse(pub_file: Path, key_path: Path) -> str:
    """Adds the endorsement of ``key_path`` (a private key) of ``pub_file`` to
    ``pub_file.sig``; returns the endorsing key id."""
    pub, _, why = _load_pub(Path(pub_file))
    if pub is None:
        raise TrustError(f"{pub_file}: {why}")
    return add_signature(Path(pub_file), key_path, DOMAIN)


def describe(view: KeyringView) -> list[str]:
    """One line per key and per ignored file, for ``rampart keyring status``."""
    out = []
    for k in view.keys:
        how = "pinned" if k.pinned else f"endorsed by {', '.join(k.endorsed_by)}"
        out.append(f"trusted {k.key_id} {k.path} ({how})")
    for i in view.ignored:
        out.append(f"ignored {i.key_id or '-'} {i.path}: {i.reason}")
    for p in view.problems:
        out.append(f"problem {p}")
    return out
