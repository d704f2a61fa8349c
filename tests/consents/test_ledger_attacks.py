"""Attacks by someone with database access (issue 9), replayed with the
append-only triggers dropped: the sealer never signs on top of a seal that
does not verify, a withdrawal is recorded whatever happened to the ledger,
rewritten events, notices, policy texts and derived state are named by
verify_ledger, and verification is one consistent snapshot.

Attacks that leave the database consistent with itself (a rollback, a wipe)
need a checkpoint kept outside it: test_ledger_checkpoints.py."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from joserfc import jws
from joserfc.jwk import ECKey

from consents import keys, ledger, merkle
from consents.demo import seed_inventory
from consents.models import (
    ConsentEvent,
    ConsentState,
    Decision,
    LedgerCheckpoint,
    LedgerLeaf,
    LedgerSeal,
    PurposeNotice,
)
from consents.services import purpose_notice_refresh
from policies.demo import seed_policies
from policies.models import PolicyVersion
from policies.selectors import version_content_hash
from tests.consents.ledger_support import (
    drop_every_trigger,
    execute,
    place_of,
    record,
    rehash,
    tree_root,
    verify_output,
)

NOTICES = "consents_purposenotice"
VERSIONS = "policies_policyversion"


@pytest.fixture
def attacked(purposes):
    """Six decisions of three people under the published privacy policy, sealed
    after the fourth and after the sixth, then every append-only trigger dropped
    (rolled back after the test), as an attacker with database access would."""
    assert seed_policies() == "created"
    subjects = [uuid.uuid4() for _ in range(3)]
    events = [
        record(purposes, subjects[0], "newsletter"),
        record(purposes, subjects[1], "recommendations"),
        record(purposes, subjects[2], "ad-partners", Decision.REFUSED),
        record(purposes, subjects[0], "newsletter", Decision.WITHDRAWN),
    ]
    ledger.seal()
    events += [
        record(purposes, subjects[1], "tailored-offers"),
        record(purposes, subjects[2], "product-research"),
    ]
    ledger.seal()
    assert all(e.policy_version_id is not None for e in events)
    assert list(LedgerSeal.objects.order_by("size").values_list("size", flat=True)) == [4, 6]
    assert verify_output()[0]
    drop_every_trigger()
    return subjects, events


def withdraw_still_works(purposes, subject) -> ConsentEvent:
    """A customer withdrawing is recorded whatever happened to the ledger."""
    event = record(purposes, subject, "newsletter")
    withdrawal = record(purposes, subject, "newsletter", Decision.WITHDRAWN)
    assert withdrawal is not None and withdrawal.decision == Decision.WITHDRAWN
    state = ConsentState.objects.get(subject_id=subject, purpose=purposes["newsletter"])
    assert state.event_id == withdrawal.pk and event.pk < withdrawal.pk
    return withdrawal


def sealer_refuses(match: str) -> None:
    seals = LedgerSeal.objects.count()
    with pytest.raises(ledger.LedgerIntegrityError, match=match):
        ledger.seal()
    assert LedgerSeal.objects.count() == seals  # nothing signed


# 1. The sealer never signs on top of a forgery; decisions go on


def test_events_cut_off_under_the_last_seal_stop_the_sealer_not_the_customers(attacked, purposes):
    _, events = attacked
    ConsentState.objects.filter(event_id__in=[e.pk for e in events[4:]]).delete()
    LedgerLeaf.objects.filter(seq__gt=4).delete()
    ConsentEvent.objects.filter(pk__in=[e.pk for e in events[4:]]).delete()
    intact, message = verify_output()
    assert not intact and "covers 6: events were removed" in message

    sealer_refuses("covers 6 events but the tree has 4 leaves")
    withdraw_still_works(purposes, uuid.uuid4())
    sealer_refuses("covers 6 events but the tree has 4 leaves")
    assert not verify_output()[0]


def test_a_seal_row_rewritten_to_match_a_rollback_is_never_signed_again(attacked, purposes):
    """Events #5-#6 and their leaves deleted, the newest seal's row made to
    say what the tree now is (size, root, frontier): its token still signs #6."""
    _, events = attacked
    ConsentState.objects.filter(event_id__in=[e.pk for e in events[4:]]).delete()
    LedgerLeaf.objects.filter(seq__gt=4).delete()
    ConsentEvent.objects.filter(pk__in=[e.pk for e in events[4:]]).delete()
    genuine = LedgerSeal.objects.get(size=4)
    LedgerSeal.objects.filter(size=4).delete()
    LedgerSeal.objects.filter(size=6).update(
        size=4,
        root=genuine.root,
        frontier=genuine.frontier,
        last_event_id=genuine.last_event_id,
    )
    intact, message = verify_output()
    assert not intact and "it was rewritten" in message
    sealer_refuses("the seal was rewritten")
    withdraw_still_works(purposes, uuid.uuid4())
    sealer_refuses("the seal was rewritten")
    intact, message = verify_output()
    assert not intact and "it was rewritten" in message


