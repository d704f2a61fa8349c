"""Consent receipts: the Kantara Consent Receipt v1.1 fields for one ledger
event, signed as a compact JWS (ES256) with the portal's current key (consents.keys).
Every key ever used is published at /.well-known/jwks.json, so anyone can
verify any receipt."""

from __future__ import annotations

import functools
import json
import logging

from django.conf import settings
from django.db import connection
from django.urls import get_script_prefix, get_urlconf, reverse
from joserfc import jws
from joserfc.jwk import ECKey, KeySet

from consents import ledger
from consents.checkpoints import checkpoint_time
from consents.keys import ALGORITHM, public_jwks, signing_key
from consents.models import (
    ConsentEvent,
    Decision,
    LedgerCheckpoint,
    LedgerSeal,
    LegalBasis,
    legal_basis_codes,
)

logger = logging.getLogger(__name__)
__all__ = ["public_jwks", "receipt_jws", "receipt_payload", "receipt_verify"]
COLLECTION_METHODS = {
    "signup": "web form: sign-up",
    "newsletter": "web form: newsletter, confirmed by email (double opt-in)",
    "panel": "web form: control panel",
    "email_link": "email link",
    "gpc": "Global Privacy Control signal (Sec-GPC: 1)",
    "staff": "staff, at the customer's request",
    "expiry": "purpose retired or consent expired",
}


class ReceiptUnavailable(Exception):
    """The event's record fails its integrity check: no receipt is signed."""


_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


@functools.lru_cache(maxsize=16)
def _paths(prefix: str, urlconf: str | None, root: str) -> dict[str, str]:
    """The paths every receipt names, reversed once per script prefix and URL
    configuration (reverse() is a fifth of a receipt's cost otherwise); the
    proof's path is a template for the receipt's id."""
    return {
        "privacy": reverse("consents:privacy"),
        "proof": reverse("consents:ledger_proof", args=[_PLACEHOLDER]).replace(_PLACEHOLDER, "{}"),
        "consistency": reverse("consents:ledger_consistency"),
        "checkpoints": reverse("consents:ledger_checkpoints"),
    }


def _receipt_paths() -> dict[str, str]:
    return _paths(get_script_prefix(), get_urlconf(), settings.ROOT_URLCONF)


def receipt_payload(event: ConsentEvent, *, language: str = "en", key: ECKey | None = None) -> dict:
    """Kantara CR v1.1 for one event (`event` with purpose, notice and the
    purpose's data categories prefetched), plus the ledger position that proves it.
    ReceiptUnavailable when the notice text or the event no longer match
    their hashes: the portal's signature never covers a rewritten text."""
    if not ledger.event_intact(event):
        logger.critical("No receipt signed for event %s: it fails its integrity check", event.uuid)
        raise ReceiptUnavailable(str(event.uuid))
    content = event.notice.content
    notice_text = event.notice.text(language)
    # Everything below comes from the notice the person read, not today's inventory.
    sensitive = notice_text.get("sensitive_data_categories", [])
    basis = legal_basis_codes(content["legal_basis"], sensitive=bool(sensitive))
    site = settings.SITE_URL
    paths = _receipt_paths()
    key = key or signing_key()
    return {
        "version": "KI-CR-v1.1.0",
        "jurisdiction": "BR; EU",
        "consentTimestamp": int(event.created_at.timestamp()),
        "collectionMethod": COLLECTION_METHODS.get(event.method, event.method),
        "consentReceiptID": str(event.uuid),
        "publicKey": key.as_dict(private=False),
        "language": language,
        "piiPrincipalId": str(event.subject_id),
        "piiControllers": [
            {
                "piiController": settings.CONTROLLER_NAME,
                "contact": settings.DPO_NAME,
                "address": settings.CONTROLLER_ADDRESS,
                "email": settings.CONTROLLER_EMAIL,
                "phone": settings.CONTROLLER_PHONE,
                "piiControllerUrl": site,
            }
        ],
        "policyUrl": site + paths["privacy"],
        "services": [
            {
                "service": settings.CONTROLLER_NAME,
                "purposes": [
                    {
                        "purpose": notice_text["name"],
                        "purposeCategory": [content["dpv_code"]] if content.get("dpv_code") else [],
                        "consentType": "EXPLICIT"
                        if event.notice.content["legal_basis"] == LegalBasis.CONSENT
                        else "NOT APPLICABLE",
                        "piiCategory": notice_text["data_categories"],
                        "primaryPurpose": False,
                        "termination": f"P{event.notice.content['retention_days']}D after "
                        "last use, or on withdrawal",
                        "thirdPartyDisclosure": bool(notice_text["recipients"]),
                        "thirdPartyName": notice_text["recipients"],
                    }
                ],
            }
        ],
        "sensitive": bool(sensitive),
        "spiCat": sensitive,
        # Extensions: what was decided, on which exact text, and where in the ledger.
        "legalBasis": {
            "code": content["legal_basis"],
            "gdpr": basis["gdpr"],
            "lgpd": basis["lgpd"],
            "dpv": basis["dpv"],
        },
        "decision": event.decision,
        "consented": event.decision == Decision.GRANTED,
        "noticeVersion": event.notice.version,
        "noticeHash": event.notice.content_hash,
        "policyVersion": event.policy_version_id,
        **_ledger_position(event, site, paths),
    }


