#!/usr/bin/env python3
"""Check a Clareza consent receipt on your own computer, trusting nothing but
the controller's published keys.

Needs only Python 3.9 or later: no packages, no account, no access to the
portal's database. It checks, and says in plain words:
  1. the receipt is signed by one of the controller's keys;
  2. the ledger checkpoint that comes with its proof is signed by one too;
  3. the proof recomputes the checkpoint's Merkle root from the receipt's
     event (RFC 9162 inclusion proof), so that event is in the ledger;
  4. the checkpoint is for the ledger of the controller the receipt names;
  5. with --checkpoints, that the controller published this exact checkpoint,
     and never another one of the same size (that would be a rewritten ledger).

Usage:
  python3 verify_offline.py RECEIPT_FILE --jwks FILE_OR_URL
                            [--proof FILE_OR_URL] [--checkpoints FILE_OR_URL]

  RECEIPT_FILE   the receipt as downloaded (a compact JWS); "-" reads it from
                 standard input
  --jwks         the controller's keys: <site>/.well-known/jwks.json
  --proof        a fresh proof (the receipt's proofUrl), for a receipt whose
                 own proof is empty because the ledger was not sealed yet, or
                 to prove it against a newer checkpoint
  --checkpoints  the published checkpoints:
                 <site>/.well-known/clareza-ledger-checkpoints.json

  python3 -I verify_offline.py --evidence FOLDER_OR_ZIP [--jwks FILE_OR_URL]

  --evidence     an auditor's evidence export (the ZIP, or the folder it was
                 unzipped to): recomputes every notice's and policy version's
                 hash from its text, every event's hash from its fields, the
                 signed checkpoints' roots from the events and the range proof,
                 and checks the checkpoints' signatures (with the export's
                 jwks.json, or the keys given with --jwks)

Exit status: 0 when every check passed; 1 when one failed (the last line says
which and why); 2 when an input could not be read or the command was wrong.
"""

from __future__ import annotations

import os
import sys

# Run from a checkout of the project, the script's own folder (consents/) would
# come first on sys.path, and its selectors.py would hide the standard library's.
if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    del sys.path[0]

import argparse
import base64
import hashlib
import json
import re
import urllib.error
import urllib.request
import zipfile
from datetime import datetime, timezone

MERKLE_FORMAT = "clareza-merkle-v1"
RECEIPT_CONTENT_TYPE = "kantara-cr+json"
CHECKPOINT_TYPE = "clareza-checkpoint+jwt"
FETCH_TIMEOUT = 20  # seconds
MAX_DOCUMENT = 32 * 1024 * 1024  # bytes; a published list of checkpoints is far smaller


class Failure(Exception):
    """A check failed: exit status 1."""


class BadInput(Exception):
    """An input could not be read, or the command line was wrong: exit status 2."""


# --- Merkle tree (RFC 9162 2.1), the same lines as consents/merkle.py --------

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _all_hashes(values: list) -> bool:
    return all(isinstance(v, bytes) and len(v) == HASH_SIZE for v in values)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2, step by step. leaf is the leaf's hash (leaf_hash of
    its data), as the RFC's algorithm takes it."""
    if not 0 <= index < size:
        return False
    if not _all_hashes([leaf, root, *proof]):
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    m: int, n: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 2.1.4.2 for 0 < m < n. For m == n the proof must be empty and
    the roots equal; for m == 0, empty, with old_root the empty tree's."""
    if not 0 <= m <= n or not _all_hashes([old_root, new_root, *proof]):
        return False
    if m == 0:
        return not proof and old_root == EMPTY_ROOT
    if m == n:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if m & (m - 1) == 0:
        path.insert(0, old_root)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


# --- ECDSA P-256 with SHA-256 (FIPS 186-4; JWS ES256, RFC 7518 3.4) ---------
# Only verification, on public data, so constant time does not matter here.

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)
INFINITY = (1, 1, 0)  # Jacobian coordinates (X, Y, Z) stand for (X/Z^2, Y/Z^3)


def on_curve(x: int, y: int) -> bool:
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def _double(point: tuple) -> tuple:
    x, y, z = point
    if z == 0 or y == 0:
        return INFINITY
    # dbl-2001-b, for a = -3
    delta = z * z % P
    gamma = y * y % P
    beta = x * gamma % P
    alpha = 3 * (x - delta) * (x + delta) % P
    x3 = (alpha * alpha - 8 * beta) % P
    z3 = ((y + z) * (y + z) - gamma - delta) % P
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % P
    return (x3, y3, z3)


