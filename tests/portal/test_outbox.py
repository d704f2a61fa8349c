"""The outbox's machinery, with a kind of work of this test's own: what any
kind gets by registering a handler (portal/outbox.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal import outbox
from portal.models import OutboxItem

KIND = "test-echo"
Status = OutboxItem.Status


class Echo:
    """A handler that records what it did; each row's fate is chosen by its recipient."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.on_each = None  # called with the batch before each row

    def __call__(self, batch: outbox.Batch) -> None:
        for item in batch:
            if self.on_each:
                self.on_each(batch, item)
            if item.recipient.startswith("refuse"):
                batch.failed(item, "refused")
            elif item.recipient.startswith("crash"):
                raise ConnectionError("the server went away")
            elif item.recipient.startswith("forget"):
                continue
            else:
                self.done.append(item.recipient)
                batch.sent(item)


@pytest.fixture
def echo():
    handler = Echo()
    outbox.register(KIND, send=handler, private_payload=True)
    yield handler
    outbox._handlers.pop(KIND)


def write(*recipients: str, **fields) -> list[OutboxItem]:
    return [
        outbox.outbox_queue(kind=KIND, recipient=r, payload={"secret": r}, **fields)
        for r in recipients
    ]


def test_an_unknown_kind_is_refused_when_written_not_later_in_a_worker(db):
    with pytest.raises(LookupError, match="nope"):
        outbox.outbox_queue(kind="nope", recipient="a@example.com")
    assert not OutboxItem.objects.exists()


def test_a_kind_does_its_batch_and_private_payloads_go_once_done(db, echo, settings):
    settings.OUTBOX_BATCH = 2
    write("a", "b", "c")
    assert outbox.outbox_send(kind=KIND) == 2
    assert outbox.outbox_send(kind=KIND) == 1
    assert outbox.outbox_send(kind=KIND) == 0
    assert echo.done == ["a", "b", "c"]
    rows = OutboxItem.objects.filter(kind=KIND)
    assert set(rows.values_list("status", "attempts", "leased_until")) == {(Status.SENT, 1, None)}
    assert [row.payload for row in rows] == [{}, {}, {}]


def test_the_same_dedupe_key_never_makes_a_second_row(db, echo):
    write("a", dedupe_key="once")
    with pytest.raises(IntegrityError), transaction.atomic():
        write("a", dedupe_key="once")
    added = outbox.outbox_queue_many(
        kind=KIND,
        topic="",
        items=[OutboxItem(recipient="a", dedupe_key="once"), OutboxItem(recipient="b")],
    )
    assert added == 1
    assert OutboxItem.objects.filter(kind=KIND).count() == 2


