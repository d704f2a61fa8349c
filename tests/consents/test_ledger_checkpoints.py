"""Signed checkpoints kept outside the database (issue 9, items 2 and 7): the
attacks that leave the database consistent with itself (a head row written
back, a wipe, a chain recomputed end to end) are named by verify_ledger from
the exported checkpoints, even when the checkpoint table was wiped too."""

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

from consents import keys, ledger
from consents.checkpoints import checkpoint_time
from consents.models import ConsentEvent, ConsentState, Decision, LedgerCheckpoint, LedgerHead
from consents.receipts import receipt_payload, receipt_verify
from consents.services import ledger_checkpoint_make
from consents.tasks import ledger_checkpoint
from portal.mail import EMAIL
from portal.models import OutboxItem
from tests.consents.ledger_support import (
    drop_append_only_triggers,
    drop_event_triggers,
    recompute_chain_from,
)
from tests.consents.test_ledger import record

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


def verify_output(*paths) -> tuple[bool, str]:
    out, err = StringIO(), StringIO()
    arguments = [item for path in paths for item in ("--checkpoints", str(path))]
    try:
        call_command("verify_ledger", *arguments, stdout=out, stderr=err)
    except CommandError as exc:
        return False, f"{err.getvalue()}{exc}"
    return True, err.getvalue() + out.getvalue()