def _add(p1: tuple, p2: tuple) -> tuple:
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if z1 == 0:
        return p2
    if z2 == 0:
        return p1
    z1z1 = z1 * z1 % P
    z2z2 = z2 * z2 % P
    u1 = x1 * z2z2 % P
    u2 = x2 * z1z1 % P
    s1 = y1 * z2 * z2z2 % P
    s2 = y2 * z1 * z1z1 % P
    if u1 == u2:
        return _double(p1) if s1 == s2 else INFINITY
    h = (u2 - u1) % P
    r = (s2 - s1) % P
    hh = h * h % P
    hhh = h * hh % P
    x3 = (r * r - hhh - 2 * u1 * hh) % P
    y3 = (r * (u1 * hh - x3) - s1 * hhh) % P
    z3 = h * z1 * z2 % P
    return (x3, y3, z3)


def _twice_multiplied(k1: int, p1: tuple, k2: int, p2: tuple) -> tuple:
    """k1*p1 + k2*p2 in one pass over the bits (Shamir's trick)."""
    both = _add(p1, p2)
    result = INFINITY
    for bit in range(max(k1.bit_length(), k2.bit_length()) - 1, -1, -1):
        result = _double(result)
        b1 = (k1 >> bit) & 1
        b2 = (k2 >> bit) & 1
        if b1 and b2:
            result = _add(result, both)
        elif b1:
            result = _add(result, p1)
        elif b2:
            result = _add(result, p2)
    return result


def es256_verify(public: tuple[int, int], message: bytes, signature: bytes) -> bool:
    """ECDSA P-256 SHA-256 verification; signature is r || s, 32 bytes each."""
    if len(signature) != 64 or not on_curve(*public):
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (1 <= r < N and 1 <= s < N):
        return False
    e = int.from_bytes(hashlib.sha256(message).digest(), "big")  # 256 bits: no truncation
    w = pow(s, -1, N)
    x, _, z = _twice_multiplied(e * w % N, (*G, 1), r * w % N, (*public, 1))
    if z == 0:
        return False
    return x * pow(z * z, -1, P) % P % N == r


# --- base64url, JWK, compact JWS ---------------------------------------------

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_decode(text: str) -> bytes:
    """Unpadded base64url (RFC 7515 2), strictly: anything else is ValueError."""
    if not isinstance(text, str) or not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def ec_public_key(jwk: object) -> tuple[int, int]:
    """The point of a public EC P-256 JWK (RFC 7518 6.2.1); ValueError otherwise."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise ValueError("not an EC P-256 key")
    coordinates = []
    for name in ("x", "y"):
        raw = b64url_decode(jwk.get(name))
        if len(raw) != 32:
            raise ValueError(f"its {name} is not 32 bytes")
        coordinates.append(int.from_bytes(raw, "big"))
    x, y = coordinates
    if not on_curve(x, y):
        raise ValueError("its point is not on the P-256 curve")
    return (x, y)


def find_key(jwks: dict, kid: str) -> tuple[int, int]:
    named = [key for key in jwks["keys"] if isinstance(key, dict) and key.get("kid") == kid]
    if not named:
        raise Failure(f"key {kid!r} is not among the controller's published keys")
    if len(named) > 1:
        raise Failure(f"the key set holds {len(named)} keys named {kid!r}")
    try:
        return ec_public_key(named[0])
    except ValueError as error:
        raise Failure(f"key {kid!r} cannot check an ES256 signature: {error}") from None


def _json_part(part: str) -> object:
    return json.loads(b64url_decode(part).decode("utf-8"))


def jws_verify(token: object, jwks: dict, what: str, header_needs: dict) -> tuple[dict, dict]:
    """Check a compact JWS (RFC 7515 7.1) signed ES256 by a key of jwks, picked
    by the header's kid; header_needs names header values that must be there,
    so that one kind of signed document cannot pass for another. Returns
    (header, payload), the payload a JSON object."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3 or not all(_BASE64URL.fullmatch(part) for part in parts):
        raise Failure(f"the {what} is not a compact JWS (header.payload.signature)")
    try:
        header = _json_part(parts[0])
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise Failure(f"the {what}'s header is not a JSON object")
    if header.get("alg") != "ES256":
        raise Failure(f"the {what} is signed with {header.get('alg')!r}; only ES256 is accepted")
    if "crit" in header:
        raise Failure(f"the {what} asks for extensions this script does not know: {header['crit']}")
    for name, value in header_needs.items():
        if header.get(name) != value:
            raise Failure(f"the {what}'s header has {name} {header.get(name)!r}, not {value!r}")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise Failure(f"the {what}'s header does not name its key (kid)")
    public = find_key(jwks, kid)
    try:
        signature = b64url_decode(parts[2])
    except ValueError:
        signature = b""
    signed = (parts[0] + "." + parts[1]).encode("ascii")
    if not es256_verify(public, signed, signature):
        raise Failure(
            f"the {what}'s signature is not valid for key {kid!r}: "
            "it was altered, or not signed by the controller"
        )
    try:
        payload = _json_part(parts[1])
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise Failure(f"the {what}'s signed content is not a JSON object")
    return header, payload