def test_an_older_seals_token_copied_onto_a_forged_seal_is_refused(attacked):
    older = LedgerSeal.objects.get(size=4)
    LedgerSeal.objects.filter(size=6).update(token=older.token)
    sealer_refuses("its signature covers #4")
    intact, message = verify_output()
    assert not intact and "the last seal (#6) differs from what it signs" in message


def test_a_seal_signed_by_a_key_the_portal_never_had_is_refused(attacked, purposes):
    seal = LedgerSeal.objects.get(size=6)
    payload = json.loads(jws.extract_compact(seal.token.encode()).payload)
    forged = jws.serialize_compact(
        {"alg": "ES256", "kid": keys.signing_key().kid, "typ": "clareza-checkpoint+jwt"},
        json.dumps(payload).encode(),
        ECKey.generate_key("P-256"),
    )
    LedgerSeal.objects.filter(pk=seal.pk).update(token=forged)
    sealer_refuses("the last seal does not verify")
    intact, message = verify_output()
    assert not intact and "the seal was rewritten" in message
    withdraw_still_works(purposes, uuid.uuid4())
    sealer_refuses("the last seal does not verify")


def test_deleted_seals_with_the_tree_left_stop_the_sealer(attacked):
    LedgerSeal.objects.all().delete()
    sealer_refuses("the tree has 6 leaves but no seal: the seals were deleted")
    intact, message = verify_output()
    assert not intact and "the seals were deleted" in message


def test_an_event_changed_from_refused_to_granted_stays_named_after_later_seals(attacked, purposes):
    subjects, events = attacked
    refused = events[2]
    ConsentEvent.objects.filter(pk=refused.pk).update(decision=Decision.GRANTED)
    ConsentState.objects.filter(event=refused).update(decision=Decision.GRANTED)
    message = f"event {refused.uuid}: its content was changed (leaf #3)"
    assert message in verify_output()[1]
    # Later decisions are sealed: what was signed stays the original, so the
    # forgery never becomes part of an "intact" ledger.
    withdraw_still_works(purposes, subjects[1])
    assert ledger.seal().sealed == 2
    intact, output = verify_output()
    assert not intact and message in output


def test_an_event_changed_with_its_hash_recomputed_is_named_by_the_seal_it_breaks(
    attacked, purposes
):
    subjects, events = attacked
    refused = events[2]
    ConsentEvent.objects.filter(pk=refused.pk).update(decision=Decision.GRANTED)
    ConsentState.objects.filter(event=refused).update(decision=Decision.GRANTED)
    rehash(refused)
    intact, message = verify_output()
    assert not intact
    assert "the tree of 6 events differs from the last seal" in message
    assert "was changed, removed or added" in message
    withdraw_still_works(purposes, subjects[1])
    ledger.seal()
    # The new seal extends the signed tree, not the forged one.
    newest = LedgerSeal.objects.order_by("-size").first()
    assert newest.size == 8
    hashes = list(LedgerLeaf.objects.order_by("seq").values_list("event__hash", flat=True))
    assert newest.root != tree_root(hashes)
    intact, message = verify_output()
    assert not intact and "the tree of 8 events differs from the last seal" in message


