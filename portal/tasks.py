from __future__ import annotations

from celery import shared_task

from portal import mail


@shared_task(bind=True, max_retries=5, acks_late=True)
def deliver_outbound_email(self, email_id: int) -> bool:
    try:
        return mail.outbound_email_send(email_id=email_id)
    except Exception as exc:
        # The row is already released with its error; retrying here only makes
        # delivery faster than waiting for the sweep.
        raise self.retry(exc=exc, countdown=min(30 * 2**self.request.retries, 600)) from exc


@shared_task
def sweep_outbound_email() -> int:
    """Re-queue rows whose task was lost (crash, broker outage) or whose backoff is over."""
    ids = mail.outbound_email_due_ids()
    for email_id in ids:
        deliver_outbound_email.delay(email_id)
    return len(ids)


@shared_task
def expire_outbound_email_bodies() -> int:
    """Unsent emails lose their bodies, and their links, once those have expired."""
    return mail.outbound_email_bodies_expire()