def unverified_payload(token: object) -> object:
    """The content of a compact JWS before its signature is checked, or None."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        return None
    try:
        return _json_part(parts[1])
    except ValueError:
        return None


# --- Reading inputs -----------------------------------------------------------


def read_text(source: str, what: str) -> str:
    if source.startswith(("https://", "http://")):
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked just above)
            source,
            headers={"Accept": "application/json", "User-Agent": "clareza-verify-offline"},
        )
        try:
            with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:  # noqa: S310
                raw = response.read(MAX_DOCUMENT + 1)
        except urllib.error.HTTPError as error:
            raise BadInput(f"could not fetch the {what} from {source}: HTTP {error.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise BadInput(f"could not fetch the {what} from {source}: {reason}") from None
    elif source == "-":
        raw = sys.stdin.buffer.read(MAX_DOCUMENT + 1)
    else:
        try:
            with open(source, "rb") as handle:
                raw = handle.read(MAX_DOCUMENT + 1)
        except OSError as error:
            raise BadInput(f"could not read the {what} from {source}: {error.strerror}") from None
    if len(raw) > MAX_DOCUMENT:
        raise BadInput(f"the {what} at {source} is larger than {MAX_DOCUMENT} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"the {what} at {source} is not text (UTF-8)") from None


def read_json(source: str, what: str) -> object:
    text = read_text(source, what)
    try:
        return json.loads(text)
    except ValueError:
        raise BadInput(f"the {what} at {source} is not JSON") from None


def read_jwks(source: str) -> dict:
    jwks = read_json(source, "key set")
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise BadInput(f'the key set at {source} is not a JWKS document ({{"keys": [...]}})')
    return jwks


# --- The checks ---------------------------------------------------------------


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _hash_from_hex(value: object) -> bytes | None:
    if isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{64}", value):
        return bytes.fromhex(value)
    return None


def _when(timestamp: object) -> str:
    if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
        try:
            moment = datetime.fromtimestamp(timestamp, timezone.utc)
        except (OverflowError, OSError, ValueError):
            return repr(timestamp)
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return "an unknown time"


def _purpose(receipt: dict) -> str:
    try:
        return str(receipt["services"][0]["purposes"][0]["purpose"])
    except (KeyError, IndexError, TypeError):
        return "an unnamed purpose"


def _controller_url(receipt: dict) -> object:
    try:
        return receipt["piiControllers"][0]["piiControllerUrl"]
    except (KeyError, IndexError, TypeError):
        return None


def _read_proof(proof: object) -> tuple[int, int, list[bytes], str]:
    if not isinstance(proof, dict):
        raise Failure("the inclusion proof is not a JSON object")
    if proof.get("format") != MERKLE_FORMAT:
        raise Failure(
            f"the inclusion proof's format is {proof.get('format')!r}, not {MERKLE_FORMAT!r}"
        )
    index, size, path = proof.get("leafIndex"), proof.get("treeSize"), proof.get("auditPath")
    if not _is_count(index) or not _is_count(size) or index >= size:
        raise Failure("the inclusion proof's leafIndex and treeSize do not name a leaf of a tree")
    hashes = [_hash_from_hex(item) for item in path] if isinstance(path, list) else [None]
    if None in hashes:
        raise Failure(
            "the inclusion proof's auditPath is not a list of 64-digit hexadecimal hashes"
        )
    if not isinstance(proof.get("checkpoint"), str):
        raise Failure("the inclusion proof carries no checkpoint")
    return index, size, hashes, proof["checkpoint"]


class Report:
    def __init__(self, out) -> None:
        self.out = out

    def ok(self, text: str) -> None:
        print(f"OK    {text}", file=self.out)

    def info(self, text: str) -> None:
        print(f"      {text}", file=self.out)


def check(args: argparse.Namespace, report: Report) -> None:
    """Every check in order; raises Failure at the first that fails."""
    token = read_text(args.receipt, "receipt").strip()
    jwks = read_jwks(args.jwks)

    header, receipt = jws_verify(token, jwks, "receipt", {"cty": RECEIPT_CONTENT_TYPE})
    report.ok(f"The receipt's signature is valid (key {header['kid']}).")
    report.info(
        f"Receipt {receipt.get('consentReceiptID', '(no id)')}: decision "
        f"{receipt.get('decision', 'unknown')!r} for {_purpose(receipt)!r}, "
        f"at {_when(receipt.get('consentTimestamp'))}."
    )

    ledger_hash = _hash_from_hex(receipt.get("ledgerHash"))
    if ledger_hash is None:
        raise Failure("the receipt's ledgerHash is not a 64-digit hexadecimal hash")
    seq = receipt.get("ledgerSeq")

    if args.proof:
        proof = read_json(args.proof, "proof")
        report.info(f"Using the proof from {args.proof}.")
    else:
        proof = receipt.get("inclusionProof")
        if proof is None:
            where = receipt.get("proofUrl")
            where = where if isinstance(where, str) else "the controller's portal"
            raise Failure(
                "the receipt carries no inclusion proof yet (the ledger had not been sealed "
                f"when it was issued): fetch its proof from {where} and run "
                "again with --proof <that URL or a saved copy>"
            )
    index, size, audit_path, checkpoint_token = _read_proof(proof)
    if _is_count(seq) and seq != index + 1:
        raise Failure(f"the proof is for ledger event #{index + 1}, but the receipt is #{seq}")

    cp_header, checkpoint = jws_verify(
        checkpoint_token, jwks, "checkpoint", {"typ": CHECKPOINT_TYPE}
    )
    if checkpoint.get("format") != MERKLE_FORMAT:
        raise Failure(
            f"the checkpoint's format is {checkpoint.get('format')!r}, not {MERKLE_FORMAT!r}"
        )
    root = _hash_from_hex(checkpoint.get("root"))
    if not _is_count(checkpoint.get("size")) or root is None:
        raise Failure("the checkpoint does not sign a ledger size and a 64-digit root")
    report.ok(
        f"The checkpoint's signature is valid (key {cp_header['kid']}): the ledger held "
        f"{checkpoint['size']} events at {checkpoint.get('time')}."
    )
    if checkpoint["size"] != size:
        raise Failure(
            f"the proof is for a ledger of {size} events, but the checkpoint signs one of "
            f"{checkpoint['size']}"
        )

    if not verify_inclusion(leaf_hash(ledger_hash), index, size, audit_path, root):
        raise Failure(
            "the inclusion proof does not recompute the checkpoint's root: the receipt's "
            "event is not in the ledger the checkpoint signs, or the proof was altered"
        )
    report.ok(
        f"The proof recomputes the checkpoint's root: the receipt's event is entry "
        f"#{index + 1} of that ledger of {size} events."
    )

    controller = _controller_url(receipt)
    if checkpoint.get("ledger") != controller:
        raise Failure(
            f"the checkpoint is for the ledger of {checkpoint.get('ledger')!r}, but the "
            f"receipt names the controller {controller!r}"
        )
    report.ok(f"The checkpoint is for the ledger of {controller}, the controller on the receipt.")

    if args.follow and not args.consistency:
        args.consistency = _follow_url(receipt.get("consistencyUrl"), checkpoint["size"])
    published = _published_merkle_checkpoints(args.checkpoints) if args.checkpoints else None
    if published is not None:
        # With a consistency proof, the later checkpoint is the one that must be
        # published; the receipt's may have left the list (never with another root).
        _check_published(
            published,
            checkpoint_token,
            checkpoint,
            jwks,
            report,
            listed=not args.consistency,
            consistency_url=receipt.get("consistencyUrl"),
        )
    if args.consistency:
        later = _check_consistency(args.consistency, checkpoint, jwks, report)
        if published is not None:
            _check_published(published, later[0], later[1], jwks, report)
    if published is None:
        report.info(
            "Not compared with the published checkpoints; to do so, add --checkpoints "
            f"{controller}/.well-known/clareza-ledger-checkpoints.json"
        )


def _follow_url(url: object, size: int) -> str:
    """The receipt's consistencyUrl asked for a proof from `size` to the newest
    checkpoint."""
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise BadInput("--follow needs the receipt's consistencyUrl, and it has none")
    return f"{url}{'&' if '?' in url else '?'}first={size}"


def _check_consistency(
    source: str, checkpoint: dict, jwks: dict, report: Report
) -> tuple[str, dict]:
    """The receipt's checkpoint is the beginning of a later signed ledger
    (RFC 9162 consistency proof): the decision is still there. Returns the
    later checkpoint (token, payload)."""
    document = read_json(source, "consistency proof")
    if not isinstance(document, dict):
        raise BadInput(f"the consistency proof at {source} is not a JSON object")
    first, second = document.get("first"), document.get("second")
    if not (_is_count(first) and _is_count(second)):
        raise Failure("the consistency proof does not name two ledger sizes")
    if first != checkpoint["size"]:
        raise Failure(
            f"the consistency proof starts from a ledger of {first} events, but the receipt's "
            f"checkpoint is of {checkpoint['size']}: ask for ?first={checkpoint['size']}"
        )
    later_token = document.get("secondCheckpoint")
    later_header, later = jws_verify(
        later_token, jwks, "later checkpoint", {"typ": CHECKPOINT_TYPE}
    )
    later_root = _hash_from_hex(later.get("root"))
    if later.get("format") != MERKLE_FORMAT or later.get("size") != second or later_root is None:
        raise Failure("the later checkpoint does not sign the size the consistency proof names")
    if later.get("ledger") != checkpoint.get("ledger"):
        raise Failure("the later checkpoint is for another ledger")
    proof = document.get("proof")
    path = [_hash_from_hex(item) for item in proof] if isinstance(proof, list) else [None]
    if any(item is None for item in path):
        raise Failure("the consistency proof's hashes are not 64-digit hexadecimal hashes")
    old_root = _hash_from_hex(checkpoint.get("root"))
    if not verify_consistency(first, second, old_root, later_root, path):
        raise Failure(
            f"the ledger signed at {second} events does not begin with the one signed at "
            f"{first} events: it was rewritten since the receipt's checkpoint"
        )
    report.ok(
        f"The ledger signed later (key {later_header['kid']}: {second} events at "
        f"{later.get('time')}) begins with the receipt's checkpoint: nothing before it "
        "was changed since."
    )
    return later_token, later


def _published_merkle_checkpoints(source: str) -> list[tuple[str, dict]]:
    document = read_json(source, "published checkpoints")
    entries = document.get("checkpoints") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise BadInput(f'the published checkpoints at {source} are not {{"checkpoints": [...]}}')
    found = []
    for entry in entries:
        token = entry.get("token") if isinstance(entry, dict) else None
        payload = unverified_payload(token)
        # Checkpoints of the older hash chain (clareza-chain-v1) prove nothing here.
        if isinstance(payload, dict) and payload.get("format") == MERKLE_FORMAT:
            found.append((token, payload))
    return found


def _check_published(
    published: list[tuple[str, dict]],
    token: str,
    checkpoint: dict,
    jwks: dict,
    report: Report,
    *,
    listed: bool = True,
    consistency_url: object = None,
) -> None:
    """The signed tokens decide, not the list's plain fields. The same size with
    another root, signed by the controller, proves two different histories."""
    size, root = checkpoint["size"], checkpoint["root"].lower()
    found = False
    for other_token, payload in published:
        if payload.get("size") != size:
            continue
        same_root = str(payload.get("root", "")).lower() == root
        try:
            other_header, _ = jws_verify(
                other_token, jwks, "published checkpoint", {"typ": CHECKPOINT_TYPE}
            )
        except Failure as why:
            raise Failure(
                f"the published list holds a checkpoint for {size} events whose signature "
                f"does not verify ({why}): the list was tampered with"
            ) from None
        if not same_root:
            raise Failure(
                f"LEDGER FORKED: the controller also signed (key {other_header['kid']}) a "
                f"checkpoint for the same {size} events with a different root "
                f"({payload.get('root')} instead of {root}): its ledger was rewritten or shows "
                "different histories to different people; keep this receipt, the proof and the "
                "published list as evidence"
            )
        found = True
    if not found and not listed:
        report.info(
            f"This checkpoint ({size} events) is no longer in the published list, and none "
            "there gives another root for its size."
        )
        return
    if not found:
        where = consistency_url if isinstance(consistency_url, str) else "<consistencyUrl>"
        raise Failure(
            f"this checkpoint ({size} events, root {root}) is not among the "
            f"{len(published)} published Merkle checkpoints; a fresh proof from the "
            "receipt's proofUrl proves against a newer one, or run again with --follow "
            f"(which fetches {where}?first={size})"
        )
    report.ok(
        f"The checkpoint is among the {len(published)} published Merkle checkpoints, and "
        "none of them gives another root for the same size."
    )


# --- An auditor's evidence export ---------------------------------------------

EVENT_FORMAT = "clareza-event-v2"
EVENT_FORMAT_V1 = "clareza-event-v1"
SEPARATOR = "\x1f"


def canonical_hash(value: object) -> str:
    """SHA-256 of canonical JSON (sorted keys, no spaces, UTF-8): how the
    portal hashes a notice text and a policy version."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def event_hash(event: dict, notice_hash: str, policy_hash: str) -> str:
    """An event's content hash from its fields (format 2; format 1 for the
    events of the hash chain that came before the tree)."""
    policy = event["policyVersionId"]
    common = [
        str(event["uuid"]),
        str(event["subjectId"]),
        str(event["purposeId"]),
        notice_hash,
        "" if policy is None else str(policy),
    ]
    tail = [
        str(event["decision"]),
        str(event["method"]),
        str(event["createdAt"]),
        str(event["ipTruncated"]),
        str(event["userAgentFamily"]),
        "gpc" if event["gpc"] is True else "",
    ]
    if event.get("format") == EVENT_FORMAT_V1:
        fields = ["v1", str(event["seq"]), *common, *tail, str(event["prevHash"])]
    else:
        fields = [EVENT_FORMAT, *common, policy_hash, *tail]
    return hashlib.sha256(SEPARATOR.join(fields).encode("utf-8")).hexdigest()


