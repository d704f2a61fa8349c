"""Attacks by someone with database access (issue 9), replayed: a forged head is
never re-signed by an honest decision, rewritten notices and derived state are
named by verify_ledger, and verification is one consistent snapshot."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import DatabaseError, connection, transaction

from consents import ledger
from consents.demo import seed_inventory
from consents.models import ConsentEvent, ConsentState, Decision, LedgerHead, PurposeNotice
from consents.services import ConsentError, purpose_notice_refresh
from tests.consents.ledger_support import (
    drop_append_only_triggers,
    drop_event_triggers,
    recompute_chain_from,
)
from tests.consents.test_ledger import record, verify_output

NOTICES = "consents_purposenotice"


@pytest.fixture
def attacked(purposes):
    """Six decisions, then the append-only triggers dropped (rolled back after
    the test), as an attacker with database access would."""
    subjects = [uuid.uuid4() for _ in range(3)]
    record(purposes, subjects[0], "newsletter")
    record(purposes, subjects[1], "recommendations")
    record(purposes, subjects[2], "ad-partners", Decision.REFUSED)
    record(purposes, subjects[0], "newsletter", Decision.WITHDRAWN)
    record(purposes, subjects[1], "tailored-offers")
    record(purposes, subjects[2], "product-research")
    assert verify_output()[0]
    drop_event_triggers()
    drop_append_only_triggers("consents_notice", NOTICES)
    return subjects


# 1. A forged head is never extended, so it is never re-signed


def test_a_decision_after_events_were_cut_off_is_refused_and_the_forgery_stays_visible(
    attacked, purposes
):
    head = LedgerHead.objects.get()
    twelfth = ConsentEvent.objects.get(seq=4)
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM consents_consentstate WHERE event_id IN "
            "(SELECT id FROM consents_consentevent WHERE seq > 4)"
        )
        cursor.execute("DELETE FROM consents_consentevent WHERE seq > 4")
    LedgerHead.objects.filter(pk=head.pk).update(seq=4, hash=twelfth.hash)
    assert "signature is wrong" in verify_output()[1]

    with pytest.raises(ConsentError, match="failed their integrity check"):
        record(purposes, uuid.uuid4(), "newsletter")
    assert ConsentEvent.objects.count() == 4
    intact, message = verify_output()
    assert not intact and "signature is wrong" in message


def test_a_decision_after_an_event_was_rewritten_and_the_chain_recomputed_is_refused(
    attacked, purposes
):
    # Refused becomes granted, and every later hash and the head are recomputed.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE consents_consentevent SET decision = 'granted' WHERE seq = 3")
    recompute_chain_from(3)

    with pytest.raises(ConsentError):
        record(purposes, uuid.uuid4(), "newsletter")
    intact, message = verify_output()
    assert not intact and "signature is wrong" in message


def test_an_event_added_beyond_the_head_stops_further_decisions(attacked, purposes):
    LedgerHead.objects.update(seq=5)  # as if #6 had been slipped in after it
    with pytest.raises(ConsentError):
        record(purposes, uuid.uuid4(), "newsletter")


def test_a_deleted_head_with_events_left_is_named_and_refused(attacked, purposes):
    LedgerHead.objects.all().delete()
    intact, message = verify_output()
    assert not intact and "head is missing" in message
    with pytest.raises(ConsentError):
        record(purposes, uuid.uuid4(), "newsletter")
    assert not LedgerHead.objects.exists()


def test_an_intact_ledger_keeps_taking_decisions(purposes):
    for _ in range(3):
        assert record(purposes, uuid.uuid4(), "newsletter") is not None
    assert ledger.verify().count == 3


# 3. The text a person was shown


def test_the_database_refuses_to_change_or_delete_a_frozen_notice(purposes):
    notice = purposes["newsletter"].notices.get()
    for statement in (
        f"UPDATE {NOTICES} SET content_hash = 'x' WHERE id = {notice.pk}",
        f"DELETE FROM {NOTICES} WHERE id = {notice.pk}",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    notice.refresh_from_db()
    assert notice.content_hash == ledger.notice_content_hash(notice.content)


def test_a_rewritten_notice_text_is_named(attacked, purposes):
    notice = purposes["newsletter"].notices.get()
    forged = {**notice.content, "en": {**notice.content["en"], "name": "Partner offers"}}
    PurposeNotice.objects.filter(pk=notice.pk).update(content=forged)
    intact, message = verify_output()
    assert not intact
    assert "notice of purpose “newsletter” version 1 was changed" in message


def test_an_event_pointed_at_a_forged_notice_with_the_original_hash_is_named(attacked, purposes):
    original = purposes["newsletter"].notices.get()
    forged_content = {
        **original.content,
        "en": {**original.content["en"], "description": "We sell your address."},
    }
    # The (purpose, hash) pair is unique: the forgery goes under another purpose,
    # claiming the original's hash, as an attacker would.
    forged = PurposeNotice.objects.create(
        purpose=purposes["tailored-offers"],
        version=99,
        content=forged_content,
        content_hash=original.content_hash,
    )
    with connection.cursor() as cursor:
        cursor.execute("UPDATE consents_consentevent SET notice_id = %s WHERE seq = 1", [forged.pk])
    intact, message = verify_output()
    assert not intact and "version 99 was changed" in message


def test_a_reverted_notice_still_verifies(purposes):
    purpose = purposes["newsletter"]
    first = purpose.notices.get()
    original = purpose.description
    purpose.description = "Two emails a week."
    purpose.save(update_fields=["description"])
    purpose_notice_refresh(purpose=purpose)
    purpose.description = original
    purpose.save(update_fields=["description"])
    reverted = purpose_notice_refresh(purpose=purpose)
    assert reverted.version == 3 and reverted.content == first.content
    record(purposes, uuid.uuid4(), "newsletter")
    assert ledger.verify().intact


# 4. The state every decision is read from


def test_a_state_flipped_to_granted_is_named(attacked, purposes):
    ConsentState.objects.filter(subject_id=attacked[2], purpose=purposes["ad-partners"]).update(
        decision=Decision.GRANTED
    )
    intact, message = verify_output()
    assert not intact
    assert f"the current state of “ad-partners” for subject {attacked[2]} says granted" in message


def test_a_state_pointed_back_at_an_older_event_is_named(attacked, purposes):
    first = ConsentEvent.objects.get(seq=1)
    ConsentState.objects.filter(subject_id=attacked[0], purpose=purposes["newsletter"]).update(
        event=first, decision=first.decision
    )
    intact, message = verify_output()
    assert not intact and "“newsletter”" in message


def test_a_deleted_state_is_named(attacked, purposes):
    ConsentState.objects.filter(
        subject_id=attacked[1], purpose=purposes["recommendations"]
    ).delete()
    intact, message = verify_output()
    assert not intact and "no current state" in message


# 5. No false alarm while customers decide


@pytest.mark.django_db(transaction=True)
def test_verify_never_raises_a_false_alarm_while_customers_decide():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite runs one writer at a time, so there is no race")
    purposes = {p.key: p for p in seed_inventory()}
    keys = ["newsletter", "recommendations", "tailored-offers", "product-research"]
    stop = threading.Event()
    errors: list[BaseException] = []

    def customers(worker: int) -> None:
        try:
            i = 0
            while not stop.is_set() and i < 400:
                subject = uuid.UUID(int=worker * 100_000 + i)
                record(purposes, subject, keys[i % len(keys)])
                i += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    writers = [threading.Thread(target=customers, args=(n,)) for n in range(2)]
    for writer in writers:
        writer.start()
    try:
        verdicts = [ledger.verify(chunk_size=7) for _ in range(20)]
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=60)
    assert errors == []
    assert [v.problem for v in verdicts if not v.intact] == []
    assert verdicts[-1].count > 0


def test_health_reports_a_ledger_head_that_does_not_verify(client, attacked):
    assert client.get("/health/").json()["checks"]["ledger"] == "ok"
    LedgerHead.objects.update(seq=5)
    response = client.get("/health/")
    # Reads still work, so the server stays in the load balancer; monitoring
    # reads "status".
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["ledger"] == (
        "error: the chain head's signature is wrong: the head was rewritten"
    )
