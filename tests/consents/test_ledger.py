"""The consent ledger: decisions are events with their own content hash, sealed
into an RFC 9162 Merkle tree whose heads are signed; verify_ledger recomputes
all of it and names what was changed."""

from __future__ import annotations

import gc
import importlib
import inspect
import signal
import threading
import uuid
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.db.migrations.loader import MigrationLoader
from django.utils.timezone import now

from consents import checkpoints, keys, ledger, merkle, services
from consents.demo import seed_inventory
from consents.models import (
    ConsentEvent,
    ConsentState,
    Decision,
    LedgerCheckpoint,
    LedgerLeaf,
    LedgerNode,
    LedgerSeal,
    Method,
    Purpose,
)
from consents.services import ConsentError, RequestFacts, consent_record, truncate_ip
from tests.consents.ledger_support import (
    EVENTS,
    LEAVES,
    NODES,
    SEALS,
    drop_event_triggers,
    drop_tree_triggers,
    execute,
    record,
    tree_root,
    verify_output,
)

__all__ = ["record", "verify_output"]  # the other ledger tests import them from here too

TABLE = "consents_consentevent"


def test_a_grant_inserts_an_event_with_its_own_hash_and_sets_the_state(purposes):
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
    # Format 2: no place in a chain, a hash of its own content.
    assert event.seq is None and event.prev_hash == ""
    assert event.hash == ledger.event_hash_of(event) != ledger.event_hash_of(event, policy_hash="x")
    assert event.notice == purposes["newsletter"].notices.get()
    assert event.ip_truncated == "203.0.113.0"
    assert event.user_agent_family == "Firefox"
    # Not in the tree until the sealer runs.
    assert not LedgerLeaf.objects.exists() and not LedgerSeal.objects.exists()


def test_the_event_hash_covers_every_field(purposes):
    event = record(purposes, uuid.uuid4(), "newsletter")
    fields = {
        "uuid": event.uuid,
        "subject_id": event.subject_id,
        "purpose_id": event.purpose_id,
        "notice_hash": event.notice.content_hash,
        "policy_version_id": event.policy_version_id,
        "policy_hash": "",
        "decision": event.decision,
        "method": event.method,
        "created_at": event.created_at,
        "ip_truncated": event.ip_truncated,
        "user_agent_family": event.user_agent_family,
        "gpc_signal": event.gpc_signal,
    }
    assert ledger.event_hash(**fields) == event.hash
    changed = {
        "uuid": uuid.uuid4(),
        "subject_id": uuid.uuid4(),
        "purpose_id": event.purpose_id + 1,
        "notice_hash": "0" * 64,
        "policy_version_id": 1,
        "policy_hash": "1" * 64,
        "decision": Decision.REFUSED,
        "method": Method.STAFF,
        "created_at": event.created_at + timedelta(microseconds=1),
        "ip_truncated": "10.0.0.0",
        "user_agent_family": "Other",
        "gpc_signal": True,
    }
    for name, value in changed.items():
        assert ledger.event_hash(**{**fields, name: value}) != event.hash, name


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


# Append-only, in the database itself


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