def exported(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def decisions(purposes, count: int) -> list[ConsentEvent]:
    """`count` decisions, each of a new person (so that cutting one off leaves
    no one else's state behind)."""
    return [record(purposes, uuid.uuid4(), "newsletter") for _ in range(count)]


def drop_checkpoint_triggers() -> None:
    drop_append_only_triggers("consents_checkpoint", CHECKPOINTS)


# Making checkpoints


def test_a_checkpoint_signs_the_ledgers_size_and_root(purposes, export, checkpoint):
    events = decisions(purposes, 3)
    made = checkpoint()
    assert (made.size, made.root) == (3, events[-1].hash)
    signed = jws.deserialize_compact(
        made.token, KeySet.import_key_set(keys.public_jwks()), algorithms=["ES256"]
    )
    assert json.loads(signed.payload) == {
        "format": "clareza-chain-v1",
        "ledger": settings.SITE_URL,
        "size": 3,
        "root": events[-1].hash,
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
    assert "where the portal's administrators cannot change it" in email.body
    assert "python manage.py verify_ledger --checkpoints FILE" in email.body
    assert settings.SITE_URL + WELL_KNOWN in email.body
    [(html, mimetype)] = email.alternatives
    assert mimetype == "text/html"
    assert f"<pre>{made.token}</pre>" in html
    assert "where the portal's administrators cannot change it" in html
    assert f'href="{settings.SITE_URL}/.well-known/jwks.json"' in html


def test_the_beat_task_checkpoints_on_schedule_and_skips_when_nothing_changed(
    purposes, export, django_capture_on_commit_callbacks
):
    entry = settings.CELERY_BEAT_SCHEDULE["ledger-checkpoint"]
    assert entry["task"] == "consents.tasks.ledger_checkpoint"
    assert entry["schedule"].total_seconds() == settings.LEDGER_CHECKPOINT_MINUTES * 60 == 3600
    decisions(purposes, 2)
    with django_capture_on_commit_callbacks(execute=True):
        assert ledger_checkpoint.delay().get() == 2
        assert ledger_checkpoint.delay().get() == 2
    assert LedgerCheckpoint.objects.count() == 1
    assert len(exported(export)) == 1
    assert OutboxItem.objects.filter(kind=EMAIL, topic="emails/ledger_checkpoint").count() == 1


def test_the_command_prints_size_root_and_where_it_went(purposes, export, checkpoint):
    events = decisions(purposes, 2)
    out = StringIO()
    call_command("ledger_checkpoint", stdout=out)
    assert "Checkpoint of 2 events" in out.getvalue()
    assert f"root {events[-1].hash}" in out.getvalue()
    assert f"exported to {export}" in out.getvalue()
    again = StringIO()
    call_command("ledger_checkpoint", stdout=again)
    assert "Nothing was appended since the checkpoint of 2 events" in again.getvalue()
    assert LedgerCheckpoint.objects.count() == 1


def test_no_checkpoint_is_signed_over_a_ledger_rolled_back_behind_the_last_one(
    purposes, export, checkpoint
):
    decisions(purposes, 2)
    saved = LedgerHead.objects.values("seq", "hash", "signature").get()
    decisions(purposes, 2)
    checkpoint()
    drop_event_triggers()
    ConsentState.objects.filter(event__seq__gt=2).delete()
    ConsentEvent.objects.filter(seq__gt=2).delete()
    LedgerHead.objects.update(**saved)
    with pytest.raises(ledger.LedgerIntegrityError, match="the checkpoint #4 covers 4"):
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
        "Ledger intact: 3 events verified against 1 signed checkpoint(s).\n",
    )


# Attacks that leave the database consistent with itself


def test_a_head_row_written_back_after_a_rollback_is_named_from_the_export(
    purposes, export, checkpoint
):
    decisions(purposes, 4)
    saved = LedgerHead.objects.values("seq", "hash", "signature", "updated_at").get()
    decisions(purposes, 2)
    made = checkpoint()
    drop_event_triggers()
    ConsentState.objects.filter(event__seq__gt=4).delete()
    ConsentEvent.objects.filter(seq__gt=4).delete()
    LedgerHead.objects.update(**saved)
    rollback = (
        f"the ledger has 4 events but the checkpoint of {checkpoint_time(made.created_at)} "
        "covers 6: events were removed (a rollback or truncation)"
    )
    # The checkpoint still in the database names it...
    intact, message = verify_output()
    assert not intact and rollback in message
    # ...but the attacker deletes it too: without a checkpoint from outside, the
    # ledger, its signed head and the states agree, and verify_ledger cannot tell.
    drop_checkpoint_triggers()
    LedgerCheckpoint.objects.all().delete()
    assert verify_output() == (True, "Ledger intact: 4 events verified.\n")
    intact, message = verify_output(export)
    assert not intact
    assert f"Ledger NOT intact: {rollback}." in message


def test_a_wiped_ledger_is_named_from_the_export_even_with_the_checkpoint_table_wiped(
    purposes, export, checkpoint
):
    decisions(purposes, 3)
    made = checkpoint()
    drop_event_triggers()
    drop_checkpoint_triggers()
    ConsentState.objects.all().delete()
    ConsentEvent.objects.all().delete()
    LedgerHead.objects.all().delete()
    LedgerCheckpoint.objects.all().delete()
    assert verify_output() == (True, "Ledger intact: 0 events verified.\n")
    intact, message = verify_output(export)
    assert not intact
    assert (
        f"the ledger has 0 events but the checkpoint of {checkpoint_time(made.created_at)} "
        "covers 3: the ledger was wiped" in message
    )


def test_a_recomputed_chain_is_named_at_the_earliest_checkpoint_that_no_longer_matches(
    purposes, export, checkpoint
):
    subjects = [uuid.uuid4() for _ in range(6)]
    for subject in subjects[:3]:
        record(purposes, subject, "ad-partners", Decision.REFUSED)
    third = checkpoint()
    for subject in subjects[3:]:
        record(purposes, subject, "newsletter")
    checkpoint()
    drop_event_triggers()
    drop_checkpoint_triggers()
    # Refused becomes granted at #2; every later hash and the head are recomputed.
    ConsentEvent.objects.filter(seq=2).update(decision=Decision.GRANTED)
    ConsentState.objects.filter(event__seq=2).update(decision=Decision.GRANTED)
    recompute_chain_from(2)
    LedgerCheckpoint.objects.all().delete()
    intact, message = verify_output()
    assert not intact and "signature is wrong" in message and "checkpoint" not in message
    intact, message = verify_output(export)
    assert not intact
    assert (
        f"Ledger NOT intact: event #3's hash differs from the checkpoint of "
        f"{checkpoint_time(third.created_at)}: an event at or before #3 was changed "
        "(the earliest checkpoint that no longer matches); "
        "the chain head's signature is wrong" in message
    )
    assert "The first 0 event(s) verified before it." in message


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
    decisions(purposes, 2)
    made = checkpoint()
    kept = tmp_path / "from-the-email.txt"
    kept.write_text(made.token + "\n")
    assert verify_output(kept)[0]
    drop_event_triggers()
    drop_checkpoint_triggers()
    ConsentState.objects.filter(event__seq=2).delete()
    ConsentEvent.objects.filter(seq=2).delete()
    LedgerHead.objects.update(seq=1, hash=ConsentEvent.objects.get(seq=1).hash)
    LedgerCheckpoint.objects.all().delete()
    intact, message = verify_output(kept)
    assert not intact and "covers 2: events were removed" in message
    # --checkpoints is repeatable: the email's copy and the export together.
    intact, message = verify_output(kept, export)
    assert not intact and "the ledger has 1 event but the checkpoint of" in message


# Receipts


def test_a_receipt_names_the_checkpoint_that_covers_it(client, purposes, export, checkpoint):
    first = record(purposes, uuid.uuid4(), "newsletter")
    payload = receipt_payload(first)
    assert payload["ledgerCheckpoints"] == settings.SITE_URL + WELL_KNOWN
    assert payload["coveredBy"] is None  # not yet: the list will have it
    second = record(purposes, uuid.uuid4(), "newsletter")
    made = checkpoint()
    later = record(purposes, uuid.uuid4(), "newsletter")
    covered = {"size": 2, "time": checkpoint_time(made.created_at), "token": made.token}
    assert receipt_payload(first)["coveredBy"] == covered
    assert receipt_payload(second)["coveredBy"] == covered
    assert receipt_payload(later)["coveredBy"] is None
    from consents.receipts import receipt_jws

    signed = receipt_verify(receipt_jws(first), keys.public_jwks())
    assert signed["coveredBy"]["token"] == made.token
