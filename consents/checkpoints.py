"""Signed checkpoints of the ledger, in the spirit of Certificate Transparency's
signed tree heads (RFC 9162): a compact JWS (ES256, the portal's signing key,
consents.keys) over the ledger's size, its root and the time. They are kept
outside the database (an append-only JSON-lines export, an email to the DPO,
the list published at /.well-known/clareza-ledger-checkpoints.json), so that
verify_ledger can name a rollback, a truncation, a wipe or a rewrite that left
the database consistent with itself.

The payload is versioned by "format": "clareza-merkle-v1" says that the root
is the RFC 9162 Merkle tree hash of the first `size` events (consents.ledger);
every seal of the tree is signed the same way. "clareza-chain-v1", from before
the tree, says that the root is the hash of event #size in the hash chain, or
the genesis hash for 0: such checkpoints stay valid for the events of the
chain, which are the tree's first leaves."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from consents import keys
from consents.models import LedgerCheckpoint, LedgerSeal

CHAIN_V1 = "clareza-chain-v1"
MERKLE_V1 = "clareza-merkle-v1"
FORMATS = (CHAIN_V1, MERKLE_V1)
PUBLISHED = 1000  # checkpoints in the published list, newest first


def checkpoint_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def checkpoint_token(*, size: int, root: str, moment: datetime, format: str = MERKLE_V1) -> str:
    payload = {
        "format": format,
        "ledger": settings.SITE_URL,
        "size": size,
        "root": root,
        "time": checkpoint_time(moment),
    }
    key = keys.signing_key()
    header = {"alg": keys.ALGORITHM, "kid": key.kid, "typ": "clareza-checkpoint+jwt"}
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return jws.serialize_compact(header, body, key)


def checkpoint_line(checkpoint: LedgerCheckpoint | LedgerSeal) -> dict:
    """The checkpoint as exported and published: the signed token decides, the
    other fields are there for people to read."""
    return {
        "size": checkpoint.size,
        "root": checkpoint.root,
        "time": checkpoint_time(checkpoint.created_at),
        "token": checkpoint.token,
    }


@dataclass(frozen=True, order=True)
class Checkpoint:
    """A checkpoint whose signature verified: what verify_ledger trusts."""

    size: int
    root: str
    time: str
    source: str = ""
    format: str = MERKLE_V1


class UntrustedCheckpoint(ValueError):
    """A checkpoint that does not carry a valid signature of this ledger."""


def checkpoint_read(line: dict, *, source: str, jwks: KeySet) -> Checkpoint:
    """The signed content of one exported or published checkpoint, or
    UntrustedCheckpoint saying why it cannot be trusted."""
    token = line.get("token") if isinstance(line, dict) else None
    if not isinstance(token, str):
        raise UntrustedCheckpoint(f"{source}: no signed token: not trusted")
    try:
        result = jws.deserialize_compact(token, jwks, algorithms=[keys.ALGORITHM])
        payload = json.loads(result.payload)
    except (JoseError, ValueError, TypeError) as exc:
        raise UntrustedCheckpoint(
            f"{source}: its signature does not verify against the portal's keys "
            f"({exc.__class__.__name__}): forged, not trusted"
        ) from None
    if not isinstance(payload, dict):
        raise UntrustedCheckpoint(f"{source}: its signed payload is malformed")
    if payload.get("format") not in FORMATS:
        raise UntrustedCheckpoint(f"{source}: format {payload.get('format')!r} is not known")
    if payload.get("ledger") != settings.SITE_URL:
        raise UntrustedCheckpoint(
            f"{source}: it is a checkpoint of {payload.get('ledger')!r}, not of {settings.SITE_URL}"
        )
    size, root, time = payload.get("size"), payload.get("root"), payload.get("time")
    if not (isinstance(size, int) and size >= 0 and isinstance(root, str) and len(root) == 64):
        raise UntrustedCheckpoint(f"{source}: its signed payload is malformed")
    for field, value in (("size", size), ("root", root), ("time", time)):
        if field in line and line[field] != value:
            raise UntrustedCheckpoint(
                f"{source}: its {field} differs from the one it signs: forged, not trusted"
            )
    return Checkpoint(size=size, root=root, time=str(time), source=source, format=payload["format"])


def checkpoint_verify(token: str, *, source: str) -> Checkpoint:
    """The signed content of a token, against every key the portal ever used."""
    jwks = KeySet(list(keys.keyring().keys.values()))
    return checkpoint_read({"token": token}, source=source, jwks=jwks)


def _file_lines(path: Path) -> Iterator[tuple[str, object]]:
    """(where, parsed line) for a JSON-lines export (read a line at a time) or
    a published list (one JSON document with "checkpoints")."""
    with path.open(encoding="utf-8") as handle:
        first = handle.readline()
        try:
            parsed = json.loads(first)
            lines_file = not (isinstance(parsed, dict) and "checkpoints" in parsed)
        except ValueError:
            lines_file = not first.strip().startswith("{")  # else a list, indented
        handle.seek(0)
        if not lines_file:
            try:
                document = json.load(handle)
            except ValueError:
                document = None
            items = document.get("checkpoints") if isinstance(document, dict) else None
            if not isinstance(items, list):
                yield f"{path}", None
                return
            for index, item in enumerate(items, start=1):
                yield f"{path} checkpoint {index}", item
            return
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield f"{path} line {number}", json.loads(raw)
            except ValueError:
                # A bare token, as copied from the DPO's email.
                token = raw.strip()
                yield f"{path} line {number}", {"token": token} if token.count(".") == 2 else None


def checkpoints_gather(
    paths: Iterable[Path] = (), *, include_database: bool = True
) -> tuple[list[Checkpoint], list[str]]:
    """Every checkpoint given (files) and stored (the database), sorted by size,
    with the reasons the untrusted ones were left out."""
    jwks = KeySet.import_key_set(keys.public_jwks())
    trusted: dict[tuple[int, str, str], Checkpoint] = {}
    untrusted: list[str] = []

    def take(source: str, line: object) -> None:
        try:
            checkpoint = checkpoint_read(line, source=source, jwks=jwks)  # type: ignore[arg-type]
        except UntrustedCheckpoint as exc:
            untrusted.append(str(exc))
            return
        trusted.setdefault((checkpoint.size, checkpoint.root, checkpoint.time), checkpoint)

    for path in paths:
        for source, line in _file_lines(Path(path)):
            take(source, line)
    if include_database:
        rows = LedgerCheckpoint.objects.order_by("size").values_list("size", "root", "token")
        for size, root, token in rows.iterator():
            take(f"the checkpoint #{size} stored in the database", {"root": root, "token": token})
    return sorted(trusted.values()), untrusted


def newest_checkpoint() -> Checkpoint | None:
    """The largest trusted checkpoint among the one stored last and the last
    line of LEDGER_CHECKPOINT_FILE (read from its end: the file only grows)."""
    jwks = KeySet(list(keys.keyring().keys.values()))
    found = []
    stored = LedgerCheckpoint.objects.order_by("-size").values_list("token", flat=True).first()
    candidates = [
        ("the last stored checkpoint", {"token": stored} if stored else None),
        ("the last exported checkpoint", _last_line(Path(settings.LEDGER_CHECKPOINT_FILE))),
    ]
    for source, line in candidates:
        if line is None:
            continue
        # A forged one anchors nothing (verify_ledger names it).
        with contextlib.suppress(UntrustedCheckpoint):
            found.append(checkpoint_read(line, source=source, jwks=jwks))
    return max(found, key=lambda c: c.size, default=None)


def _last_line(path: Path) -> dict | None:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            tail = handle.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return None
    try:
        line = json.loads(tail[-1]) if tail else None
    except ValueError:
        return None
    return line if isinstance(line, dict) else None


def export_append(line: dict) -> Path:
    """One JSON line at the end of LEDGER_CHECKPOINT_FILE, flushed to disk."""
    path = Path(settings.LEDGER_CHECKPOINT_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, separators=(",", ":")) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path