def test_the_database_refuses_to_update_or_delete_leaves_nodes_and_seals(purposes):
    """Migration 0009 makes the tree's tables append-only (and, on SQLite,
    makes the events' triggers again after rebuilding their table)."""
    for i in range(1 << ledger.NODE_LEVEL):
        ledger.append(
            subject_id=uuid.UUID(int=i + 1),
            purpose=purposes["newsletter"],
            notice=purposes["newsletter"].notices.get(),
            decision=Decision.GRANTED,
            method=Method.PANEL,
            created_at=purposes["newsletter"].created_at,
        )
    ledger.seal()
    assert LedgerNode.objects.count() == 1  # the first block of 256 leaves
    rows = {
        table: (f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}")
        for (_, table), column in (
            (LEAVES, "event_id"),
            (NODES, "hash"),
            (SEALS, "root"),
            (EVENTS, "hash"),
        )
    }
    for statements in rows.values():
        for statement in statements:
            with (
                pytest.raises(DatabaseError, match="append-only"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(statement)
    assert LedgerLeaf.objects.count() == 256 and LedgerSeal.objects.count() == 1


# Sealing


def test_the_sealer_folds_events_in_id_order_and_signs_the_tree_head(purposes):
    events = [record(purposes, uuid.uuid4(), key) for key in ("newsletter", "recommendations")]
    events += [record(purposes, uuid.uuid4(), "ad-partners", Decision.REFUSED)]
    outcome = ledger.seal()
    assert outcome.sealed == 3
    seal = outcome.seal
    assert list(LedgerLeaf.objects.order_by("seq").values_list("seq", "event_id")) == [
        (1, events[0].pk),
        (2, events[1].pk),
        (3, events[2].pk),
    ]
    assert (seal.size, seal.last_event_id) == (3, events[-1].pk)
    assert seal.root == tree_root([e.hash for e in events])
    signed = checkpoints.checkpoint_verify(seal.token, source="test")
    assert (signed.size, signed.root, signed.format) == (3, seal.root, checkpoints.MERKLE_V1)
    assert merkle.Frontier.from_json(seal.frontier).root().hex() == seal.root
    # Nothing new: nothing sealed, no new seal.
    again = ledger.seal()
    assert again.sealed == 0 and again.seal.pk == seal.pk
    later = record(purposes, uuid.uuid4(), "newsletter")
    assert ledger.seal().seal.root == tree_root([e.hash for e in [*events, later]])
    assert LedgerSeal.objects.count() == 2


def test_sealing_in_small_batches_gives_the_same_tree(purposes):
    events = [record(purposes, uuid.uuid4(), "newsletter") for _ in range(5)]
    outcome = ledger.seal(batch=2)
    assert outcome.sealed == 5
    assert list(LedgerSeal.objects.order_by("size").values_list("size", flat=True)) == [2, 4, 5]
    assert outcome.seal.root == tree_root([e.hash for e in events])
    for seal in LedgerSeal.objects.all():
        assert seal.root == tree_root([e.hash for e in events[: seal.size]])


def test_an_empty_ledger_has_nothing_to_seal(db):
    assert ledger.seal() == ledger.SealOutcome(None, 0)
    assert verify_output() == (True, "Ledger intact: 0 sealed event(s) verified.\n")


def test_verify_checks_unsealed_events_and_says_they_wait(purposes):
    for _ in range(3):
        record(purposes, uuid.uuid4(), "newsletter")
    ledger.seal()
    for _ in range(2):
        record(purposes, uuid.uuid4(), "newsletter")
    verdict = ledger.verify()
    assert (verdict.intact, verdict.count, verdict.unsealed, verdict.seals) == (True, 3, 2, 1)
    intact, message = verify_output()
    assert intact
    assert message.startswith("Ledger intact: 3 sealed event(s) verified against its last")
    assert "2 more event(s), checked, wait for the sealer" in message


def test_verify_streams_in_small_chunks(purposes):
    for _ in range(7):
        record(purposes, uuid.uuid4(), "newsletter")
    ledger.seal(batch=3)
    for _ in range(4):
        record(purposes, uuid.uuid4(), "newsletter")
    verdict = ledger.verify(chunk_size=2)
    assert verdict.intact, verdict.problem
    assert (verdict.count, verdict.unsealed) == (7, 4)


def test_the_command_refuses_a_bad_chunk_size(db):
    with pytest.raises(CommandError, match="--chunk-size must be at least 1"):
        call_command("verify_ledger", "--chunk-size", "0")


def test_the_database_computes_the_same_event_hash_as_python(purposes):
    if connection.vendor != "postgresql":
        pytest.skip("verify_ledger computes hashes in SQL on PostgreSQL only")
    event = consent_record(
        subject_id=uuid.uuid4(),
        purpose=purposes["dietary-suggestions"],
        decision=Decision.GRANTED,
        method=Method.GPC,
        facts=RequestFacts(ip_truncated="2001:db8::", user_agent_family="Safário", gpc_signal=True),
    )
    assert ledger.event_hash_in_sql(event.pk) == event.hash == ledger.event_hash_of(event)


# What someone with database access does, named by verify_ledger


@pytest.fixture
def sealed(purposes):
    """Five events for three people, sealed, then the triggers dropped (rolled
    back after the test): what an attacker with database access could do."""
    subjects = [uuid.uuid4() for _ in range(3)]
    events = [
        record(purposes, subjects[0], "newsletter"),
        record(purposes, subjects[1], "recommendations"),
        record(purposes, subjects[2], "ad-partners"),
        record(purposes, subjects[0], "newsletter", Decision.WITHDRAWN),
        record(purposes, subjects[1], "tailored-offers"),
    ]
    ledger.seal()
    intact, message = verify_output()
    assert intact and message.startswith("Ledger intact: 5 sealed event(s) verified"), message
    drop_event_triggers()
    drop_tree_triggers()
    return events


def test_verify_names_a_changed_event(sealed):
    execute(f"UPDATE {TABLE} SET decision = 'granted' WHERE id = %s", [sealed[3].pk])
    intact, message = verify_output()
    assert not intact
    assert f"event {sealed[3].uuid}: its content was changed (leaf #4)" in message


def test_verify_names_a_changed_event_not_sealed_yet(sealed, purposes):
    event = record(purposes, uuid.uuid4(), "newsletter")
    execute(f"UPDATE {TABLE} SET method = 'staff' WHERE id = %s", [event.pk])
    intact, message = verify_output()
    assert not intact
    assert f"event {event.uuid}: its content was changed (not sealed yet)" in message


def test_verify_names_an_event_deleted_from_under_its_leaf(sealed):
    execute("DELETE FROM consents_consentstate WHERE event_id = %s", [sealed[2].pk])
    execute(f"DELETE FROM {TABLE} WHERE id = %s", [sealed[2].pk])
    intact, message = verify_output()
    assert not intact and "leaf #3: its event was deleted" in message
    execute("DELETE FROM consents_ledgerleaf WHERE seq = 3")  # the test database checks keys


def test_verify_names_an_event_deleted_with_its_leaf(sealed):
    execute("DELETE FROM consents_consentstate WHERE event_id = %s", [sealed[2].pk])
    execute("DELETE FROM consents_ledgerleaf WHERE seq = 3")
    execute(f"DELETE FROM {TABLE} WHERE id = %s", [sealed[2].pk])
    intact, message = verify_output()
    assert not intact and "leaf #3 is missing: the tree skips to #4" in message


def test_verify_names_events_cut_off_the_end_under_the_last_seal(sealed):
    for event in sealed[3:]:
        execute("DELETE FROM consents_consentstate WHERE event_id = %s", [event.pk])
    execute("DELETE FROM consents_ledgerleaf WHERE seq > 3")
    execute(f"DELETE FROM {TABLE} WHERE id >= %s", [sealed[3].pk])
    intact, message = verify_output()
    assert not intact
    assert "the ledger has 3 sealed events but the last seal" in message
    assert "covers 5: events were removed" in message
    with pytest.raises(ledger.LedgerIntegrityError, match="covers 5 events but the tree has 3"):
        ledger.seal()


def test_verify_names_reordered_leaves(sealed):
    execute("DELETE FROM consents_ledgerleaf WHERE seq IN (2, 3)")
    execute(
        "INSERT INTO consents_ledgerleaf (seq, event_id) VALUES (2, %s), (3, %s)",
        [sealed[2].pk, sealed[1].pk],
    )
    intact, message = verify_output()
    assert not intact and "leaf #3: out of order" in message


def test_verify_names_a_leaf_added_behind_the_sealer(sealed, purposes):
    extra = record(purposes, uuid.uuid4(), "newsletter")
    execute("INSERT INTO consents_ledgerleaf (seq, event_id) VALUES (6, %s)", [extra.pk])
    intact, message = verify_output()
    assert not intact
    assert "the tree has 6 leaves but its last seal covers 5" in message
    with pytest.raises(ledger.LedgerIntegrityError, match="covers 5 events but the tree has 6"):
        ledger.seal()


def test_verify_names_an_event_inserted_behind_the_sealer_even_with_a_correct_hash(
    sealed, purposes
):
    """A grant slipped in with an id below the last seal's: the sealer never
    reads below its last barrier, so only verify_ledger can see it."""
    forged = ConsentEvent(
        id=0,
        subject_id=uuid.uuid4(),
        purpose=purposes["tailored-offers"],
        notice=purposes["tailored-offers"].notices.get(),
        decision=Decision.GRANTED,
        method=Method.PANEL,
        created_at=sealed[0].created_at,
    )
    forged.hash = ledger.event_hash_of(forged)
    forged.save(force_insert=True)
    ConsentState.objects.create(
        subject_id=forged.subject_id,
        purpose=forged.purpose,
        decision=forged.decision,
        event=forged,
        updated_at=forged.created_at,
    )
    intact, message = verify_output()
    assert not intact
    assert f"event {forged.uuid} is older than the last seal but not in the tree" in message
    # Decisions go on and are sealed; the forgery stays named.
    record(purposes, uuid.uuid4(), "newsletter")
    assert ledger.seal().sealed == 1
    assert not LedgerLeaf.objects.filter(event=forged).exists()
    assert "inserted behind the sealer" in verify_output()[1]


@pytest.mark.django_db(transaction=True)
def test_concurrent_decisions_and_the_sealer_keep_the_tree_valid():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite runs one writer at a time, so there is no race")
    purposes = {p.key: p for p in seed_inventory()}
    one_subject = uuid.uuid4()
    keys = ["newsletter", "recommendations", "tailored-offers", "product-research"]
    errors: list[BaseException] = []
    start = threading.Barrier(8)
    done = threading.Event()

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

    def sealer() -> None:
        try:
            while not done.is_set():
                ledger.seal(batch=5)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    sealing = threading.Thread(target=sealer)
    sealing.start()
    try:
        for target, args in ((same_subject_same_choice, ()), (many_subjects, None)):
            threads = [
                threading.Thread(target=target, args=(n,) if args is None else args)
                for n in range(8)
            ]
            start.reset()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
    finally:
        done.set()
        sealing.join(timeout=60)
    assert errors == []
    # Eight requests for the same choice at once: one event, not eight.
    assert ConsentEvent.objects.filter(subject_id=one_subject).count() == 1
    assert ConsentEvent.objects.count() == 1 + 8 * 12
    ledger.seal()
    # Every event has its place, in id order, none skipped.
    places = list(LedgerLeaf.objects.order_by("seq").values_list("seq", "event_id"))
    assert [p for p, _ in places] == list(range(1, 98))
    assert [e for _, e in places] == sorted(ConsentEvent.objects.values_list("id", flat=True))
    verdict = ledger.verify()
    assert verdict.intact, verdict.problem
    assert (verdict.count, verdict.unsealed) == (97, 0)
    assert ConsentState.objects.filter(decision=Decision.GRANTED).count() == 97
    assert Purpose.objects.count() == 7


# Migration 0009: the hash chain of format 1 becomes the tree's first leaves

MIGRATION = importlib.import_module("consents.migrations.0009_merkle_tree")


def apps_before_sealing_the_chain():
    """The models as migration 0009 sees them when it seals the chain."""
    loader = MigrationLoader(connection)
    state = loader.project_state(("consents", "0008_ledger_checkpoint"))
    for operation in loader.get_migration("consents", "0009_merkle_tree").operations:
        if getattr(operation, "code", None) is MIGRATION.seal_the_chain:
            return state.apps
        operation.state_forwards("consents", state)
    raise AssertionError("0009 no longer seals the chain")


def legacy_chain(purposes, count: int) -> list[ConsentEvent]:
    """`count` events of format 1 (each a new person's grant), chained, with
    their states, as the ledger held them before the tree."""
    events = []
    prev = ledger.GENESIS
    for seq in range(1, count + 1):
        event = ConsentEvent(
            seq=seq,
            subject_id=uuid.uuid4(),
            purpose=purposes["newsletter"],
            notice=purposes["newsletter"].notices.get(),
            decision=Decision.GRANTED,
            method=Method.PANEL,
            created_at=purposes["newsletter"].created_at,
            prev_hash=prev,
        )
        event.hash = ledger.event_hash_of(event)
        event.save(force_insert=True)
        ConsentState.objects.create(
            subject_id=event.subject_id,
            purpose=event.purpose,
            decision=event.decision,
            event=event,
            updated_at=event.created_at,
        )
        events.append(event)
        prev = event.hash
    return events


@pytest.fixture
def chain_head(db):
    """The single head row of the chain, whose table 0009 dropped, made again
    for the test (rolled back with it)."""
    moment = "datetime" if connection.vendor == "sqlite" else "timestamp with time zone"
    execute(
        "CREATE TABLE consents_ledgerhead (id smallint PRIMARY KEY, seq bigint NOT NULL, "
        f"hash varchar(64) NOT NULL, signature varchar(200) NOT NULL, updated_at {moment} NOT NULL)"
    )
    apps = apps_before_sealing_the_chain()
    head_model = apps.get_model("consents", "LedgerHead")

    def write(seq: int, hash_: str, signature: str | None = None):
        if signature is None:
            signature = keys.sign(f"clareza-ledger-head:{seq}:{hash_}".encode())
        head_model.objects.update_or_create(
            pk=1, defaults={"seq": seq, "hash": hash_, "signature": signature, "updated_at": now()}
        )

    return apps, write


def test_the_migration_seals_a_verified_chain_as_the_trees_first_leaves(purposes, chain_head):
    apps, write_head = chain_head
    events = legacy_chain(purposes, 3)
    write_head(3, events[-1].hash)
    MIGRATION.seal_the_chain(apps, None)
    assert list(LedgerLeaf.objects.order_by("seq").values_list("seq", "event_id")) == [
        (e.seq, e.pk) for e in events
    ]
    seal = LedgerSeal.objects.get()
    assert (seal.size, seal.last_event_id) == (3, events[-1].pk)
    assert seal.root == tree_root([e.hash for e in events])
    assert checkpoints.checkpoint_verify(seal.token, source="test").root == seal.root
    verdict = ledger.verify()
    assert verdict.intact and verdict.count == 3, verdict.problem
    # Decisions of format 2 follow the chain in the same tree.
    later = record(purposes, uuid.uuid4(), "recommendations")
    assert ledger.seal().seal.root == tree_root([*(e.hash for e in events), later.hash])
    verdict = ledger.verify()
    assert verdict.intact and verdict.count == 4, verdict.problem
    # A chain event rewritten after the migration is named.
    drop_event_triggers()
    ConsentEvent.objects.filter(pk=events[1].pk).update(decision=Decision.REFUSED)
    ConsentState.objects.filter(event=events[1]).update(decision=Decision.REFUSED)
    intact, message = verify_output()
    assert not intact and f"event {events[1].uuid}" in message


@contextmanager
def fails_instead_of_hanging(seconds: int = 20):
    """A deadlock guard, not a speed test: a wait that never ends fails the
    test instead of hanging the suite. The ledger's suspended generators (a
    COPY stream holds the connection's lock) are closed first, so that the
    transaction can still be rolled back."""

    def stuck(signum, frame):
        for obj in gc.get_objects():
            if (
                inspect.isgenerator(obj)
                and obj.gi_frame is not None
                and not obj.gi_running
                and obj.gi_code.co_filename == ledger.__file__
            ):
                obj.close()
        raise AssertionError(f"still waiting after {seconds} s: a deadlock")

    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_checkpoint_of_the_chain_still_anchors_the_tree(purposes, chain_head, settings, tmp_path):
    """Checkpoints exported before the migration (format clareza-chain-v1)
    keep naming a rewrite of the chain, and the tree extends them."""
    settings.LEDGER_CHECKPOINT_FILE = tmp_path / "checkpoints.jsonl"
    apps, write_head = chain_head
    events = legacy_chain(purposes, 3)
    write_head(3, events[-1].hash)
    LedgerCheckpoint.objects.create(
        size=2,
        root=events[1].hash,
        token=checkpoints.checkpoint_token(
            size=2, root=events[1].hash, moment=now(), format=checkpoints.CHAIN_V1
        ),
    )
    MIGRATION.seal_the_chain(apps, None)
    with fails_instead_of_hanging():
        verdict = ledger.verify()
    assert verdict.intact and (verdict.count, verdict.checkpoints) == (3, 1), verdict.problem
    record(purposes, uuid.uuid4(), "recommendations")
    assert services.ledger_checkpoint_make().size == 4  # extends the chain's checkpoint
    with fails_instead_of_hanging():
        verdict = ledger.verify()
    assert verdict.intact and (verdict.count, verdict.checkpoints) == (4, 2), verdict.problem


def test_the_migration_refuses_a_chain_whose_head_does_not_verify(purposes, chain_head):
    apps, write_head = chain_head
    events = legacy_chain(purposes, 3)
    # Event #3 cut off and the head set back to #2, without the key.
    write_head(
        2, events[1].hash, signature=keys.sign(f"clareza-ledger-head:3:{events[2].hash}".encode())
    )
    with pytest.raises(RuntimeError, match="does not verify or does not name the last event"):
        MIGRATION.seal_the_chain(apps, None)
    # A genuine head that does not name the last event (one slipped in after it).
    write_head(2, events[1].hash)
    with pytest.raises(RuntimeError, match="does not verify or does not name the last event"):
        MIGRATION.seal_the_chain(apps, None)
    assert not LedgerLeaf.objects.exists() and not LedgerSeal.objects.exists()


def test_the_migration_refuses_a_chain_without_its_head(purposes, chain_head):
    apps, _ = chain_head
    legacy_chain(purposes, 2)
    with pytest.raises(RuntimeError, match="chain head is missing"):
        MIGRATION.seal_the_chain(apps, None)
    assert not LedgerSeal.objects.exists()


def test_the_migration_has_nothing_to_seal_on_an_empty_ledger(chain_head):
    apps, _ = chain_head
    MIGRATION.seal_the_chain(apps, None)
    assert not LedgerSeal.objects.exists()
    assert ledger.seal() == ledger.SealOutcome(None, 0)
