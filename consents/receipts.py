"""Consent receipts: the Kantara Consent Receipt v1.1 fields for one ledger
event, signed as a compact JWS (ES256) with the portal's current key (consents.keys).
Every key ever used is published at /.well-known/jwks.json, so anyone can
verify any receipt."""

from __future__ import annotations

import bisect
import functools
import json
import logging
import secrets

from django.conf import settings
from django.core.signals import setting_changed
from django.db import connection
from django.dispatch import receiver
from django.urls import get_script_prefix, get_urlconf, reverse
from joserfc import jws
from joserfc.jwk import ECKey, KeySet

from consents import ledger
from consents.checkpoints import checkpoint_time
from consents.keys import ALGORITHM, jws_compact, public_jwks, signing_key
from consents.models import (
    ConsentEvent,
    Decision,
    LedgerCheckpoint,
    LedgerLeaf,
    LedgerSeal,
    LegalBasis,
    legal_basis_codes,
)

logger = logging.getLogger(__name__)
__all__ = [
    "ReceiptSigner",
    "public_jwks",
    "receipt_json",
    "receipt_jws",
    "receipt_payload",
    "receipt_verify",
]
COLLECTION_METHODS = {
    "signup": "web form: sign-up",
    "newsletter": "web form: newsletter, confirmed by email (double opt-in)",
    "panel": "web form: control panel",
    "email_link": "email link",
    "gpc": "Global Privacy Control signal (Sec-GPC: 1)",
    "staff": "staff, at the customer's request",
    "expiry": "purpose retired or consent expired",
    "checkout": "shop checkout, recorded through the API",
    "call_centre": "call centre, recorded through the API",
    "in_store": "in store, recorded through the API",
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


def receipt_payload(
    event: ConsentEvent,
    *,
    language: str = "en",
    key: ECKey | None = None,
    position: dict | None = None,
    notice_ok: bool | None = None,
) -> dict:
    """Kantara CR v1.1 for one event (`event` with purpose, notice and the
    purpose's data categories prefetched), plus the ledger position that proves it:
    what receipt_json gives, as a dict."""
    return json.loads(
        receipt_json(event, language=language, key=key, position=position, notice_ok=notice_ok)
    )


def receipt_json(
    event: ConsentEvent,
    *,
    language: str = "en",
    key: ECKey | None = None,
    position: dict | None = None,
    notice_ok: bool | None = None,
) -> str:
    """The receipt's payload as the JSON text that is signed.
    ReceiptUnavailable when the notice text or the event no longer match
    their hashes: the portal's signature never covers a rewritten text.
    `position` and `notice_ok`: already worked out by a ReceiptSigner."""
    if not ledger.event_intact(event, notice_ok=notice_ok):
        logger.critical("No receipt signed for event %s: it fails its integrity check", event.uuid)
        raise ReceiptUnavailable(str(event.uuid))
    site = settings.SITE_URL
    paths = _receipt_paths()
    key = key or signing_key()
    template = _template(event.notice, language, key, site, paths)
    return template.fill(
        (
            int(event.created_at.timestamp()),
            COLLECTION_METHODS.get(event.method, event.method),
            str(event.uuid),
            str(event.subject_id),
            event.decision,
            event.decision == Decision.GRANTED,
            event.policy_version_id,
        ),
        position if position is not None else _ledger_position(event, site, paths),
    )


# What differs from one receipt of a notice to the next, in the order of _shape.
_PER_EVENT = (
    "consentTimestamp",
    "collectionMethod",
    "consentReceiptID",
    "piiPrincipalId",
    "decision",
    "consented",
    "policyVersion",
)
_MARK = f"clareza-receipt-{secrets.token_hex(8)}-"  # no notice's text can hold it
_encode = json.JSONEncoder(separators=(",", ":")).encode


class _Template:
    """A notice's receipt as JSON text with a gap for each value of _PER_EVENT
    and the ledger position last: filling it gives the bytes json.dumps would
    give for the whole payload, and a decision's receipt encodes seven values
    rather than the notice's texts, the controller and the key each time."""

    def __init__(self, shape: dict) -> None:
        text = _encode(shape)
        assert text.endswith("}")
        self.chunks: list[str] = []
        for name in _PER_EVENT:
            before, gap, text = text.partition(_encode(_MARK + name))
            assert gap, name
            self.chunks.append(before)
        self.chunks.append(text[:-1])  # the position's keys follow the last value

    def fill(self, values: tuple, position: dict) -> str:
        parts = []
        for chunk, value in zip(self.chunks, values, strict=False):
            parts.append(chunk)
            parts.append(_encode(value))
        parts.append(self.chunks[-1])
        parts.append("," + _encode(position)[1:])
        return "".join(parts)


_templates: dict[tuple, _Template] = {}


@receiver(setting_changed)
def _forget_templates(**kwargs) -> None:
    _templates.clear()  # the controller, the site: a test may change them


def _template(notice, language: str, key: ECKey, site: str, paths: dict[str, str]) -> _Template:
    """The notice's template, made once per notice, language, key and paths
    (notices are never changed: a trigger refuses it; the hash is in the key
    all the same, for databases that give a rolled-back id again)."""
    cache_key = (notice.pk, notice.content_hash, language, key.kid, site, tuple(paths.values()))
    template = _templates.get(cache_key)
    if template is None:
        if len(_templates) >= 1000:
            _templates.clear()
        marks = {name: _MARK + name for name in _PER_EVENT}
        template = _Template(
            _shape(notice, language=language, key=key, site=site, paths=paths, event=marks)
        )
        _templates[cache_key] = template
    return template


def _shape(notice, *, language: str, key: ECKey, site: str, paths: dict, event: dict) -> dict:
    """The payload but for the ledger position, the event's own values
    taken from `event` (by the names of _PER_EVENT)."""
    content = notice.content
    notice_text = notice.text(language)
    # Everything below comes from the notice the person read, not today's inventory.
    sensitive = notice_text.get("sensitive_data_categories", [])
    basis = legal_basis_codes(content["legal_basis"], sensitive=bool(sensitive))
    return {
        "version": "KI-CR-v1.1.0",
        "jurisdiction": "BR; EU",
        "consentTimestamp": event["consentTimestamp"],
        "collectionMethod": event["collectionMethod"],
        "consentReceiptID": event["consentReceiptID"],
        "publicKey": key.as_dict(private=False),
        "language": language,
        "piiPrincipalId": event["piiPrincipalId"],
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
                        if content["legal_basis"] == LegalBasis.CONSENT
                        else "NOT APPLICABLE",
                        "piiCategory": notice_text["data_categories"],
                        "primaryPurpose": False,
                        "termination": f"P{content['retention_days']}D after "
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
        "decision": event["decision"],
        "consented": event["consented"],
        "noticeVersion": notice.version,
        "noticeHash": notice.content_hash,
        "policyVersion": event["policyVersion"],
    }


def _ledger_position(event: ConsentEvent, site: str, paths: dict[str, str]) -> dict:
    """Where the event is in the ledger and the proof of it: its place once
    sealed (seconds after the decision), an RFC 9162 inclusion proof against
    the first published checkpoint that covers it (or the newest signed seal
    until one does), and where to fetch a proof and the checkpoints later.
    `python3 clareza-verify.py` checks all of it with the published keys alone.

    A receipt signed as its decision is recorded (within a second of it, in
    the process that recorded it) has no place to look up: the event was
    committed microseconds earlier and the sealer runs seconds apart, so it
    is not in the tree yet; the receipt says so, and its proofUrl gives the
    proof once the event is sealed."""
    if ledger.recorded_just_now(event):
        return _position(event, site, paths, place=None, covering=None, proof=None)
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
    return _position(event, site, paths, place=place, covering=covering, proof=proof)


def _position(event, site: str, paths: dict[str, str], *, place, covering, proof) -> dict:
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


def _signed(payload: str, key: ECKey) -> str:
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": "JWT", "cty": "kantara-cr+json"}
    return jws_compact(header, payload.encode(), key)


def receipt_jws(event: ConsentEvent, *, language: str = "en") -> str:
    key = signing_key()
    return _signed(receipt_json(event, language=language, key=key), key)


class ReceiptSigner:
    """The receipts of many events (a copy of one's data: thousands), the
    same as receipt_jws gives one by one, with a few queries per batch
    instead of several per receipt: the places of a batch in one query, the
    checkpoints that cover them in one, the inclusion proofs from one read of
    the stored nodes and of each block of leaves they need, each notice's
    text checked once. Memory holds one batch and the checkpoints' sizes."""

    def __init__(self, *, language: str = "en") -> None:
        self.language = language
        self.site = settings.SITE_URL
        self.paths = _receipt_paths()
        self.key = signing_key()
        self.checkpoint_sizes = list(
            LedgerCheckpoint.objects.order_by("size").values_list("size", flat=True)
        )
        self.newest = LedgerSeal.objects.order_by("-size").values_list("size", "token").first()
        self.notices_ok: dict[int, bool] = {}

    def _covering_size(self, place: int | None) -> int | None:
        if place is None:
            return None
        at = bisect.bisect_left(self.checkpoint_sizes, place)
        return self.checkpoint_sizes[at] if at < len(self.checkpoint_sizes) else None

    def _target(self, place: int | None, sealed: dict[int, str]) -> int | None:
        """The tree size a place is proved in: its covering checkpoint's seal,
        else the newest seal (as inclusion_proof does for one event)."""
        if place is None:
            return None
        size = self._covering_size(place)
        if size and size in sealed:
            return size
        if self.newest and self.newest[0] >= place:
            return self.newest[0]
        return None

    def sign(self, events: list[ConsentEvent]) -> list[str | None]:
        """One receipt per event, in order; None for an event that fails its
        integrity check (nothing is signed over it, as receipt_jws refuses)."""
        places = dict(
            LedgerLeaf.objects.filter(event_id__in=[e.pk for e in events]).values_list(
                "event_id", "seq"
            )
        )
        covering_sizes = {self._covering_size(place) for place in places.values()} - {None}
        covering: dict[int, tuple] = {}
        for row in (
            LedgerCheckpoint.objects.filter(size__in=covering_sizes)
            .order_by("size", "pk")
            .values_list("size", "created_at", "token")
        ):
            covering.setdefault(row[0], row)
        sealed = dict(
            LedgerSeal.objects.filter(size__in=[s for s in covering_sizes if s]).values_list(
                "size", "token"
            )
        )
        targets: dict[int, list[int]] = {}
        for place in places.values():
            target = self._target(place, sealed)
            if target is not None:
                targets.setdefault(target, []).append(place)
        proofs: dict[tuple[int, int], ledger.InclusionProof] = {}
        for size, group in targets.items():
            token = sealed.get(size) or self.newest[1]
            for place, proof in ledger.inclusion_proofs(group, size, token).items():
                proofs[(size, place)] = proof
        signed = []
        for event in events:
            place = places.get(event.pk)
            target = self._target(place, sealed)
            position = _position(
                event,
                self.site,
                self.paths,
                place=place,
                covering=covering.get(self._covering_size(place)),
                proof=proofs.get((target, place)),
            )
            if event.notice_id not in self.notices_ok:
                self.notices_ok[event.notice_id] = ledger.notice_intact(event.notice)
            try:
                payload = receipt_json(
                    event,
                    language=self.language,
                    key=self.key,
                    position=position,
                    notice_ok=self.notices_ok[event.notice_id],
                )
            except ReceiptUnavailable:
                signed.append(None)
                continue
            signed.append(_signed(payload, self.key))
        return signed


def receipt_verify(token: str, jwks: dict) -> dict:
    """Check a receipt against a published key set and return its payload."""
    keys = KeySet.import_key_set(jwks)
    result = jws.deserialize_compact(token, keys, algorithms=[ALGORITHM])
    return json.loads(result.payload)
