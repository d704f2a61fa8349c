"""Webhook secrets sealed at rest: the database keeps each endpoint's signing
secret only encrypted (AES-256-GCM) with a key kept outside it, so that a
copy of the database (a backup, a read-only leak, a replica) is not enough
to forge deliveries that receivers would trust.

- The keys are files in WEBHOOK_SEALING_KEY_DIR (by default the folder
  "sealing" inside SIGNING_KEY_DIR, beside the ledger's signing keys): 32
  random bytes each, named `<UTC time>-<kid>.key`, written 0600 in a 0700
  folder. The first is made on first use; the newest seals; every key in the
  folder unseals. Lose the folder and the secrets cannot be unsealed: staff
  rotate each endpoint's secret and give receivers the new one.
- A sealed value is `v1.<kid>.<base64url(nonce + ciphertext)>`. The
  endpoint's uuid and the field's name are the associated data, so a sealed
  value copied onto another endpoint or field does not unseal.
- Rotation: `manage.py rotate_webhook_sealing_key` makes a new key and seals
  every endpoint's secrets again with it; the command then says which keys
  still seal something (none): those files can be removed.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets as random
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

logger = logging.getLogger(__name__)

VERSION = "v1"
NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed value that cannot be opened: its key is missing, or it was altered."""


def _folder() -> Path:
    return Path(settings.WEBHOOK_SEALING_KEY_DIR)


def kid_of(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


# The keys, read again when the folder changes (its mtime moves when a key is
# added or removed), looked at (one stat) at most once a second otherwise, and
# at once when a sealed value names a key this process has not seen.
LOOK_EVERY_SECONDS = 1.0
_cache: dict = {}  # {"where", "stamp", "looked", "keys": {kid: bytes}, "current": kid}


def _stamp(folder: Path) -> int | None:
    try:
        return folder.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _read(folder: Path) -> tuple[dict[str, bytes], str | None]:
    keys, current = {}, None
    if folder.is_dir():
        for path in sorted(folder.glob("*.key")):  # the last in name order is the newest
            key = base64.b64decode(path.read_bytes().strip())
            if len(key) != 32:
                raise SealError(f"{path} is not a 256-bit key")
            keys[kid_of(key)] = key
            current = kid_of(key)
    return keys, current


def _keys(*, reload: bool = False) -> tuple[dict[str, bytes], str | None]:
    folder = _folder()
    now = time.monotonic()
    same = _cache.get("where") == str(folder)
    if not reload and same and now - _cache.get("looked", 0) < LOOK_EVERY_SECONDS:
        return _cache["keys"], _cache["current"]
    stamp = _stamp(folder)
    if reload or _cache.get("where") != str(folder) or _cache.get("stamp") != stamp:
        keys, current = _read(folder)
        _cache.update(where=str(folder), stamp=stamp, keys=keys, current=current)
    _cache["looked"] = now
    return _cache["keys"], _cache["current"]


def key_rotate() -> str:
    """Make a new key, which seals from now on (in this process at once, in
    others within LOOK_EVERY_SECONDS); returns its kid."""
    folder = _folder()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = random.token_bytes(32)
    kid = kid_of(key)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"{stamp}-{kid}.key"
    partial = folder / f".{target.name}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(key) + b"\n")
    partial.rename(target)
    _cache.clear()
    logger.warning("Webhook sealing key %s now seals (in %s)", kid, folder)
    return kid


def current_kid() -> str:
    _known, current = _keys()
    if current is None:
        _known, current = _keys(reload=True)
    if current is None:
        current = key_rotate()  # the first key, on first use
    return current


def _aad(context: str) -> bytes:
    return f"clareza-webhook-secret:{context}".encode()


def seal(secret: str, *, context: str) -> str:
    """`secret` encrypted with the newest key, bound to `context` (e.g.
    "<endpoint uuid>:secret"). An empty secret stays empty."""
    if not secret:
        return ""
    kid = current_kid()
    key = _keys()[0].get(kid) or _keys(reload=True)[0][kid]
    nonce = random.token_bytes(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, secret.encode(), _aad(context))
    return f"{VERSION}.{kid}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def kid_in(sealed: str) -> str:
    version, _dot, rest = sealed.partition(".")
    kid, _dot, _body = rest.partition(".")
    return kid if version == VERSION else ""


def unseal(sealed: str, *, context: str) -> str:
    if not sealed:
        return ""
    version, kid, body = [*sealed.split(".", 2), "", ""][:3]
    if version != VERSION or not kid or not body:
        raise SealError("not a sealed webhook secret")
    key = _keys()[0].get(kid) or _keys(reload=True)[0].get(kid)
    if key is None:
        raise SealError(
            f"the key {kid} that sealed this webhook secret is not in {_folder()}: restore it "
            "from a backup, or rotate the endpoint's secret"
        )
    try:
        raw = base64.urlsafe_b64decode(body)
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(context)).decode()
    except (InvalidTag, ValueError) as exc:
        raise SealError("the sealed webhook secret was altered or belongs elsewhere") from exc