def test_a_tree_rebuilt_over_a_forged_event_is_refused_when_a_checkpoint_says_otherwise(
    attacked, purposes
):
    """The attacker rewrites an event, recomputes its hash and deletes the
    whole tree (leaves, nodes, seals), hoping the sealer signs it anew. The
    checkpoint stored in the database covers the original: the sealer must
    not sign a tree that contradicts it."""
    _, events = attacked
    checkpoint = LedgerSeal.objects.get(size=6)
    LedgerCheckpoint.objects.create(
        size=6, root=checkpoint.root, created_at=checkpoint.created_at, token=checkpoint.token
    )
    ConsentEvent.objects.filter(pk=events[2].pk).update(decision=Decision.GRANTED)
    ConsentState.objects.filter(event=events[2]).update(decision=Decision.GRANTED)
    rehash(events[2])
    LedgerLeaf.objects.all().delete()
    LedgerSeal.objects.all().delete()
    with pytest.raises(ledger.LedgerIntegrityError):
        ledger.seal()
    assert not LedgerSeal.objects.exists()


def test_a_tampered_ledger_keeps_taking_decisions_and_health_says_why(client, attacked, purposes):
    assert client.get("/health/").json()["checks"]["ledger"] == "ok"
    LedgerSeal.objects.filter(size=6).update(size=5)
    withdraw_still_works(purposes, uuid.uuid4())
    response = client.get("/health/")
    # Reads and decisions still work, so the server stays in the load balancer;
    # monitoring reads "status".
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["ledger"] == (
        "error: the last seal's row says #5 but its signature covers #6: the seal was rewritten"
    )


def test_health_says_when_decisions_wait_too_long_for_the_sealer(client, purposes, settings):
    record(purposes, uuid.uuid4(), "newsletter")
    assert client.get("/health/").json()["checks"]["ledger"] == "ok"
    settings.LEDGER_SEAL_MAX_DELAY = timedelta(seconds=60)
    with transaction.atomic():
        drop_every_trigger()
        ConsentEvent.objects.update(created_at=timezone.now() - timedelta(seconds=120))
        check = client.get("/health/").json()["checks"]["ledger"]
        transaction.set_rollback(True)
    assert check.startswith("error: decisions have waited 1")
    assert "(at most 60 s): is the Celery beat running?" in check
    ledger.seal()
    assert client.get("/health/").json()["checks"]["ledger"] == "ok"


def test_an_intact_ledger_keeps_taking_and_sealing_decisions(purposes):
    for _ in range(3):
        assert record(purposes, uuid.uuid4(), "newsletter") is not None
        ledger.seal()
    verdict = ledger.verify()
    assert verdict.intact and (verdict.count, verdict.unsealed) == (3, 0)
    assert LedgerSeal.objects.count() == 3


# 3. The text a person was shown, and the policy in force


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
    _, events = attacked
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
    ConsentEvent.objects.filter(pk=events[0].pk).update(notice=forged)
    intact, message = verify_output()
    assert not intact and "version 99 was changed" in message


def test_an_event_pointed_at_another_genuine_notice_is_named(attacked, purposes):
    """A notice whose text matches its hash, but not the one the person read."""
    _, events = attacked
    purpose = purposes["newsletter"]
    purpose.description = "Two emails a week, and our partners' offers."
    purpose.save(update_fields=["description"])
    other = purpose_notice_refresh(purpose=purpose)
    assert other.version == 2
    ConsentEvent.objects.filter(pk=events[0].pk).update(notice=other)
    intact, message = verify_output()
    assert not intact
    assert f"event {events[0].uuid}: its content was changed (leaf #1)" in message


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
    ledger.seal()
    verdict = ledger.verify()
    assert verdict.intact and verdict.count == 1