def test_a_refused_row_backs_off_alone_then_fails_with_its_error(db, echo, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 2
    write("refuse", "ok")
    assert outbox.outbox_send(kind=KIND) == 1
    refused = OutboxItem.objects.get(recipient="refuse")
    assert (refused.status, refused.attempts, refused.last_error) == (Status.PENDING, 1, "refused")
    assert refused.next_attempt_at > timezone.now()
    assert outbox.outbox_send(kind=KIND) == 0  # still backing off: not claimed
    OutboxItem.objects.filter(pk=refused.pk).update(next_attempt_at=timezone.now())
    assert outbox.outbox_send(kind=KIND) == 0
    refused.refresh_from_db()
    assert (refused.status, refused.attempts, refused.next_attempt_at) == (Status.FAILED, 2, None)
    assert refused.payload == {"secret": "refuse"}  # kept until OUTBOX_UNSENT_KEPT


def test_a_lost_connection_releases_the_rest_of_the_batch(db, echo):
    write("a", "crash", "b")
    with pytest.raises(outbox.DeliveryInterrupted):
        outbox.outbox_send(kind=KIND)
    rows = dict(OutboxItem.objects.values_list("recipient", "status"))
    assert rows == {"a": Status.SENT, "crash": Status.PENDING, "b": Status.PENDING}
    for row in OutboxItem.objects.exclude(recipient="a"):
        assert "ConnectionError" in row.last_error
        assert row.leased_until is None and row.next_attempt_at > timezone.now()


def test_a_row_the_handler_left_undone_is_tried_again(db, echo):
    write("forget")
    assert outbox.outbox_send(kind=KIND) == 0
    row = OutboxItem.objects.get()
    assert (row.status, row.attempts) == (Status.PENDING, 1)
    assert row.last_error == "The handler left the row undone."


def test_a_long_batch_renews_its_lease_and_leaves_a_row_another_worker_took(
    db, echo, settings, monkeypatch
):
    settings.OUTBOX_LEASE = timedelta(seconds=30)  # renewed every 10 s of the batch
    clock = [1000.0]
    monkeypatch.setattr(outbox.time, "monotonic", lambda: clock[0])
    first, taken, last = write("a", "b", "c")
    leases = []

    def each(batch, item):
        leases.append(OutboxItem.objects.get(pk=last.pk).leased_until)
        if item.pk == first.pk:
            # The batch stalls past a third of its lease, and meanwhile another
            # worker claimed "b" (its lease had run out, say).
            clock[0] += 11
            OutboxItem.objects.filter(pk=taken.pk).update(
                leased_until=timezone.now() + timedelta(hours=1)
            )

    echo.on_each = each
    assert outbox.outbox_send(kind=KIND) == 2
    assert echo.done == ["a", "c"]  # "b" is the other worker's: never done twice
    assert leases[1] > leases[0]  # renewed before "c"
    assert OutboxItem.objects.get(pk=taken.pk).status == Status.SENDING


def test_the_sweep_leaves_fresh_rows_and_takes_lost_and_dead_workers_rows(db, echo, settings):
    fresh, lost, dead = write("fresh", "lost", "dead")
    OutboxItem.objects.filter(pk=lost.pk).update(
        created_at=timezone.now() - settings.OUTBOX_GRACE - timedelta(seconds=1)
    )
    OutboxItem.objects.filter(pk=dead.pk).update(
        status=Status.SENDING, attempts=1, leased_until=timezone.now() - timedelta(seconds=1)
    )
    assert outbox.outbox_sweep() == {(KIND, ""): 2}  # eager: its senders ran
    assert sorted(echo.done) == ["dead", "lost"]
    fresh.refresh_from_db()
    assert (fresh.status, fresh.attempts) == (Status.PENDING, 0)


def test_the_sweep_gives_up_on_rows_whose_worker_died_at_every_attempt(db, echo, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    [row] = write("dead")
    OutboxItem.objects.filter(pk=row.pk).update(
        status=Status.SENDING, attempts=3, leased_until=timezone.now() - timedelta(seconds=1)
    )
    assert outbox.outbox_sweep() == {}
    row.refresh_from_db()
    assert (row.status, row.leased_until) == (Status.FAILED, None)
    assert "Gave up" in row.last_error
    assert echo.done == []


def test_staff_retry_puts_failed_rows_back_and_progress_counts_by_topic(
    db, echo, django_capture_on_commit_callbacks
):
    write("refuse", "ok", topic="t1")
    write("other", topic="t2")
    OutboxItem.objects.filter(recipient="refuse").update(status=Status.FAILED, attempts=8)
    OutboxItem.objects.filter(recipient="ok").update(status=Status.SENT)
    progress = outbox.outbox_progress(kind=KIND, topic="t1")
    assert progress == {"total": 2, "sent": 1, "failed": 1, "pending": 0}
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.outbox_retry_failed(kind=KIND, topic="t1") == 1
    row = OutboxItem.objects.get(recipient="refuse")
    # Tried again at once (eager): refused again, so backing off with a fresh count.
    assert (row.status, row.attempts) == (Status.PENDING, 1)
    assert outbox.outbox_progress(kind=KIND, topic="t2")["pending"] == 1