def _ledger_position(event: ConsentEvent, site: str, paths: dict[str, str]) -> dict:
    """Where the event is in the ledger and the proof of it: its place once
    sealed (seconds after the decision), an RFC 9162 inclusion proof against
    the first published checkpoint that covers it (or the newest signed seal
    until one does), and where to fetch a proof and the checkpoints later.
    `python3 clareza-verify.py` checks all of it with the published keys alone."""
    with connection.cursor() as cursor:  # plain SQL: it runs for every receipt
        cursor.execute("SELECT seq FROM consents_ledgerleaf WHERE event_id = %s", [event.pk])
        row = cursor.fetchone()
    place = row[0] if row else None
    covering = None
    if place is not None:
        covering = (
            LedgerCheckpoint.objects.filter(size__gte=place)
            .order_by("size")
            .values_list("size", "created_at", "token")
            .first()
        )
    proof = None
    if place is not None:
        proof_size = None
        if covering and covering[0] and LedgerSeal.objects.filter(size=covering[0]).exists():
            proof_size = covering[0]
        proof = ledger.inclusion_proof(event, size=proof_size)
    return {
        "ledgerSeq": place,
        "ledgerHash": event.hash,
        "inclusionProof": proof.as_dict() if proof else None,
        "proofUrl": site + paths["proof"].format(event.uuid),
        # RFC 9162 consistency proofs between two signed sizes (?first=&second=).
        "consistencyUrl": site + paths["consistency"],
        # The signed checkpoint that covers this event, once there is one; the
        # list (and so any later one) is at ledgerCheckpoints.
        "ledgerCheckpoints": site + paths["checkpoints"],
        "coveredBy": {
            "size": covering[0],
            "time": checkpoint_time(covering[1]),
            "token": covering[2],
        }
        if covering
        else None,
    }


def receipt_jws(event: ConsentEvent, *, language: str = "en") -> str:
    key = signing_key()
    payload = json.dumps(receipt_payload(event, language=language, key=key), separators=(",", ":"))
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": "JWT", "cty": "kantara-cr+json"}
    return jws.serialize_compact(header, payload.encode(), key)


def receipt_verify(token: str, jwks: dict) -> dict:
    """Check a receipt against a published key set and return its payload."""
    keys = KeySet.import_key_set(jwks)
    result = jws.deserialize_compact(token, keys, algorithms=[ALGORITHM])
    return json.loads(result.payload)