def range_pieces(lo: int, hi: int, size: int) -> list[tuple[int, int, bool]]:
    """The leaf ranges [start, end) that RFC 9162's recursion for MTH(D[0:size])
    meets first that lie wholly inside [lo, hi) (True) or wholly outside it
    (False), left to right: the outside ones' hashes (O(log size) of them) and
    the inside leaves give the root. insight/evidence.py builds the export's
    range proofs with this same function."""
    pieces: list[tuple[int, int, bool]] = []

    def walk(start: int, end: int) -> None:
        if end <= lo or start >= hi:
            pieces.append((start, end, False))
        elif lo <= start and end <= hi:
            pieces.append((start, end, True))
        else:
            middle = start + (1 << ((end - start - 1).bit_length() - 1))
            walk(start, middle)
            walk(middle, end)

    if 0 <= lo < hi <= size:
        walk(0, size)
    return pieces


class _RangeRoot:
    """Recomputes one checkpoint's root from the range's leaf hashes, fed in
    order (memory: O(log n) whatever the range holds), and the hashes of the
    subtrees outside the range that its proof gives."""

    def __init__(self, lo: int, hi: int, size: int, outside: dict, name: str) -> None:
        self.name = name
        self.size = size
        self.known: dict[tuple[int, int], bytes] = {}
        self.inside: list[tuple[int, int]] = []
        for start, end, inside in range_pieces(lo, hi, size):
            if inside:
                self.inside.append((start, end))
            elif (start, end) in outside:
                self.known[(start, end)] = outside[(start, end)]
            else:
                raise Failure(
                    f"the range proof of {name} lacks the hash of leaves [{start}, {end})"
                )
        self.piece = 0
        self.nodes: list[bytes] = []
        self.count = 0

    def feed(self, leaf: bytes) -> None:
        self.count += 1
        carry, rest = leaf, self.count
        while not rest & 1:
            carry = node_hash(self.nodes.pop(), carry)
            rest >>= 1
        self.nodes.append(carry)
        start, end = self.inside[self.piece]
        if self.count == end - start:
            root = self.nodes[-1]
            for left in reversed(self.nodes[:-1]):
                root = node_hash(left, root)
            self.known[(start, end)] = root
            self.piece += 1
            self.nodes, self.count = [], 0

    def root(self) -> bytes:
        def mth(start: int, end: int) -> bytes:
            if (start, end) in self.known:
                return self.known[(start, end)]
            middle = start + (1 << ((end - start - 1).bit_length() - 1))
            return node_hash(mth(start, middle), mth(middle, end))

        return mth(0, self.size)


