"""ReceiptSigner (many receipts with a few queries per batch, for a copy of
one's data) gives exactly the receipts that receipt_jws gives one by one:
the same payload, place, covering checkpoint and inclusion proof, whether an
event is covered by a checkpoint or only by the newest seal."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consents import ledger, services
from consents.models import ConsentEvent, Decision, Method
from consents.receipts import ReceiptSigner, public_jwks, receipt_payload, receipt_verify
from tests.conftest import make_user


@pytest.fixture
def export(settings, tmp_path):
    settings.LEDGER_CHECKPOINT_FILE = tmp_path / "ledger-checkpoints.jsonl"


def decide(person, purpose, decision):
    return services.consent_record(
        subject_id=person.subject_id, purpose=purpose, decision=decision, method=Method.PANEL
    )


def events_of(person) -> list[ConsentEvent]:
    return list(
        ConsentEvent.objects.filter(subject_id=person.subject_id)
        .select_related("purpose", "notice")
        .prefetch_related("purpose__data_categories")
        .order_by("id")
    )


def test_batched_receipts_equal_the_receipts_made_one_by_one(customer, purposes, export):
    other = make_user("other-signer@example.com")
    keys = ["newsletter", "recommendations", "tailored-offers"]
    # More than one block of leaves (256), so that stored nodes take part.
    for round_ in range(140):
        decision = Decision.GRANTED if round_ % 2 == 0 else Decision.WITHDRAWN
        for person in (customer, other):
            decide(person, purposes[keys[round_ % 3]], decision)
        if round_ == 60:
            covered = services.ledger_checkpoint_make()  # seals, then signs a checkpoint
    ledger.seal()  # the later events: only under the newest seal
    assert 0 < covered.size < ledger.LedgerSeal.objects.order_by("-size").first().size

    events = events_of(customer)
    signer = ReceiptSigner(language="pt-br")
    half = len(events) // 2
    signed = signer.sign(events[:half]) + signer.sign(events[half:])
    jwks = public_jwks()
    batched = [receipt_verify(token, jwks) for token in signed]
    one_by_one = [receipt_payload(event, language="pt-br") for event in events]
    assert batched == one_by_one
    # All three cases are there.
    assert {p["coveredBy"]["size"] for p in batched if p["coveredBy"]} == {covered.size}
    assert any(p["ledgerSeq"] and not p["coveredBy"] for p in batched)
    assert max(p["ledgerSeq"] for p in batched) > ledger.BLOCK


def test_a_batch_costs_a_few_queries_however_many_receipts(customer, purposes, export):
    for round_ in range(40):
        decide(customer, purposes["newsletter"], [Decision.GRANTED, Decision.WITHDRAWN][round_ % 2])
    services.ledger_checkpoint_make()
    events = events_of(customer)
    signer = ReceiptSigner()
    with CaptureQueriesContext(connection) as few:
        signer.sign(events[:4])
    with CaptureQueriesContext(connection) as many:
        signer.sign(events)
    assert len(many) <= len(few) + 2  # leaf blocks may add a read; never one per receipt
