"""The outbox's tasks (portal/outbox.py): they take a kind and a topic, never
rows, and claim what they send, so that running one twice does nothing twice."""

from __future__ import annotations

from celery import shared_task

from portal import outbox


@shared_task(bind=True, max_retries=None)
def outbox_send(self, kind: str, topic: str = "", overdue_only: bool = False) -> int:
    """Send one batch of a kind (and topic), then queue the next while rows are
    waiting: a few of these running at once are a fan-out's senders."""
    try:
        sent = outbox.outbox_send(kind=kind, topic=topic, overdue_only=overdue_only)
    except outbox.DeliveryInterrupted as exc:
        # The rows are released with their error and back off; trying again here
        # only makes delivery faster than waiting for the sweep. Kept under the
        # broker's visibility timeout (600 s), or Redis would hand the delayed
        # task out a second time.
        countdown = min(15 * 2 ** min(self.request.retries, 5), 300)
        options = outbox.handler_for(kind).task_options
        raise self.retry(exc=exc, countdown=countdown, **options) from exc
    if sent and outbox.outbox_claimable(kind=kind, topic=topic, overdue_only=overdue_only).exists():
        outbox_send.apply_async(
            (kind, topic),
            {"overdue_only": overdue_only},
            **outbox.handler_for(kind).task_options,
        )
    return sent


@shared_task
def outbox_sweep() -> int:
    """Start senders for rows whose task was lost (a crash, a broker outage),
    whose worker died (lease over) or whose backoff is over; give up on rows
    that used up their attempts. Returns how many rows were due."""
    return sum(outbox.outbox_sweep().values())


@shared_task
def outbox_expire_private_payloads() -> int:
    """Unsent emails lose their bodies, and their links, once those have expired."""
    return outbox.outbox_private_payloads_expire()