class _Evidence:
    """The export's files, from its ZIP or from the folder it was unzipped to."""

    def __init__(self, path: str) -> None:
        self.zip = None
        if os.path.isfile(path):
            try:
                self.zip = zipfile.ZipFile(path)
            except (OSError, zipfile.BadZipFile):
                raise BadInput(f"{path} is neither a folder nor a ZIP file") from None
        elif not os.path.isdir(path):
            raise BadInput(f"{path} is neither a folder nor a ZIP file")
        self.path = path

    def open(self, name: str):
        try:
            if self.zip is not None:
                return self.zip.open(name)
            return open(os.path.join(self.path, name), "rb")
        except (OSError, KeyError):
            raise BadInput(f"the evidence has no {name}") from None

    def json(self, name: str) -> object:
        with self.open(name) as handle:
            try:
                return json.loads(handle.read().decode("utf-8"))
            except ValueError:
                raise Failure(f"{name} is not JSON") from None


def _evidence_texts(evidence: _Evidence, report: Report) -> tuple[dict, dict]:
    """{notice id: hash}, {policy version id: hash}, each recomputed from its text."""
    notices = {}
    document = evidence.json("notices.json")
    for notice in document.get("notices", []) if isinstance(document, dict) else []:
        try:
            content, claimed = notice["content"], str(notice["contentHash"])
            label = (
                f"notice {notice['id']} ({notice.get('purpose')!r}, version {notice['version']})"
            )
            # A notice restored from an older version records which one in its hash.
            candidates = [canonical_hash(content)] + [
                canonical_hash({"revert_of": v, **content}) for v in range(1, notice["version"])
            ]
        except (KeyError, TypeError):
            raise Failure("notices.json holds a notice that is not readable") from None
        if claimed not in candidates:
            raise Failure(f"{label}: its text does not give its hash {claimed}: it was altered")
        notices[notice["id"]] = claimed
    report.ok(f"The {len(notices)} notice texts give their hashes.")
    policies = {}
    document = evidence.json("policies.json")
    for version in document.get("policyVersions", []) if isinstance(document, dict) else []:
        try:
            label = f"policy version {version['id']} ({version['policy']!r} #{version['number']})"
            computed, claimed = canonical_hash(version["document"]), str(version["contentHash"])
        except (KeyError, TypeError):
            raise Failure("policies.json holds a version that is not readable") from None
        if computed != claimed:
            raise Failure(f"{label}: its text does not give its hash {claimed}: it was altered")
        policies[version["id"]] = claimed
    report.ok(f"The {len(policies)} policy versions give their hashes.")
    return notices, policies