def test_the_database_refuses_to_change_or_delete_a_published_policy_version(purposes):
    assert seed_policies() == "created"
    version = PolicyVersion.objects.get(status=PolicyVersion.Status.PUBLISHED)
    for statement in (
        f"UPDATE {VERSIONS} SET body = 'We sell everything.' WHERE id = {version.pk}",
        f"UPDATE {VERSIONS} SET content_hash = 'x' WHERE id = {version.pk}",
        f"DELETE FROM {VERSIONS} WHERE id = {version.pk}",
    ):
        with (
            pytest.raises(DatabaseError, match="a published policy version is never changed"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    version.refresh_from_db()
    assert version.content_hash == version_content_hash(version)


def test_a_rewritten_policy_text_is_named(attacked):
    version = PolicyVersion.objects.get(status=PolicyVersion.Status.PUBLISHED)
    PolicyVersion.objects.filter(pk=version.pk).update(body=version.body + "\nWe sell it all.")
    intact, message = verify_output()
    assert not intact
    assert "the text of “Privacy policy” version 1 was changed after it was published" in message


def test_a_rewritten_policy_text_with_its_hash_recomputed_is_named_by_the_events(attacked):
    _, events = attacked
    version = PolicyVersion.objects.select_related("policy").get(
        status=PolicyVersion.Status.PUBLISHED
    )
    version.body += "\nWe sell it all."
    version.content_hash = version_content_hash(version)
    version.save(update_fields=["body", "content_hash"])
    intact, message = verify_output()
    assert not intact
    assert f"event {events[0].uuid}: its content was changed (leaf #1)" in message


# 4. The state every decision is read from


def test_a_state_flipped_to_granted_is_named(attacked, purposes):
    subjects, _ = attacked
    ConsentState.objects.filter(subject_id=subjects[2], purpose=purposes["ad-partners"]).update(
        decision=Decision.GRANTED
    )
    intact, message = verify_output()
    assert not intact
    assert f"the current state of “ad-partners” for subject {subjects[2]} says granted" in message


def test_a_state_pointed_back_at_an_older_event_is_named(attacked, purposes):
    subjects, events = attacked
    ConsentState.objects.filter(subject_id=subjects[0], purpose=purposes["newsletter"]).update(
        event=events[0], decision=events[0].decision
    )
    intact, message = verify_output()
    assert not intact and "“newsletter”" in message and "says granted" in message


def test_a_deleted_state_is_named(attacked, purposes):
    subjects, _ = attacked
    ConsentState.objects.filter(
        subject_id=subjects[1], purpose=purposes["recommendations"]
    ).delete()
    intact, message = verify_output()
    assert not intact and "no current state" in message


def test_a_state_of_a_purpose_that_does_not_exist_is_named(attacked, purposes):
    """The state's purpose has no constraint in the database (migration 0014)."""
    subjects, events = attacked
    ConsentState.objects.create(
        subject_id=subjects[0],
        purpose_id=987654,
        decision=Decision.GRANTED,
        event_id=events[0].pk,
        updated_at=timezone.now(),
    )
    intact, message = verify_output()
    assert not intact
    assert "“#987654, a purpose that does not exist” for subject" in message


def test_an_event_citing_another_purposes_notice_with_its_hash_made_to_match_is_named(
    attacked, purposes
):
    """Inserted with a hash that covers what it says (anyone can compute one):
    about the newsletter, on the text of the recommendations."""
    subjects, _ = attacked
    other = purposes["recommendations"].notices.get()
    with transaction.atomic():
        forged = ledger.append(
            uuid=uuid.uuid4(),
            subject_id=subjects[0],
            purpose=purposes["newsletter"],
            notice=other,
            decision=Decision.GRANTED,
            method="panel",
            created_at=timezone.now(),
        )
        ledger.state_set(forged)
    intact, message = verify_output()
    assert not intact
    assert f"event {forged.uuid} is about “newsletter” but cites a notice of “recommendations”" in (
        message
    )


def test_an_event_citing_a_notice_that_does_not_exist_is_named(attacked, purposes):
    _, events = attacked
    execute("UPDATE consents_consentevent SET notice_id = 987654 WHERE id = %s", [events[5].pk])
    intact, message = verify_output()
    assert not intact and f"event {events[5].uuid}" in message


def test_the_ledgers_keys_to_purposes_and_notices_are_left_to_verify(purposes):
    """No constraint to check at every commit (migration 0014), but the ORM
    still refuses to delete a purpose or notice that the ledger cites."""
    from django.db.models import ProtectedError

    subject = uuid.uuid4()
    record(purposes, subject, "newsletter")
    with pytest.raises(ProtectedError):
        purposes["newsletter"].notices.get().delete()
    constrained = {
        f.name
        for model in (ConsentEvent, ConsentState)
        for f in model._meta.concrete_fields
        if f.is_relation and f.db_constraint
    }
    assert constrained == {"event"}


# 5. No false alarm while customers decide and the sealer seals


@pytest.mark.django_db(transaction=True)
def test_verify_never_raises_a_false_alarm_while_customers_decide():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite runs one writer at a time, so there is no race")
    purposes = {p.key: p for p in seed_inventory()}
    keys_ = ["newsletter", "recommendations", "tailored-offers", "product-research"]
    stop = threading.Event()
    errors: list[BaseException] = []

    def customers(worker: int) -> None:
        try:
            i = 0
            while not stop.is_set() and i < 400:
                subject = uuid.UUID(int=worker * 100_000 + i)
                record(purposes, subject, keys_[i % len(keys_)])
                if i % 3 == 2:  # some change their mind
                    record(purposes, subject, keys_[i % len(keys_)], Decision.WITHDRAWN)
                i += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def sealer() -> None:
        try:
            while not stop.is_set():
                ledger.seal(batch=7)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=customers, args=(n,)) for n in range(2)]
    workers.append(threading.Thread(target=sealer))
    for worker in workers:
        worker.start()
    try:
        verdicts = [ledger.verify(chunk_size=7) for _ in range(20)]
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
    assert errors == []
    assert [v.problem for v in verdicts if not v.intact] == []
    assert verdicts[-1].count + verdicts[-1].unsealed > 0
    assert any(v.count for v in verdicts)  # the sealer ran meanwhile
    ledger.seal()
    final = ledger.verify()
    assert final.intact and final.count == ConsentEvent.objects.count()


