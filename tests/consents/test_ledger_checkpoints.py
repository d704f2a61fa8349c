"""Signed checkpoints kept outside the database (issue 9, items 2 and 7): the
attacks that leave the database consistent with itself (a rollback to an
earlier genuine seal, a wipe, an event rewritten with its hash recomputed) are
named by verify_ledger from the exported checkpoints (or a receipt's), even
when the checkpoint table was wiped too; no checkpoint is signed over them."""

from __future__ import annotations

import json
import uuid
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from joserfc import jws
from joserfc.jwk import ECKey, KeySet

from consents import keys, ledger, merkle
from consents.checkpoints import checkpoint_time
from consents.models import ConsentEvent, ConsentState, Decision, LedgerCheckpoint, LedgerSeal
from consents.receipts import receipt_jws, receipt_payload, receipt_verify
from consents.services import ledger_checkpoint_make
from consents.tasks import ledger_checkpoint
from portal.mail import EMAIL
from portal.models import OutboxItem
from tests.consents.ledger_support import (
    CHECKPOINTS as CHECKPOINT_TRIGGERS,
)
from tests.consents.ledger_support import (
    drop_append_only_triggers,
    drop_event_triggers,
    drop_tree_triggers,
    record,
    rehash,
    roll_back_to,
    tree_root,
    verify_output,
    wipe,
)

CHECKPOINTS = "consents_ledgercheckpoint"
WELL_KNOWN = "/.well-known/clareza-ledger-checkpoints.json"


@pytest.fixture
def export(settings, tmp_path):
    settings.LEDGER_CHECKPOINT_FILE = tmp_path / "archive" / "ledger-checkpoints.jsonl"
    return settings.LEDGER_CHECKPOINT_FILE


@pytest.fixture
def checkpoint(django_capture_on_commit_callbacks):
    """Make a checkpoint and run what its commit runs (the export)."""

    def make():
        with django_capture_on_commit_callbacks(execute=True):
            return ledger_checkpoint_make()

    return make