def _evidence_checkpoints(evidence: _Evidence, jwks: dict, report: Report) -> tuple:
    document = evidence.json("checkpoints.json")
    if not isinstance(document, dict) or not isinstance(document.get("checkpoints"), list):
        raise Failure('checkpoints.json is not {"checkpoints": [...]}')
    first, last = document.get("firstLeaf"), document.get("lastLeaf")
    roots = []
    for entry in document["checkpoints"]:
        header, checkpoint = jws_verify(
            entry.get("token") if isinstance(entry, dict) else None,
            jwks,
            "checkpoint",
            {"typ": CHECKPOINT_TYPE},
        )
        size, root = checkpoint.get("size"), _hash_from_hex(checkpoint.get("root"))
        if checkpoint.get("format") != MERKLE_FORMAT or not _is_count(size) or root is None:
            raise Failure("a checkpoint does not sign a Merkle tree's size and root")
        name = f"checkpoint #{size} (signed {checkpoint.get('time')})"
        report.ok(f"The signature of {name} is valid (key {header['kid']}).")
        if not (_is_count(first) and _is_count(last) and 1 <= first <= last <= size):
            raise Failure(f"{name} does not cover leaves {first} to {last}")
        outside = {}
        for item in entry.get("outside") or []:
            digest = _hash_from_hex(item.get("hash")) if isinstance(item, dict) else None
            if digest is None or not _is_count(item.get("start")) or not _is_count(item.get("end")):
                raise Failure(f"the range proof of {name} holds an unreadable hash")
            outside[(item["start"], item["end"])] = digest
        roots.append((_RangeRoot(first - 1, last, size, outside, name), root, name))
    return first, last, roots


