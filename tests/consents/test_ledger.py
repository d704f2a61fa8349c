from __future__ import annotations

import threading
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from consents import ledger
from consents.demo import seed_inventory
from consents.models import ConsentEvent, ConsentState, Decision, LedgerHead, Method, Purpose
from consents.services import ConsentError, RequestFacts, consent_record, truncate_ip
from tests.consents.ledger_support import drop_event_triggers

TABLE = "consents_consentevent"


def record(purposes, subject, key, decision=Decision.GRANTED, method=Method.PANEL):
    return consent_record(
        subject_id=subject, purpose=purposes[key], decision=decision, method=method
    )


def verify_output() -> tuple[bool, str]:
    out = StringIO()
    try:
        call_command("verify_ledger", stdout=out)
    except CommandError as exc:
        return False, str(exc)
    return True, out.getvalue()


def test_a_grant_appends_an_event_and_sets_the_state(purposes):
    subject = uuid.uuid4()
    event = consent_record(
        subject_id=subject,
        purpose=purposes["newsletter"],
        decision=Decision.GRANTED,
        method=Method.PANEL,
        facts=RequestFacts(ip_truncated=truncate_ip("203.0.113.77"), user_agent_family="Firefox"),
    )
    state = ConsentState.objects.get(subject_id=subject, purpose=purposes["newsletter"])
    assert state.decision == Decision.GRANTED and state.event_id == event.pk
    assert event.seq == 1 and event.prev_hash == ledger.GENESIS
    assert event.notice == purposes["newsletter"].notices.get()
    assert event.ip_truncated == "203.0.113.0"
    assert event.user_agent_family == "Firefox"


def test_truncation_keeps_only_the_network():
    assert truncate_ip("198.51.100.200") == "198.51.100.0"
    assert truncate_ip("2001:db8:abcd:12:1:2:3:4") == "2001:db8:abcd::"
    assert truncate_ip("not an address") == ""


def test_repeating_the_current_choice_adds_no_event(purposes):
    subject = uuid.uuid4()
    assert record(purposes, subject, "newsletter") is not None
    assert record(purposes, subject, "newsletter") is None
    assert record(purposes, subject, "newsletter", Decision.WITHDRAWN) is not None
    assert record(purposes, subject, "newsletter", Decision.WITHDRAWN) is None
    assert record(purposes, subject, "newsletter", Decision.REFUSED) is None
    assert ConsentEvent.objects.filter(subject_id=subject).count() == 2


def test_withdrawing_what_was_never_granted_records_nothing(purposes):
    assert record(purposes, uuid.uuid4(), "newsletter", Decision.WITHDRAWN) is None
    assert not ConsentEvent.objects.exists()


def test_unticking_a_granted_purpose_is_recorded_as_a_withdrawal(purposes):
    subject = uuid.uuid4()
    record(purposes, subject, "newsletter")
    event = record(purposes, subject, "newsletter", Decision.REFUSED)
    assert event.decision == Decision.WITHDRAWN


def test_a_purpose_on_another_legal_basis_cannot_be_granted(purposes):
    with pytest.raises(ConsentError, match="does not rest on consent"):
        record(purposes, uuid.uuid4(), "account-orders")
    assert not ConsentEvent.objects.exists()


def test_the_database_refuses_to_update_or_delete_an_event(purposes):
    record(purposes, uuid.uuid4(), "newsletter")
    for statement in (f"UPDATE {TABLE} SET decision = 'refused'", f"DELETE FROM {TABLE}"):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    assert ConsentEvent.objects.get().decision == Decision.GRANTED


def test_the_orm_cannot_delete_an_event_either(purposes):
    record(purposes, uuid.uuid4(), "newsletter")
    with pytest.raises(DatabaseError), transaction.atomic():
        ConsentEvent.objects.all().delete()
    assert ConsentEvent.objects.count() == 1


@pytest.fixture
def chain(purposes):
    """Five events for three people, then the triggers dropped (rolled back after
    the test): what an attacker with database access could do."""
    subjects = [uuid.uuid4() for _ in range(3)]
    record(purposes, subjects[0], "newsletter")
    record(purposes, subjects[1], "recommendations")
    record(purposes, subjects[2], "ad-partners")
    record(purposes, subjects[0], "newsletter", Decision.WITHDRAWN)
    record(purposes, subjects[1], "tailored-offers")
    assert verify_output() == (True, "Ledger intact: 5 events verified.\n")
    drop_event_triggers()
    return subjects


