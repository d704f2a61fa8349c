"""Draining the notification outbox. Tasks take ids, claim rows before sending,
and a periodic sweep re-dispatches whatever a lost task left behind."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from consents.services import reconsent_lapse_due
from policies import services


@shared_task
def dispatch_notifications(version_id: int) -> int:
    """Start the senders for one version: a few batch tasks that keep going
    until nothing is left to claim."""
    for _ in range(settings.POLICY_PARALLEL_SENDERS):
        send_notification_batch.delay(version_id)
    return settings.POLICY_PARALLEL_SENDERS


@shared_task(bind=True, max_retries=None)
def send_notification_batch(self, version_id: int) -> int:
    try:
        sent = services.notification_batch_send(version_id=version_id)
    except services.DeliveryInterrupted as exc:
        # The rows are released with their error; try again later, backing off.
        # Kept under the broker's visibility timeout (600 s), or Redis would hand
        # the delayed task out a second time.
        countdown = min(15 * 2 ** min(self.request.retries, 5), 300)
        raise self.retry(exc=exc, countdown=countdown) from exc
    if sent and services.notifications_pending(version_id=version_id):
        send_notification_batch.delay(version_id)
    return sent


@shared_task
def sweep_notifications() -> list[int]:
    """Re-dispatch versions whose rows were left behind by a lost task, a
    killed worker (expired lease) or a broker outage, or whose backoff is over."""
    versions = services.notifications_due_versions()
    for version_id in versions:
        dispatch_notifications.delay(version_id)
    return versions


@shared_task
def expire_changed_grants() -> int:
    """On the effective date of a re-consent request (a policy version that
    changes purposes, or a purpose whose processing widened), the grants not
    given again since lapse (method: expiry)."""
    return reconsent_lapse_due()