@pytest.mark.django_db(transaction=True)
def test_verify_on_two_connections_names_what_it_names_on_one():
    """verify() that owns its transaction checks hashes, order and state on a
    second connection sharing its snapshot, beside the leaf stream; inside an
    enclosing transaction it checks them one after the other on one. Both
    give the same verdict, intact or not (the triggers are disabled for one
    statement each time, and enabled again, since this test commits)."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: the second connection is PostgreSQL's")
    purposes = {p.key: p for p in seed_inventory()}
    subjects = [uuid.uuid4() for _ in range(3)]
    events = [record(purposes, s, k) for s in subjects for k in ("newsletter", "ad-partners")]
    ledger.seal()
    record(purposes, subjects[0], "newsletter", Decision.WITHDRAWN)  # not sealed yet

    def both_ways():
        alone = ledger.verify()
        with transaction.atomic():
            inside = ledger.verify()
        assert alone == inside
        return alone

    def tampered(table: str, trigger: str, sql: str, params: list) -> None:
        with transaction.atomic():
            execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
            execute(sql, params)
            execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")

    verdict = both_ways()
    assert verdict.intact and (verdict.count, verdict.unsealed) == (6, 1)

    ConsentState.objects.filter(subject_id=subjects[1], purpose=purposes["newsletter"]).update(
        decision=Decision.REFUSED
    )
    verdict = both_ways()
    assert not verdict.intact and "current state of “newsletter”" in verdict.problem
    ConsentState.objects.filter(subject_id=subjects[1], purpose=purposes["newsletter"]).update(
        decision=Decision.GRANTED
    )
    assert both_ways().intact

    tampered(
        "consents_consentevent",
        "consents_ledger_no_update",
        "UPDATE consents_consentevent SET method = 'staff' WHERE id = %s",
        [events[3].pk],
    )
    verdict = both_ways()
    assert not verdict.intact
    assert verdict.problem == f"event {events[3].uuid}: its content was changed (leaf #4)"

    tampered(
        "consents_consentevent",
        "consents_ledger_no_update",
        "UPDATE consents_consentevent SET method = 'panel' WHERE id = %s",
        [events[3].pk],
    )
    assert both_ways().intact

    # A stored hash that is not one (the leaves stream its bytes): named as a change.
    stored = events[3].hash
    for forged in ("z" * 64, "ab"):
        tampered(
            "consents_consentevent",
            "consents_ledger_no_update",
            "UPDATE consents_consentevent SET hash = %s WHERE id = %s",
            [forged, events[3].pk],
        )
        verdict = both_ways()
        assert not verdict.intact
        assert verdict.problem == f"event {events[3].uuid}: its content was changed (leaf #4)"
    tampered(
        "consents_consentevent",
        "consents_ledger_no_update",
        "UPDATE consents_consentevent SET hash = %s WHERE id = %s",
        [stored, events[3].pk],
    )
    assert both_ways().intact

    # Two leaves swapped: the stream comes in the events' order, and says so.
    second, third = (LedgerLeaf.objects.get(seq=n).event_id for n in (2, 3))
    swap = "UPDATE consents_ledgerleaf SET event_id = %s WHERE seq = %s"
    for first_event, second_event in ((third, second), (second, third)):
        with transaction.atomic():
            execute("ALTER TABLE consents_ledgerleaf DISABLE TRIGGER USER")
            execute(swap, [-1, 2])
            execute(swap, [second_event, 3])
            execute(swap, [first_event, 2])
            execute("SET CONSTRAINTS ALL IMMEDIATE")
            execute("ALTER TABLE consents_ledgerleaf ENABLE TRIGGER USER")
        verdict = both_ways()
        if first_event == third:
            assert not verdict.intact and verdict.problem == "leaf #3: out of order"
    assert both_ways().intact

    # A state pointed at an event of another pair with the same decision.
    state = ConsentState.objects.get(subject_id=subjects[2], purpose=purposes["newsletter"])
    ConsentState.objects.filter(pk=state.pk).update(event=events[0])
    verdict = both_ways()
    assert not verdict.intact and "current state of “newsletter”" in verdict.problem
    ConsentState.objects.filter(pk=state.pk).update(event=state.event_id)
    assert both_ways().intact

    tampered(
        "consents_ledgerleaf",
        "consents_leaf_no_delete",
        "DELETE FROM consents_ledgerleaf WHERE seq = %s",
        [3],
    )
    verdict = both_ways()
    assert not verdict.intact and verdict.count == 2
    assert verdict.problem == "leaf #3 is missing: the tree skips to #4"


def test_a_leaf_proof_from_a_rewritten_node_does_not_verify(purposes):
    """Stored nodes serve inclusion proofs; one rewritten gives a proof that
    fails against the signed root instead of a false one that passes."""
    notice = purposes["newsletter"].notices.get()
    events = [
        ledger.append(
            subject_id=uuid.UUID(int=i + 1),
            purpose=purposes["newsletter"],
            notice=notice,
            decision=Decision.GRANTED,
            method="panel",
            created_at=notice.created_at,
        )
        for i in range(300)
    ]
    seal = ledger.seal().seal
    assert seal.size == 300
    proof = ledger.inclusion_proof(events[280])
    root = bytes.fromhex(seal.root)
    leaf = merkle.leaf_hash(bytes.fromhex(events[280].hash))
    path = [bytes.fromhex(h) for h in proof.audit_path]
    assert merkle.verify_inclusion(leaf, proof.leaf_index, proof.tree_size, path, root)
    drop_every_trigger()
    execute("UPDATE consents_ledgernode SET hash = %s", ["ab" * 32])
    forged = ledger.inclusion_proof(events[280])
    path = [bytes.fromhex(h) for h in forged.audit_path]
    assert not merkle.verify_inclusion(leaf, forged.leaf_index, forged.tree_size, path, root)
    assert place_of(events[280]) == 281