def exported(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def decisions(purposes, count: int) -> list[ConsentEvent]:
    """`count` decisions, each of a new person (so that cutting one off leaves
    no one else's state behind)."""
    return [record(purposes, uuid.uuid4(), "newsletter") for _ in range(count)]


def drop_checkpoint_triggers() -> None:
    drop_append_only_triggers(*CHECKPOINT_TRIGGERS)


def drop_ledger_triggers() -> None:
    """Events, leaves, nodes, seals and checkpoints: everything in the database."""
    drop_event_triggers()
    drop_tree_triggers()
    drop_checkpoint_triggers()


# Making checkpoints


def test_a_checkpoint_seals_and_signs_the_trees_size_and_root(purposes, export, checkpoint):
    events = decisions(purposes, 3)
    made = checkpoint()
    assert (made.size, made.root) == (3, tree_root([e.hash for e in events]))
    # What was waiting is sealed first: the checkpoint is the newest seal.
    seal = LedgerSeal.objects.get()
    assert (seal.size, seal.root, seal.token) == (made.size, made.root, made.token)
    signed = jws.deserialize_compact(
        made.token, KeySet.import_key_set(keys.public_jwks()), algorithms=["ES256"]
    )
    assert json.loads(signed.payload) == {
        "format": "clareza-merkle-v1",
        "ledger": settings.SITE_URL,
        "size": 3,
        "root": made.root,
        "time": checkpoint_time(made.created_at),
    }
    assert signed.headers()["kid"] == keys.signing_key().kid


def test_the_database_refuses_to_update_or_delete_a_checkpoint(purposes, export, checkpoint):
    decisions(purposes, 1)
    made = checkpoint()
    for statement in (f"UPDATE {CHECKPOINTS} SET size = 7", f"DELETE FROM {CHECKPOINTS}"):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    assert LedgerCheckpoint.objects.get().size == made.size == 1


def test_the_export_gets_one_line_per_checkpoint_and_none_when_nothing_changed(
    purposes, export, checkpoint
):
    assert checkpoint() is None  # an empty ledger has nothing to anchor
    decisions(purposes, 2)
    first = checkpoint()
    assert checkpoint() == first  # nothing appended since: the same one, nothing exported
    decisions(purposes, 1)
    second = checkpoint()
    lines = exported(export)
    assert [(line["size"], line["root"], line["token"]) for line in lines] == [
        (2, first.root, first.token),
        (3, second.root, second.token),
    ]
    assert lines[1]["time"] == checkpoint_time(second.created_at)
    assert LedgerCheckpoint.objects.count() == 2


def test_a_rolled_back_checkpoint_is_never_exported(
    purposes, export, django_capture_on_commit_callbacks
):
    decisions(purposes, 2)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        assert ledger_checkpoint_make().size == 2
        raise RuntimeError("the transaction fails after the checkpoint")
    assert callbacks == []
    assert not export.exists()
    assert not LedgerCheckpoint.objects.exists()
    assert not OutboxItem.objects.filter(kind=EMAIL, topic="emails/ledger_checkpoint").exists()


def test_the_dpo_is_emailed_the_checkpoint_and_how_to_keep_it(
    purposes, export, checkpoint, mailoutbox
):
    decisions(purposes, 2)
    made = checkpoint()
    assert (
        OutboxItem.objects.get(kind=EMAIL, topic="emails/ledger_checkpoint").recipient
        == settings.DPO_EMAIL
    )
    [email] = mailoutbox
    assert email.to == [settings.DPO_EMAIL]
    assert email.subject == "Consent ledger checkpoint: 2 events"
    assert made.token in email.body and made.root in email.body
    assert "covers its first 2 events" in email.body
    # The root is the Merkle tree's now, not the last event's hash.
    assert "hash of the last event" not in email.body
    assert "where the portal's administrators cannot change it" in email.body
    assert "python manage.py verify_ledger --checkpoints FILE" in email.body
    assert settings.SITE_URL + WELL_KNOWN in email.body
    [(html, mimetype)] = email.alternatives
    assert mimetype == "text/html"
    assert f"<pre>{made.token}</pre>" in html
    assert "where the portal's administrators cannot change it" in html
    assert f'href="{settings.SITE_URL}/.well-known/jwks.json"' in html


def test_the_beat_tasks_seal_and_checkpoint_on_schedule(
    purposes, export, django_capture_on_commit_callbacks
):
    seal_entry = settings.CELERY_BEAT_SCHEDULE["ledger-seal"]
    assert seal_entry["task"] == "consents.tasks.ledger_seal"
    assert seal_entry["schedule"].total_seconds() == settings.LEDGER_SEAL_SECONDS
    assert settings.LEDGER_SEAL_MAX_DELAY.total_seconds() > settings.LEDGER_SEAL_SECONDS
    entry = settings.CELERY_BEAT_SCHEDULE["ledger-checkpoint"]
    assert entry["task"] == "consents.tasks.ledger_checkpoint"
    assert entry["schedule"].total_seconds() == settings.LEDGER_CHECKPOINT_MINUTES * 60 == 3600
    from consents.tasks import ledger_seal

    decisions(purposes, 2)
    assert ledger_seal.delay().get() == 2
    assert ledger_seal.delay().get() == 0
    decisions(purposes, 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert ledger_checkpoint.delay().get() == 3
        assert ledger_checkpoint.delay().get() == 3
    assert LedgerCheckpoint.objects.count() == 1
    assert len(exported(export)) == 1
    assert OutboxItem.objects.filter(kind=EMAIL, topic="emails/ledger_checkpoint").count() == 1


def test_the_command_prints_size_root_and_where_it_went(purposes, export, checkpoint):
    events = decisions(purposes, 2)
    out = StringIO()
    call_command("ledger_checkpoint", stdout=out)
    assert "Checkpoint of 2 events" in out.getvalue()
    assert f"root {tree_root([e.hash for e in events])}" in out.getvalue()
    assert f"exported to {export}" in out.getvalue()
    again = StringIO()
    call_command("ledger_checkpoint", stdout=again)
    assert "Nothing was appended since the checkpoint of 2 events" in again.getvalue()
    assert LedgerCheckpoint.objects.count() == 1


def test_no_checkpoint_is_signed_over_a_ledger_rolled_back_behind_the_last_one(
    purposes, export, checkpoint
):
    decisions(purposes, 2)
    ledger.seal()
    decisions(purposes, 2)
    checkpoint()
    drop_ledger_triggers()
    roll_back_to(2)  # to the genuine seal of 2 events: the sealer has nothing to object
    assert ledger.seal().seal.size == 2
    with pytest.raises(ledger.LedgerIntegrityError, match="the checkpoint #4 covers 4"):
        ledger_checkpoint_make()
    # Decisions go on (never refused), but the sealer will not sign them on top
    # of a tree smaller than the checkpoint says: nothing is sealed, nothing signed.
    decisions(purposes, 3)
    with pytest.raises(
        ledger.LedgerIntegrityError,
        match="the last stored checkpoint covers 4 events but the tree holds 2",
    ):
        ledger_checkpoint_make()
    assert ledger.seal_problem() == ""  # the last seal itself is genuine...
    assert LedgerSeal.objects.order_by("-size").first().size == 2  # ...and was not extended
    assert LedgerCheckpoint.objects.count() == 1
    assert len(exported(export)) == 1


def test_no_checkpoint_is_signed_over_a_wiped_ledger(purposes, export, checkpoint):
    decisions(purposes, 2)
    checkpoint()
    drop_ledger_triggers()
    wipe()
    with pytest.raises(ledger.LedgerIntegrityError, match="the ledger was wiped"):
        ledger_checkpoint_make()
    assert LedgerCheckpoint.objects.count() == 1


def test_no_checkpoint_is_signed_over_an_event_rewritten_with_its_hash_recomputed(
    purposes, export, checkpoint
):
    events = decisions(purposes, 3)
    checkpoint()
    drop_ledger_triggers()
    ConsentEvent.objects.filter(pk=events[1].pk).update(decision=Decision.REFUSED)
    ConsentState.objects.filter(event=events[1]).update(decision=Decision.REFUSED)
    rehash(events[1])
    decisions(purposes, 1)
    with pytest.raises(ledger.LedgerIntegrityError, match="differ from the checkpoint #3"):
        ledger_checkpoint_make()
    assert LedgerCheckpoint.objects.count() == 1


# The published list


def test_the_well_known_list_is_newest_first_and_names_the_keys(
    client, purposes, export, checkpoint
):
    decisions(purposes, 1)
    first = checkpoint()
    decisions(purposes, 1)
    second = checkpoint()
    response = client.get(WELL_KNOWN)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    body = response.json()
    assert body["ledger"] == settings.SITE_URL
    assert body["keys"] == settings.SITE_URL + "/.well-known/jwks.json"
    assert [c["size"] for c in body["checkpoints"]] == [2, 1]
    assert body["checkpoints"][1] == exported(export)[0]
    assert [c["token"] for c in body["checkpoints"]] == [second.token, first.token]
    assert client.post(WELL_KNOWN).status_code == 405


def test_the_saved_well_known_list_is_a_checkpoint_file_for_verify_ledger(
    client, purposes, export, checkpoint, tmp_path
):
    decisions(purposes, 3)
    checkpoint()
    saved = tmp_path / "published.json"
    saved.write_bytes(client.get(WELL_KNOWN).content)
    assert verify_output(saved) == (
        True,
        "Ledger intact: 3 sealed event(s) verified against its last signed seal and "
        "1 signed checkpoint(s).\n",
    )


# Attacks that leave the database consistent with itself


def test_a_rollback_to_an_earlier_seal_is_named_from_the_export(purposes, export, checkpoint):
    decisions(purposes, 4)
    ledger.seal()
    decisions(purposes, 2)
    made = checkpoint()
    drop_ledger_triggers()
    roll_back_to(4)
    rollback = (
        f"the ledger has 4 sealed events but the checkpoint of {checkpoint_time(made.created_at)} "
        "covers 6: events were removed"
    )
    # The checkpoint still in the database names it...
    intact, message = verify_output()
    assert not intact and rollback in message
    # ...but the attacker deletes it too: without a checkpoint from outside, the
    # events, the genuine seal of 4 and the states agree, and verify_ledger cannot tell.
    LedgerCheckpoint.objects.all().delete()
    assert verify_output() == (
        True,
        "Ledger intact: 4 sealed event(s) verified against its last signed seal.\n",
    )
    intact, message = verify_output(export)
    assert not intact
    assert f"Ledger NOT intact: {rollback}" in message
    # The sealer reads the export too: it never signs on top of the rollback,
    # whatever decisions come in meanwhile (they are recorded, not sealed).
    decisions(purposes, 3)
    with pytest.raises(
        ledger.LedgerIntegrityError,
        match="the last exported checkpoint covers 6 events but the tree holds 4",
    ):
        ledger.seal()
    assert LedgerSeal.objects.order_by("-size").first().size == 4
    intact, message = verify_output(export)
    assert not intact and f"Ledger NOT intact: {rollback}" in message


def test_a_wiped_ledger_is_named_from_the_export_even_with_the_checkpoint_table_wiped(
    purposes, export, checkpoint
):
    decisions(purposes, 3)
    made = checkpoint()
    drop_ledger_triggers()
    wipe()
    LedgerCheckpoint.objects.all().delete()
    assert verify_output() == (True, "Ledger intact: 0 sealed event(s) verified.\n")
    intact, message = verify_output(export)
    assert not intact
    assert (
        f"the ledger has 0 sealed events but the checkpoint of {checkpoint_time(made.created_at)} "
        "covers 3: the ledger was wiped" in message
    )


def test_a_rewritten_event_is_named_at_the_earliest_checkpoint_that_no_longer_matches(
    purposes, export, checkpoint
):
    subjects = [uuid.uuid4() for _ in range(6)]
    events = [record(purposes, s, "ad-partners", Decision.REFUSED) for s in subjects[:3]]
    third = checkpoint()
    events += [record(purposes, s, "newsletter") for s in subjects[3:]]
    sixth = checkpoint()
    drop_ledger_triggers()
    # Refused becomes granted at #2, its hash recomputed: every row agrees with itself.
    ConsentEvent.objects.filter(pk=events[1].pk).update(decision=Decision.GRANTED)
    ConsentState.objects.filter(event=events[1]).update(decision=Decision.GRANTED)
    rehash(events[1])
    LedgerCheckpoint.objects.all().delete()
    intact, message = verify_output()
    assert not intact
    assert "the tree of 6 events differs from the last seal" in message
    intact, message = verify_output(export)
    assert not intact
    assert (
        f"Ledger NOT intact: the tree of 3 events differs from the checkpoint of "
        f"{checkpoint_time(third.created_at)}: an event from the first up to #3 was changed, "
        "removed or added" in message
    )
    assert "The first 0 event(s) verified before it." in message
    # Put back, and a change after the first checkpoint instead: placed between the two.
    ConsentEvent.objects.filter(pk=events[1].pk).update(decision=Decision.REFUSED)
    ConsentState.objects.filter(event=events[1]).update(decision=Decision.REFUSED)
    rehash(events[1])
    ConsentEvent.objects.filter(pk=events[4].pk).update(method="staff")
    rehash(events[4])
    intact, message = verify_output(export)
    assert not intact
    assert (
        f"the tree of 6 events differs from the checkpoint of {checkpoint_time(sixth.created_at)}"
        ": an event after #3 up to #6 was changed" in message
    )
    assert "The first 3 event(s) verified before it." in message


def test_a_forged_checkpoint_line_is_reported_and_not_trusted(purposes, export, checkpoint):
    decisions(purposes, 2)
    made = checkpoint()
    line = exported(export)[0]
    # Signed by a key that is not the portal's, claiming events that never were.
    impostor = ECKey.generate_key("P-256")
    payload = {**json.loads(jws.extract_compact(made.token.encode()).payload), "size": 9}
    forged = jws.serialize_compact(
        {"alg": "ES256", "kid": keys.signing_key().kid}, json.dumps(payload).encode(), impostor
    )
    with export.open("a") as handle:
        handle.write(json.dumps({**line, "size": 9, "token": forged}) + "\n")
        handle.write(json.dumps({**line, "size": 9}) + "\n")  # the genuine token, edited
        handle.write(json.dumps({"size": 9, "root": line["root"]}) + "\n")  # unsigned
    intact, message = verify_output(export)
    assert not intact
    assert f"{export} line 2: its signature does not verify" in message
    assert f"{export} line 3: its size differs from the one it signs" in message
    assert f"{export} line 4: no signed token: not trusted" in message
    assert "covers 9" not in message  # nothing they claim is believed
    assert "Ledger intact against 1 signed checkpoint(s), but 3 checkpoint(s)" in message


def test_a_checkpoint_forged_in_the_database_is_reported_and_not_trusted(
    purposes, export, checkpoint
):
    decisions(purposes, 2)
    made = checkpoint()
    # Claims about events that never were, without the key: a row with no valid
    # signature, and a genuine token put on a row that says something else.
    LedgerCheckpoint.objects.create(size=9, root="f" * 64, token=made.token + "x")
    LedgerCheckpoint.objects.create(size=8, root="e" * 64, token=made.token)
    intact, message = verify_output()
    assert not intact
    assert "the checkpoint #9 stored in the database: its signature does not verify" in message
    assert "the checkpoint #8 stored in the database: its root differs" in message
    assert "covers 9" not in message and "covers 8" not in message
    assert "Ledger intact against 1 signed checkpoint(s), but 2 checkpoint(s)" in message


def test_a_checkpoint_copied_from_the_email_is_enough_to_verify(
    purposes, export, checkpoint, tmp_path
):
    decisions(purposes, 1)
    ledger.seal()
    decisions(purposes, 1)
    made = checkpoint()
    kept = tmp_path / "from-the-email.txt"
    kept.write_text(made.token + "\n")
    assert verify_output(kept)[0]
    drop_ledger_triggers()
    roll_back_to(1)
    LedgerCheckpoint.objects.all().delete()
    intact, message = verify_output(kept)
    assert not intact and "covers 2: events were removed" in message
    # --checkpoints is repeatable: the email's copy and the export together.
    intact, message = verify_output(kept, export)
    assert not intact and "the ledger has 1 sealed event but the checkpoint of" in message


def test_a_customers_receipt_is_enough_to_name_a_rollback(purposes, export, checkpoint, tmp_path):
    """Checkpoints travel in receipts: a customer's copy names a rollback of
    their decision even when every checkpoint the portal kept is gone."""
    decisions(purposes, 2)
    ledger.seal()
    mine = record(purposes, uuid.uuid4(), "newsletter")
    checkpoint()
    receipt = tmp_path / "receipt.jws"
    receipt.write_text(receipt_jws(mine))
    drop_ledger_triggers()
    roll_back_to(2)
    LedgerCheckpoint.objects.all().delete()
    assert verify_output()[0]  # nothing left inside the database says so
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="covers 3: events were removed"):
        call_command("verify_ledger", "--receipt", str(receipt), stdout=out, stderr=err)


# Receipts


def test_a_receipt_names_the_checkpoint_that_covers_it_and_proves_its_place(
    client, purposes, export, checkpoint
):
    first = record(purposes, uuid.uuid4(), "newsletter")
    payload = receipt_payload(first)
    assert payload["ledgerCheckpoints"] == settings.SITE_URL + WELL_KNOWN
    assert payload["coveredBy"] is None  # not yet: the list will have it
    second = record(purposes, uuid.uuid4(), "newsletter")
    made = checkpoint()
    later = record(purposes, uuid.uuid4(), "newsletter")
    ledger.seal()  # a seal beyond the checkpoint: the receipts still prove against it
    covered = {"size": 2, "time": checkpoint_time(made.created_at), "token": made.token}
    assert receipt_payload(first)["coveredBy"] == covered
    assert receipt_payload(second)["coveredBy"] == covered
    assert receipt_payload(later)["coveredBy"] is None
    signed = receipt_verify(receipt_jws(first), keys.public_jwks())
    assert signed["coveredBy"]["token"] == made.token
    proof = signed["inclusionProof"]
    assert (proof["treeSize"], proof["checkpoint"]) == (2, made.token)
    assert merkle.verify_inclusion(
        merkle.leaf_hash(bytes.fromhex(signed["ledgerHash"])),
        proof["leafIndex"],
        proof["treeSize"],
        [bytes.fromhex(h) for h in proof["auditPath"]],
        bytes.fromhex(made.root),
    )
    # Until a checkpoint covers it, the newest seal does.
    assert receipt_payload(later)["inclusionProof"]["treeSize"] == 3
