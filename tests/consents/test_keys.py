"""Signing keys of their own (issue 9, item 6): receipts, the ledger's seals and
its checkpoints survive a new SECRET_KEY and any number of key rotations,
because every key ever used stays published."""

from __future__ import annotations

import base64
import json
import os
import stat
import uuid
from io import StringIO

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from django.core.management import call_command
from joserfc import jws
from joserfc.errors import BadSignatureError

from consents import checkpoints, keys, ledger, merkle
from consents.models import Decision, LedgerSeal, Method
from consents.receipts import receipt_jws, receipt_verify
from consents.services import RequestFacts, consent_record
from tests.consents.ledger_support import drop_tree_triggers


@pytest.fixture
def key_dir(settings, tmp_path):
    settings.SIGNING_KEY_DIR = tmp_path / "keys"
    settings.RECEIPT_SIGNING_KEY = ""
    return settings.SIGNING_KEY_DIR


def grant(purposes, key="newsletter"):
    return consent_record(
        subject_id=uuid.uuid4(),
        purpose=purposes[key],
        decision=Decision.GRANTED,
        method=Method.PANEL,
        facts=RequestFacts(),
    )


def published(client) -> dict:
    return json.loads(client.get("/.well-known/jwks.json").content)


def kid_of(token: str) -> str:
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def test_the_first_key_is_made_on_first_use_readable_by_its_owner_only(key_dir, purposes):
    assert not key_dir.exists()
    grant(purposes)
    assert not key_dir.exists()  # a decision signs nothing: the sealer does
    ledger.seal()
    (only,) = key_dir.glob("*.pem")
    assert stat.S_IMODE(only.stat().st_mode) == 0o600
    assert only.stem.endswith(keys.signing_key().kid)


def test_a_new_secret_key_changes_nothing_the_ledger_and_receipts_prove(
    client, key_dir, purposes, settings
):
    event = grant(purposes)
    ledger.seal()
    token = receipt_jws(event)
    settings.SECRET_KEY = "a-brand-new-secret-" + "x9" * 30
    verdict = ledger.verify()
    assert verdict.intact and verdict.seals == 1, verdict.problem
    assert receipt_verify(token, published(client))["consentReceiptID"] == str(event.uuid)
    assert grant(purposes, "recommendations") is not None
    assert ledger.seal().sealed == 1  # the sealer trusts the seal made before
    assert ledger.verify().intact


def test_after_rotations_every_receipt_and_seal_ever_issued_still_verifies(
    client, key_dir, purposes
):
    first = grant(purposes)
    first_seal = ledger.seal().seal
    first_token = receipt_jws(first)
    out = StringIO()
    call_command("rotate_signing_key", stdout=out)
    assert "1 earlier key(s) stay published" in out.getvalue()
    second = grant(purposes, "recommendations")
    # The sealer checks the last seal, signed by the earlier key, and goes on.
    second_seal = ledger.seal().seal
    second_token = receipt_jws(second)
    keys.key_rotate()

    assert kid_of(first_token) != kid_of(second_token)
    assert kid_of(first_seal.token) == kid_of(first_token)
    assert kid_of(second_seal.token) == kid_of(second_token)
    jwks = published(client)
    assert len(jwks["keys"]) == 3
    assert jwks["keys"][0]["kid"] == keys.signing_key().kid
    assert all("d" not in k for k in jwks["keys"])  # public halves only
    assert receipt_verify(first_token, jwks)["consentReceiptID"] == str(first.uuid)
    assert receipt_verify(second_token, jwks)["consentReceiptID"] == str(second.uuid)
    # The inclusion proof a receipt carried, against a seal by a retired key.
    proof = receipt_verify(first_token, jwks)["inclusionProof"]
    signed = checkpoints.checkpoint_verify(proof["checkpoint"], source="the receipt")
    assert merkle.verify_inclusion(
        merkle.leaf_hash(bytes.fromhex(first.hash)),
        proof["leafIndex"],
        proof["treeSize"],
        [bytes.fromhex(h) for h in proof["auditPath"]],
        bytes.fromhex(signed.root),
    )
    assert ledger.verify().intact
    grant(purposes, "tailored-offers")
    assert kid_of(ledger.seal().seal.token) == keys.signing_key().kid
    verdict = ledger.verify()
    assert verdict.intact and verdict.count == 3, verdict.problem