def test_verify_names_a_changed_event(chain):
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET decision = 'granted' WHERE seq = 4")
    intact, message = verify_output()
    assert not intact
    event = ConsentEvent.objects.get(seq=4)
    assert f"event #4 ({event.uuid}): its content was changed" in message


def test_verify_names_where_an_event_was_deleted(chain):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM consents_consentstate")
        cursor.execute(f"DELETE FROM {TABLE} WHERE seq = 3")
    intact, message = verify_output()
    assert not intact
    assert "event #4" in message and "missing (expected #3)" in message


def test_verify_notices_events_cut_off_the_end(chain):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM consents_consentstate")
        cursor.execute(f"DELETE FROM {TABLE} WHERE seq >= 4")
    intact, message = verify_output()
    assert not intact
    assert "the chain ends at #3 but its signed head says #5" in message


def test_verify_notices_an_inserted_event_even_with_a_correct_hash(chain, purposes):
    # A forged grant appended with a well-computed hash, but without the head's key.
    last = ConsentEvent.objects.get(seq=5)
    forged = ConsentEvent(
        seq=6,
        subject_id=chain[2],
        purpose=purposes["tailored-offers"],
        notice=purposes["tailored-offers"].notices.get(),
        decision=Decision.GRANTED,
        method=Method.PANEL,
        created_at=last.created_at,
        prev_hash=last.hash,
    )
    forged.hash = ledger.event_hash_of(forged, prev_hash=forged.prev_hash)
    forged.save(force_insert=True)
    intact, message = verify_output()
    assert not intact
    assert "the chain ends at #6 but its signed head says #5" in message
    # Moving the head too is caught by its signature.
    LedgerHead.objects.filter(pk=1).update(seq=6, hash=forged.hash)
    intact, message = verify_output()
    assert not intact and "signature is wrong" in message


def test_verify_notices_reordered_events(chain):
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET seq = -2 WHERE seq = 2")
        cursor.execute(f"UPDATE {TABLE} SET seq = 2 WHERE seq = 3")
        cursor.execute(f"UPDATE {TABLE} SET seq = 3 WHERE seq = -2")
    intact, message = verify_output()
    assert not intact
    assert "event #2" in message and "does not follow the event before it" in message


def test_verify_streams_in_small_chunks(purposes):
    for _ in range(7):
        record(purposes, uuid.uuid4(), "newsletter")
    assert ledger.verify(chunk_size=2).count == 7
    assert ledger.verify(chunk_size=2).intact


def test_an_empty_ledger_is_intact(db):
    assert verify_output() == (True, "Ledger intact: 0 events verified.\n")


def test_the_command_refuses_a_bad_chunk_size(db):
    with pytest.raises(CommandError, match="--chunk-size must be at least 1"):
        call_command("verify_ledger", "--chunk-size", "0")


@pytest.mark.django_db(transaction=True)
def test_concurrent_decisions_keep_the_chain_valid():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite runs one writer at a time, so there is no race")
    purposes = {p.key: p for p in seed_inventory()}
    one_subject = uuid.uuid4()
    keys = ["newsletter", "recommendations", "tailored-offers", "product-research"]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def same_subject_same_choice() -> None:
        try:
            start.wait()
            record(purposes, one_subject, "newsletter")
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    def many_subjects(worker: int) -> None:
        try:
            start.wait()
            for i in range(12):
                subject = uuid.UUID(int=worker * 1000 + i)
                record(purposes, subject, keys[i % len(keys)])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    for target, args in ((same_subject_same_choice, ()), (many_subjects, None)):
        threads = [
            threading.Thread(target=target, args=(n,) if args is None else args) for n in range(8)
        ]
        start.reset()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    # Eight requests for the same choice at once: one event, not eight.
    assert ConsentEvent.objects.filter(subject_id=one_subject).count() == 1
    assert ConsentEvent.objects.count() == 1 + 8 * 12
    verdict = ledger.verify()
    assert verdict.intact, verdict.problem
    assert verdict.count == 97
    assert ConsentState.objects.filter(decision=Decision.GRANTED).count() == 97
    assert Purpose.objects.count() == 7
