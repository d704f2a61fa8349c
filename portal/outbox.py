"""The one outbox that every kind of outgoing work uses (shared/DESIGN.md principle 2).

A change that causes outgoing work writes OutboxItem rows in its own
transaction (outbox_queue, outbox_queue_many) and asks for a task once that
transaction commits. The task claims a batch of rows of one kind (SELECT ...
FOR UPDATE SKIP LOCKED, under a lease renewed while the batch runs) and hands
it to the handler registered for that kind, which does the work and marks each
row sent, or failed for that row alone (backoff, then failed for good after
OUTBOX_MAX_ATTEMPTS). A periodic sweep hands back to a worker the rows whose
task was lost (a crash, a broker outage) or whose lease ran out (a killed
worker). So a crash or an outage delays work and never drops it, and a retry
never does it twice.

Adding a kind of work is one handler and one register() call in its app's
AppConfig.ready():

    outbox.register("webhook", send=webhooks.deliver_batch)

where deliver_batch(batch) iterates the batch and calls batch.sent(item) or
batch.failed(item, error) for each row, and raises DeliveryInterrupted (or lets
any exception out) when the whole batch must wait, say for a server that went
away: the rows not yet done are then released for a later try.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from portal.models import OutboxItem

log = logging.getLogger(__name__)

BULK_SIZE = 1000
Status = OutboxItem.Status
UNSENT = [Status.PENDING, Status.SENDING]


class DeliveryInterrupted(Exception):
    """The whole batch must wait (the mail server went away); its rows not yet
    done were released for a later try."""


@dataclass(frozen=True)
class Handler:
    kind: str
    # Does the work for a claimed batch; see the module's docstring.
    send: Callable[[Batch], None]
    # The payload holds what nobody may read back once the work is done (an
    # email's body with its password-reset link): cleared when sent, and for an
    # unsent row after OUTBOX_UNSENT_KEPT.
    private_payload: bool = False
    # A fan-out (thousands of rows written at once) starts OUTBOX_PARALLEL_SENDERS
    # batch tasks for its topic; other kinds start one.
    fan_out: bool = False
    # Rows one task claims at a time, when not OUTBOX_BATCH: a kind whose row is
    # long work (a copy of someone's data) claims one, so that other workers
    # take the next ones instead of waiting behind it.
    claim: int | None = None
    # Seconds a task of this kind may run, when its work can outlast
    # CELERY_TASK_TIME_LIMIT (a copy of a long history). Longer than the
    # broker's visibility timeout is safe: a task the broker hands out again
    # meanwhile finds the row leased (and its lease renewed), and claims nothing.
    time_limit: int | None = None
    # A kind with a retry schedule of its own (webhooks retry for about a day):
    # a callable returning the delay after each failed attempt, read each time
    # (so that it may come from a setting); its rows get one attempt more than
    # it has delays. Other kinds back off 30 s doubling, for OUTBOX_MAX_ATTEMPTS.
    retry_delays: Callable[[], Sequence[timedelta]] | None = None

    @property
    def max_attempts(self) -> int:
        if self.retry_delays is None:
            return settings.OUTBOX_MAX_ATTEMPTS
        return len(self.retry_delays()) + 1

    def backoff(self, attempts: int) -> timedelta:
        """The wait after `attempts` tries (1 after the first) that failed."""
        if self.retry_delays is None:
            return backoff(attempts)
        delays = self.retry_delays()
        return delays[max(min(attempts, len(delays)), 1) - 1]

    @property
    def task_options(self) -> dict:
        """Options for apply_async of this kind's tasks."""
        if self.time_limit is None:
            return {}
        return {"time_limit": self.time_limit, "soft_time_limit": max(self.time_limit - 60, 1)}

    @property
    def senders(self) -> int:
        return settings.OUTBOX_PARALLEL_SENDERS if self.fan_out else 1


_handlers: dict[str, Handler] = {}