def test_a_receipt_signed_by_a_key_the_portal_never_had_does_not_verify(client, key_dir, purposes):
    event = grant(purposes)
    token = receipt_jws(event)
    stranger = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    other = keys._jwk(stranger)
    payload = token.split(".")[1]
    forged = jws.serialize_compact({"alg": "ES256", "kid": kid_of(token)}, _b64(payload), other)
    with pytest.raises(BadSignatureError):
        receipt_verify(forged, published(client))


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_seal_signed_by_an_unknown_key_is_refused(key_dir, purposes):
    grant(purposes)
    seal = ledger.seal().seal
    header, payload, signature = seal.token.split(".")
    drop_tree_triggers()
    stranger = b64url(json.dumps({"alg": "ES256", "kid": "someone-elses-key"}).encode())
    LedgerSeal.objects.filter(pk=seal.pk).update(token=f"{stranger}.{payload}.{signature}")
    assert "the seal was rewritten" in ledger.verify().problem
    assert grant(purposes, "recommendations") is not None  # decisions are never refused
    with pytest.raises(ledger.LedgerIntegrityError, match="the last seal does not verify"):
        ledger.seal()
    LedgerSeal.objects.filter(pk=seal.pk).update(token=f"{header}.{payload}.{signature[:-4]}AAAA")
    assert not ledger.verify().intact
    with pytest.raises(ledger.LedgerIntegrityError, match="the last seal does not verify"):
        ledger.seal()
    LedgerSeal.objects.filter(pk=seal.pk).update(token=seal.token)
    assert ledger.seal().sealed == 1


def test_a_key_given_in_the_environment_signs_and_stays_published_after_it_is_unset(
    client, key_dir, purposes, settings
):
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    settings.RECEIPT_SIGNING_KEY = pem
    given = keys._jwk(pem).kid
    token = receipt_jws(grant(purposes))
    assert kid_of(token) == given
    settings.RECEIPT_SIGNING_KEY = ""
    keys.key_rotate()
    assert given in {k["kid"] for k in published(client)["keys"]}
    assert receipt_verify(token, published(client))


def test_a_key_added_within_the_same_mtime_tick_is_still_found(key_dir, purposes):
    """The key ring is cached on the folder's mtime; a rotation by another
    process that a coarse clock leaves invisible must not make its signatures
    unknown here (the sealer would refuse to go on)."""
    grant(purposes)
    keys.keyring()  # cached in this process
    before = key_dir.stat()
    other_process_key = keys._jwk(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    keys._store(
        other_process_key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        other_process_key,
    )
    os.utime(key_dir, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert other_process_key.kid not in keys.keyring().keys  # the cache did not see it
    signature = f"{other_process_key.kid}.{keys.sign(b'x').partition('.')[2]}"
    assert not keys.verify(b"x", signature)  # a signature by another key is still refused
    r, s = decode_dss_signature(other_process_key.private_key.sign(b"x", ec.ECDSA(SHA256())))
    raw = base64.urlsafe_b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).rstrip(b"=")
    assert keys.verify(b"x", f"{other_process_key.kid}.{raw.decode()}")


def test_a_receipt_jws_is_made_without_joserfc_and_verifies_with_it(key_dir):
    """keys.jws_compact signs as joserfc would: joserfc verifies it with the
    published key, header and payload as given; nothing but ES256 is signed."""
    from joserfc.jwk import KeySet

    key = keys.signing_key()
    payload = json.dumps({"decision": "granted", "text": "ação"}).encode()
    token = keys.jws_compact({"alg": "ES256", "kid": key.kid, "typ": "JWT"}, payload, key)
    published = KeySet.import_key_set(keys.public_jwks())
    result = jws.deserialize_compact(token, published, algorithms=["ES256"])
    assert result.payload == payload
    assert result.protected == {"alg": "ES256", "kid": key.kid, "typ": "JWT"}
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(BadSignatureError):
        jws.deserialize_compact(tampered, published, algorithms=["ES256"])
    with pytest.raises(ValueError, match="only ES256"):
        keys.jws_compact({"alg": "HS256"}, payload, key)
