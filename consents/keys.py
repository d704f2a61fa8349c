"""The portal's signing keys: EC P-256 keys of their own, never derived from
SECRET_KEY, kept as PEM files in SIGNING_KEY_DIR. The newest key signs
receipts and the ledger's chain head; every key ever used stays published at
/.well-known/jwks.json, so that a receipt signed years ago still verifies
after any number of rotations (`python manage.py rotate_signing_key`).

RECEIPT_SIGNING_KEY (a PEM in the environment), when set, is brought into
SIGNING_KEY_DIR the first time it is seen and signs from then on, until the
next rotation; like every other key, it stays published after that."""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.hashes import SHA256
from django.conf import settings
from joserfc.jwk import ECKey, KeySet

logger = logging.getLogger(__name__)

ALGORITHM = "ES256"


@dataclass(frozen=True)
class KeyRing:
    current: ECKey
    keys: dict[str, ECKey]  # every key by kid, the current one included


def _jwk(private_pem: bytes | str) -> ECKey:
    key = ECKey.import_key(private_pem)
    return ECKey.import_key(
        key.as_dict(private=True), {"kid": key.thumbprint(), "use": "sig", "alg": ALGORITHM}
    )


def _key_dir() -> Path:
    return Path(settings.SIGNING_KEY_DIR)


def _key_files() -> list[Path]:
    directory = _key_dir()
    if not directory.is_dir():
        return []
    # Named <UTC time>-<kid>.pem: the last in name order is the newest.
    return sorted(directory.glob("*.pem"))


_cache: dict[tuple, KeyRing] = {}


def _marker() -> tuple:
    """What the cached keys depend on: the folder (its mtime moves whenever a
    key file is added, renamed or removed) and the key given in the environment."""
    directory = _key_dir()
    try:
        stamp = directory.stat().st_mtime_ns
    except FileNotFoundError:
        stamp = None
    return (str(directory), stamp, settings.RECEIPT_SIGNING_KEY)


# The folder is looked at (one stat()) at most this often: every receipt asks
# for the signing key, and a rotation in another process may take this long to
# be seen (one in this process is seen at once). Receipts signed meanwhile with
# the key before are valid: every key ever used stays published.
LOOK_EVERY_SECONDS = 1.0
_looked: list = []  # [(monotonic time, folder and given key, ring)]


def keyring(*, reload: bool = False) -> KeyRing:
    """The keys, read again whenever the key folder changes (a rotation in
    another process is seen within LOOK_EVERY_SECONDS); one stat() when it has
    not. The first key is made on first use. `reload` reads the folder whatever
    its mtime says (verify() does, for a kid it does not know: a coarse mtime
    can hide a rotation made within the same tick)."""
    where = (settings.SIGNING_KEY_DIR, settings.RECEIPT_SIGNING_KEY)
    if not reload and _looked:
        at, looked_where, ring = _looked[0]
        if looked_where == where and time.monotonic() - at < LOOK_EVERY_SECONDS:
            return ring
    ring = None if reload else _cache.get(_marker())
    if ring is not None:
        _looked[:] = [(time.monotonic(), where, ring)]
        return ring
    files = _key_files()
    if settings.RECEIPT_SIGNING_KEY:
        given = _jwk(settings.RECEIPT_SIGNING_KEY)
        if not any(f.stem.endswith(f"-{given.kid}") for f in files):
            _store(settings.RECEIPT_SIGNING_KEY.encode(), given)
            files = _key_files()
    if not files:
        key_rotate()
        files = _key_files()
    marker = _marker()
    loaded = [_jwk(f.read_bytes()) for f in files]
    ring = KeyRing(current=loaded[-1], keys={k.kid: k for k in loaded})
    _cache.clear()
    _cache[marker] = ring
    _looked[:] = [(time.monotonic(), where, ring)]
    return ring


def signing_key() -> ECKey:
    return keyring().current


def public_jwks() -> dict:
    """Every key's public half, the current one first."""
    ring = keyring()
    ordered = [ring.current] + [k for kid, k in ring.keys.items() if kid != ring.current.kid]
    return KeySet(ordered).as_dict(private=False)


def key_rotate() -> ECKey:
    """Make a new key and sign with it from now on; earlier keys stay published."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = _jwk(pem)
    _store(pem, key)
    return key


def _store(pem: bytes, key: ECKey) -> None:
    """Written readable by its owner only, then moved into place whole."""
    directory = _key_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = directory / f"{stamp}-{key.kid}.pem"
    partial = directory / f".{target.name}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    partial.rename(target)
    _looked.clear()  # this process signs with it from now on
    logger.warning("Signing key %s is now the one that signs (in %s)", key.kid, directory)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws_compact(header: dict, payload: bytes, key: ECKey) -> str:
    """An ES256 JWS in compact serialisation (RFC 7515), signed here with the
    key's own private half: what joserfc's serialize_compact makes (its
    deserialize_compact verifies it), without its per-call machinery, which
    cost a receipt more than the signature itself."""
    if header.get("alg") != ALGORITHM:
        raise ValueError(f"only {ALGORITHM} is signed here")
    signing_input = f"{_b64(json.dumps(header, separators=(',', ':')).encode())}.{_b64(payload)}"
    der = key.private_key.sign(signing_input.encode("ascii"), ec.ECDSA(SHA256()))
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


# Detached signatures over short texts (the ledger's chain head): "kid.signature".


def sign(message: bytes) -> str:
    key = signing_key()
    der = key.private_key.sign(message, ec.ECDSA(SHA256()))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{key.kid}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"


def verify(message: bytes, signature: str) -> bool:
    """True when `signature` is sign(message) by any key the portal has used."""
    kid, _, encoded = signature.partition(".")
    key = keyring().keys.get(kid) or keyring(reload=True).keys.get(kid)
    if key is None or not encoded:
        return False
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError:
        return False
    if len(raw) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.public_key.verify(der, message, ec.ECDSA(SHA256()))
    except InvalidSignature:
        return False
    return True