def register(
    kind: str,
    *,
    send: Callable[[Batch], None],
    private_payload: bool = False,
    fan_out: bool = False,
    claim: int | None = None,
    time_limit: int | None = None,
    retry_delays: Callable[[], Sequence[timedelta]] | None = None,
) -> Handler:
    """Declare what is done with rows of `kind` (from an AppConfig.ready()).
    Registering a kind again replaces its handler."""
    handler = Handler(
        kind=kind,
        send=send,
        private_payload=private_payload,
        fan_out=fan_out,
        claim=claim,
        time_limit=time_limit,
        retry_delays=retry_delays,
    )
    _handlers[kind] = handler
    return handler


def handler_for(kind: str) -> Handler:
    try:
        return _handlers[kind]
    except KeyError:
        raise LookupError(f"No outbox handler is registered for the kind {kind!r}.") from None


# Writing rows ---------------------------------------------------------------------


def outbox_queue(
    *,
    kind: str,
    topic: str = "",
    recipient: str = "",
    title: str = "",
    payload: dict | None = None,
    subject_id=None,
    dedupe_key: str = "",
) -> OutboxItem:
    """Write one row in the caller's transaction; its task is queued once that
    transaction commits."""
    handler_for(kind)  # an unknown kind is a programming error: fail here, not in the worker
    item = OutboxItem.objects.create(
        kind=kind,
        topic=topic,
        recipient=recipient,
        title=title,
        payload=payload or {},
        subject_id=subject_id,
        dedupe_key=dedupe_key,
    )
    outbox_dispatch_on_commit(kind=kind, topic=topic)
    return item


def outbox_queue_many(*, kind: str, topic: str, items: Iterable[OutboxItem]) -> int:
    """Write many rows of one kind and topic in bulk (a fan-out), in the caller's
    transaction. A row whose dedupe key is already there is skipped, so writing
    the same work again adds nothing. Returns how many rows were added."""
    handler_for(kind)
    rows = OutboxItem.objects.filter(kind=kind, topic=topic)
    before = rows.count()
    batch: list[OutboxItem] = []
    for item in items:
        item.kind, item.topic = kind, topic
        batch.append(item)
        if len(batch) >= BULK_SIZE:
            OutboxItem.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    if batch:
        OutboxItem.objects.bulk_create(batch, ignore_conflicts=True)
    added = rows.count() - before
    if added:
        outbox_dispatch_on_commit(kind=kind, topic=topic)
    return added


def outbox_dispatch_on_commit(*, kind: str, topic: str = "") -> None:
    """Start the kind's senders once the transaction commits: only then can a
    worker see the rows. robust: a broker outage must not turn a committed
    change into an error page; the rows are safe and the sweep starts them."""
    from portal.tasks import outbox_send

    def dispatch() -> None:
        handler = handler_for(kind)
        for _ in range(handler.senders):
            outbox_send.apply_async((kind, topic), **handler.task_options)

    transaction.on_commit(dispatch, robust=True)


# Claiming -------------------------------------------------------------------------


def _attempts_left() -> Q:
    """Rows that have not used up their kind's attempts (OUTBOX_MAX_ATTEMPTS,
    or one more than a kind's own retry schedule has delays)."""
    own = {kind: h.max_attempts for kind, h in _handlers.items() if h.retry_delays is not None}
    left = Q(attempts__lt=settings.OUTBOX_MAX_ATTEMPTS)
    if own:
        left &= ~Q(kind__in=list(own))
    for kind, attempts in own.items():
        left |= Q(kind=kind, attempts__lt=attempts)
    return left


def _claimable(now: datetime) -> Q:
    """Pending rows whose backoff is over, and rows whose lease ran out (their
    worker died). A row that used up its attempts is not claimed again: the
    sweep marks it failed."""
    return (
        (Q(status=Status.PENDING) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)))
        | Q(status=Status.SENDING, leased_until__lte=now)
    ) & _attempts_left()


def _fresh(now: datetime) -> Q:
    """Rows written a moment ago and never tried: their own task is on its way."""
    return Q(status=Status.PENDING, attempts=0, created_at__gte=now - settings.OUTBOX_GRACE)