def check_evidence(args: argparse.Namespace, report: Report) -> None:
    evidence = _Evidence(args.evidence)
    manifest = evidence.json("manifest.json")
    if not isinstance(manifest, dict):
        raise Failure("manifest.json is not a JSON object")
    period = manifest.get("range") or {}
    report.info(
        f"Evidence of {manifest.get('ledger')}, days {period.get('from')} to {period.get('to')} "
        f"({period.get('timeZone')})."
    )
    jwks = read_jwks(args.jwks) if args.jwks else evidence.json("jwks.json")
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise Failure('jwks.json is not a JWKS document ({"keys": [...]})')
    notices, policies = _evidence_texts(evidence, report)
    first, last, roots = _evidence_checkpoints(evidence, jwks, report)
    expected = first if roots else None
    sealed = unsealed = 0
    with evidence.open("events.jsonl") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                event = json.loads(raw.decode("utf-8"))
                name = f"event {event['uuid']} (line {number} of events.jsonl)"
                notice_hash = notices.get(event["noticeId"])
                policy_hash = policies.get(event["policyVersionId"], "")
                leaf = event["leaf"]
            except (ValueError, KeyError, TypeError):
                raise Failure(f"line {number} of events.jsonl is not an event") from None
            if notice_hash is None:
                raise Failure(f"{name} cites notice {event['noticeId']}, not in notices.json")
            if event["policyVersionId"] is not None and event["policyVersionId"] not in policies:
                raise Failure(
                    f"{name} cites policy version {event['policyVersionId']}, not in policies.json"
                )
            try:
                computed = event_hash(event, notice_hash, policy_hash)
            except (KeyError, TypeError):
                raise Failure(f"{name} lacks a field its hash covers") from None
            if computed != event.get("hash"):
                raise Failure(f"{name}: its fields do not give its hash: the event was altered")
            if leaf is None:
                unsealed += 1
                expected = None
                continue
            if leaf != expected:
                raise Failure(
                    f"{name} is at leaf {leaf} where leaf {expected} was expected: "
                    "events were removed, added or reordered"
                )
            digest = leaf_hash(bytes.fromhex(computed))
            for folder, _, _ in roots:
                folder.feed(digest)
            sealed += 1
            expected = leaf + 1 if leaf < last else None
    report.ok(f"The {sealed + unsealed} events give their hashes.")
    if roots and sealed != last - first + 1:
        raise Failure(
            f"events.jsonl holds {sealed} sealed events but the range has "
            f"{last - first + 1} leaves ({first} to {last}): events were removed"
        )
    for folder, root, name in roots:
        if folder.root() != root:
            raise Failure(
                f"the range proof does not recompute the root of {name}: events of the range, "
                "or the proof's hashes, were altered"
            )
        report.ok(f"The events and the range proof recompute the root of {name}.")
    if sealed:
        report.ok(f"Events at leaves {first} to {last} are in the signed ledger.")
    if unsealed:
        report.info(
            f"{unsealed} events were not sealed yet when this was prepared: their hashes "
            "are checked, but no signed checkpoint covers them here."
        )