def outbox_claimable(*, kind: str, topic: str = "", overdue_only: bool = False) -> QuerySet:
    now = timezone.now()
    rows = OutboxItem.objects.filter(_claimable(now), kind=kind)
    if topic:
        rows = rows.filter(topic=topic)
    if overdue_only:
        rows = rows.exclude(_fresh(now))
    return rows


def outbox_claim(
    *, kind: str, topic: str = "", limit: int, overdue_only: bool = False
) -> list[OutboxItem]:
    """Lease up to `limit` rows to this worker. Rows another worker holds are
    skipped, not waited for (SELECT ... FOR UPDATE SKIP LOCKED). overdue_only
    leaves fresh rows to the task queued when they were written (the sweep's
    senders use it)."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            outbox_claimable(kind=kind, topic=topic, overdue_only=overdue_only)
            .order_by("id")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        OutboxItem.objects.filter(id__in=ids).update(
            status=Status.SENDING,
            leased_until=now + settings.OUTBOX_LEASE,
            next_attempt_at=None,
            attempts=F("attempts") + 1,
        )
    return list(OutboxItem.objects.filter(id__in=ids).order_by("id"))


# Working through a batch ------------------------------------------------------------


def backoff(attempts: int) -> timedelta:
    """30 s after the first failure, doubling with each attempt."""
    return timedelta(seconds=30 * 2**attempts)


class Batch:
    """Claimed rows, handed to a handler. Iterating renews the lease every third
    of it, so that a long batch keeps its rows, and leaves out a row whose
    lease ran out and that another worker claimed: that one is never done twice."""

    def __init__(self, items: list[OutboxItem], handler: Handler) -> None:
        self.handler = handler
        self.items = items
        self.sent_count = 0
        self._waiting = list(items)
        self._unresolved = {item.pk: item for item in items}
        self._renewed_at = time.monotonic()

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[OutboxItem]:
        while self._waiting:
            self.keep_alive()
            if not self._waiting:
                return
            yield self._waiting.pop(0)

    def keep_alive(self) -> None:
        """Renew the lease once a third of it has passed. Iterating calls it
        between rows; a handler whose one row is long work calls it as it goes."""
        if time.monotonic() - self._renewed_at > settings.OUTBOX_LEASE.total_seconds() / 3:
            self._renew_lease()

    def _renew_lease(self) -> None:
        """Extend the lease of the rows still ours, compare-and-set on the lease
        they were claimed with: the rows of one claim share it. The row being
        worked on is among them (it is unresolved, no longer waiting)."""
        mine = list(self._unresolved.values())
        if not mine:
            return
        old = mine[0].leased_until
        new = timezone.now() + settings.OUTBOX_LEASE
        ids = [item.pk for item in mine]
        ours = OutboxItem.objects.filter(pk__in=ids, status=Status.SENDING, leased_until=old)
        if ours.update(leased_until=new) < len(ids):
            kept = set(
                OutboxItem.objects.filter(pk__in=ids, leased_until=new).values_list("pk", flat=True)
            )
            for item in mine:
                if item.pk not in kept:
                    self._unresolved.pop(item.pk)
            self._waiting = [item for item in self._waiting if item.pk in kept]
        for item in self._unresolved.values():
            item.leased_until = new
        self._renewed_at = time.monotonic()

    def holds(self, item: OutboxItem) -> bool:
        """Whether this row is still ours: neither done nor taken back by
        another worker after its lease ran out."""
        return item.pk in self._unresolved

    def _ours(self, item: OutboxItem) -> QuerySet:
        return OutboxItem.objects.filter(
            pk=item.pk, status=Status.SENDING, leased_until=item.leased_until
        )

    def sent(self, item: OutboxItem) -> None:
        """The work for this row is done (the mail server accepted the message)."""
        self._unresolved.pop(item.pk, None)
        cleared = {"payload": {}} if self.handler.private_payload else {}
        self._ours(item).update(
            status=Status.SENT,
            sent_at=timezone.now(),
            leased_until=None,
            next_attempt_at=None,
            last_error="",
            **cleared,
        )
        self.sent_count += 1

    def sent_many(self, items: list[OutboxItem]) -> None:
        """Several rows done, in one UPDATE per lease they hold (one, unless
        they came from different claims): a handler that records its outcomes
        in groups (webhooks) spares a statement per row."""
        by_lease: dict[datetime | None, list[int]] = {}
        for item in items:
            self._unresolved.pop(item.pk, None)
            by_lease.setdefault(item.leased_until, []).append(item.pk)
        cleared = {"payload": {}} if self.handler.private_payload else {}
        for lease, ids in by_lease.items():
            OutboxItem.objects.filter(pk__in=ids, status=Status.SENDING, leased_until=lease).update(
                status=Status.SENT,
                sent_at=timezone.now(),
                leased_until=None,
                next_attempt_at=None,
                last_error="",
                **cleared,
            )
        self.sent_count += len(items)

    def failed(self, item: OutboxItem, error: str | BaseException, *, retry: bool = True) -> bool:
        """This row alone could not be done (a refused address): try it again
        after a backoff, and after the last attempt (or at once, retry=False:
        trying again cannot help), fail with the error kept. Returns whether
        the row failed for good."""
        self._unresolved.pop(item.pk, None)
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        log.warning("outbox item %s (%s) not done: %s", item.pk, item.kind, error)
        attempts = item.attempts if retry else self.handler.max_attempts
        return _release(self._ours(item), self.handler, attempts=attempts, error=error)

    def final(self, item: OutboxItem) -> bool:
        """Whether a failure of this row now would be its last."""
        return item.attempts >= self.handler.max_attempts

    def release_unresolved(self, error: str) -> None:
        """Give back every row not yet done, for a later try."""
        for item in list(self._unresolved.values()):
            _release(self._ours(item), self.handler, attempts=item.attempts, error=error)
        self._unresolved.clear()
        self._waiting = []


def _release(rows: QuerySet, handler: Handler, *, attempts: int, error: str) -> bool:
    final = attempts >= handler.max_attempts
    rows.update(
        status=Status.FAILED if final else Status.PENDING,
        leased_until=None,
        next_attempt_at=None if final else timezone.now() + handler.backoff(attempts),
        last_error=error[:2000],
    )
    return final


def outbox_send(
    *, kind: str, topic: str = "", limit: int | None = None, overdue_only: bool = False
) -> int:
    """Claim a batch of `kind` (of one topic, if given) and let its handler do
    it. Returns how many rows were done. Raises DeliveryInterrupted, with the
    rows not yet done released, when the handler could not go on."""
    handler = handler_for(kind)
    items = outbox_claim(
        kind=kind,
        topic=topic,
        limit=limit or handler.claim or settings.OUTBOX_BATCH,
        overdue_only=overdue_only,
    )
    if not items:
        return 0
    batch = Batch(items, handler)
    try:
        handler.send(batch)
    except Exception as exc:
        batch.release_unresolved(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, DeliveryInterrupted):
            raise
        raise DeliveryInterrupted(str(exc)) from exc
    # A handler that returned without a word about some rows: they are tried again.
    batch.release_unresolved("The handler left the row undone.")
    return batch.sent_count


# The sweep --------------------------------------------------------------------------


def outbox_give_up(*, now: datetime | None = None) -> int:
    """Rows that used up their attempts without an answer (their worker died
    each time) end failed, with a reason staff can read."""
    now = now or timezone.now()
    return (
        OutboxItem.objects.filter(status__in=UNSENT)
        .exclude(_attempts_left())
        .filter(Q(leased_until__lte=now) | Q(status=Status.PENDING))
        .update(
            status=Status.FAILED,
            leased_until=None,
            next_attempt_at=None,
            last_error="Gave up: every attempt ended without an answer.",
        )
    )


def outbox_due() -> dict[tuple[str, str], int]:
    """How many rows per (kind, topic) a lost task or a dead worker left behind,
    or whose backoff is over, on topics that no sender is working on now (a
    live lease on the topic means a sender will take them). Fresh rows are
    left to the task queued when they were written."""
    now = timezone.now()
    busy = set(
        OutboxItem.objects.filter(status=Status.SENDING, leased_until__gt=now)
        .values_list("kind", "topic")
        .distinct()
    )
    due = (
        OutboxItem.objects.filter(_claimable(now))
        .exclude(_fresh(now))
        .values_list("kind", "topic")
        .annotate(n=Count("pk"))
        .order_by("kind", "topic")
    )
    return {(kind, topic): n for kind, topic, n in due if (kind, topic) not in busy}


def outbox_sweep() -> dict[tuple[str, str], int]:
    """Give up on exhausted rows, then start senders for what is due; returns
    what was due."""
    from portal.tasks import outbox_send as outbox_send_task

    outbox_give_up()
    due = outbox_due()
    for kind, topic in due:
        handler = _handlers.get(kind)
        if handler is None:
            log.error("outbox rows of kind %r wait, and no handler is registered for it", kind)
            continue
        # A one-off row has a task of its own: a fresh one is left to it. A
        # fan-out's rows share their topic's senders: when the topic is due,
        # those senders were lost, and every row of it is taken.
        for _ in range(handler.senders):
            outbox_send_task.apply_async(
                (kind, topic),
                {"overdue_only": not handler.fan_out},
                **handler.task_options,
            )
    return due


# Staff, privacy, progress -------------------------------------------------------------


def outbox_retry_failed(*, kind: str, topic: str) -> int:
    """Staff retry: a topic's failed rows go back to pending with a fresh count.
    Returns how many; their senders start once the transaction commits."""
    with transaction.atomic():
        count = OutboxItem.objects.filter(kind=kind, topic=topic, status=Status.FAILED).update(
            status=Status.PENDING, attempts=0, leased_until=None, next_attempt_at=None
        )
        if count:
            outbox_dispatch_on_commit(kind=kind, topic=topic)
    return count


def outbox_private_payloads_expire(*, now: datetime | None = None) -> int:
    """Clear the private payloads of rows that never went out once
    OUTBOX_UNSENT_KEPT has passed (an email's links have expired by then):
    failed rows, and pending rows, which are given up as failed, since an email
    whose links no longer work is not worth sending. A row a worker holds right
    now is left to the next run. Returns how many rows were cleared."""
    now = now or timezone.now()
    private = [kind for kind, handler in _handlers.items() if handler.private_payload]
    expired = (
        OutboxItem.objects.filter(
            kind__in=private, created_at__lt=now - settings.OUTBOX_UNSENT_KEPT
        )
        .exclude(status=Status.SENT)
        .exclude(payload={})
    )
    with transaction.atomic():
        abandoned = expired.filter(
            Q(status=Status.PENDING) | Q(status=Status.SENDING, leased_until__lte=now)
        ).update(
            status=Status.FAILED,
            leased_until=None,
            next_attempt_at=None,
            last_error="Abandoned unsent: its links had expired.",
            payload={},
        )
        failed = expired.filter(status=Status.FAILED).update(payload={})
    return abandoned + failed


def outbox_progress(*, kind: str, topic: str) -> dict[str, int]:
    """Rows of a topic by status (pending counts those being sent), and in all."""
    counts = dict(
        OutboxItem.objects.filter(kind=kind, topic=topic)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    return {
        "total": sum(counts.values()),
        "sent": counts.get(Status.SENT, 0),
        "failed": counts.get(Status.FAILED, 0),
        "pending": counts.get(Status.PENDING, 0) + counts.get(Status.SENDING, 0),
    }


def outbox_pending(*, kind: str, topic: str = "") -> bool:
    return outbox_claimable(kind=kind, topic=topic).exists()