# --- Command line -------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="verify_offline.py",
        description="Check a Clareza consent receipt against the controller's published keys "
        "and ledger checkpoints.",
    )
    parser.add_argument(
        "receipt", metavar="RECEIPT_FILE", nargs="?", help='the receipt (a JWS); "-" for stdin'
    )
    parser.add_argument("--jwks", metavar="FILE_OR_URL", help="the published keys")
    parser.add_argument(
        "--evidence",
        metavar="FOLDER_OR_ZIP",
        help="check an auditor's evidence export instead of a receipt",
    )
    parser.add_argument("--proof", metavar="FILE_OR_URL", help="a fresh proof (the proofUrl)")
    parser.add_argument(
        "--checkpoints", metavar="FILE_OR_URL", help="the published ledger checkpoints"
    )
    parser.add_argument(
        "--consistency",
        metavar="FILE_OR_URL",
        help="a consistency proof from the receipt's checkpoint to a later one "
        "(the receipt's consistencyUrl with ?first=<the checkpoint's size>)",
    )
    parser.add_argument(
        "--follow",
        action="store_true",
        help="fetch that consistency proof, to the newest checkpoint, from the receipt's "
        "consistencyUrl (this contacts the controller's portal)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse has printed the usage or the help
        return 0 if stop.code == 0 else 2
    if not args.evidence and (args.receipt is None or not args.jwks):
        parser.print_usage(sys.stderr)
        print("error: give a receipt and --jwks, or --evidence FOLDER_OR_ZIP", file=sys.stderr)
        return 2
    report = Report(sys.stdout)
    try:
        if args.evidence:
            check_evidence(args, report)
        else:
            check(args, report)
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Failure as failure:
        print(f"FAIL  {failure}.", file=sys.stdout)
        return 1
    print("PASS  Every check passed.", file=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
