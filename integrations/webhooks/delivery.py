"""From a domain event to a signed POST, through the one outbox.

- fan_out (subscribed to portal.events): in the transaction of the change,
  one WebhookMessage and, per active endpoint that wants the event, one
  WebhookDelivery and its outbox row (kind "webhook", topic per endpoint, so
  a slow receiver holds up only its own deliveries). A rollback sends nothing.
- deliver_batch (the outbox handler): POST each claimed delivery, record the
  attempt, and mark the row sent (2xx) or failed; the outbox retries a failed
  one after WEBHOOK_RETRY_SECONDS (about a day in all), with a fresh
  timestamp and the same webhook-id and body.
- An endpoint whose every try has failed for WEBHOOK_DISABLE_AFTER_HOURS is
  disabled when one of its deliveries fails for good, and every active staff
  member is emailed (through the outbox too).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from integrations.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookMessage
from integrations.webhooks import net, signing
from portal import events, mail, outbox
from portal.models import OutboxItem

log = logging.getLogger(__name__)

WEBHOOK = "webhook"
DISABLED_EMAIL = "integrations/webhook_disabled"


def retry_delays() -> list[timedelta]:
    return [timedelta(seconds=s) for s in settings.WEBHOOK_RETRY_SECONDS]


def topic(endpoint: WebhookEndpoint) -> str:
    return f"webhook_endpoint:{endpoint.pk}"


# Writing ----------------------------------------------------------------------------


def fan_out(event: events.Event) -> WebhookMessage | None:
    """The events subscriber: a message and its deliveries, in the caller's
    transaction. The endpoints are few: read them all, filter here."""
    wanted = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(is_active=True)
        if event.kind in endpoint.events
    ]
    if not wanted:
        return None
    body = json.dumps(
        {"type": event.kind, "timestamp": event.at.isoformat(), "data": event.payload},
        separators=(",", ":"),
        sort_keys=True,
    )
    message = WebhookMessage.objects.create(event_type=event.kind, body=body, created_at=event.at)
    for endpoint in wanted:
        delivery_queue(message=message, endpoint=endpoint)
    return message


def delivery_queue(
    *, message: WebhookMessage, endpoint: WebhookEndpoint, replay_of: WebhookDelivery | None = None
) -> WebhookDelivery:
    """One delivery and its outbox row, in the caller's transaction."""
    delivery = WebhookDelivery.objects.create(
        message=message, endpoint=endpoint, replay_of=replay_of
    )
    outbox.outbox_queue(
        kind=WEBHOOK,
        topic=topic(endpoint),
        title=message.event_type,
        payload={"delivery": delivery.pk},
    )
    return delivery


# Sending ----------------------------------------------------------------------------


def deliver_batch(batch: outbox.Batch) -> None:
    """The outbox handler of kind "webhook"."""
    ids = [item.payload.get("delivery") for item in batch.items]
    deliveries = WebhookDelivery.objects.select_related("message", "endpoint").in_bulk(ids)
    client = net.Client()
    try:
        for item in batch:
            delivery = deliveries.get(item.payload.get("delivery"))
            if delivery is None:  # deleted (retention) before it could go
                batch.failed(item, "The delivery no longer exists.", retry=False)
                continue
            _deliver(batch, item, delivery, client)
    finally:
        client.close()


def _deliver(
    batch: outbox.Batch, item: OutboxItem, delivery: WebhookDelivery, client: net.Client
) -> None:
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        with transaction.atomic():
            _finish(delivery, WebhookDelivery.Status.FAILED)
            batch.failed(item, "The endpoint is disabled.", retry=False)
        return
    message = delivery.message
    timestamp = int(time.time())
    headers = signing.headers(
        webhook_id=message.webhook_id,
        timestamp=timestamp,
        body=message.body,
        secrets=endpoint.secrets(),
    )
    answer = client.post(endpoint.url, message.body.encode(), headers)
    now = timezone.now()
    error = answer.error or ("" if answer.ok else f"HTTP {answer.status}")
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            at=now,
            duration_ms=answer.duration_ms,
            status_code=answer.status,
            response_excerpt=answer.excerpt,
            error=answer.error,
        )
        delivery.attempts += 1
        if answer.ok:
            _finish(delivery, WebhookDelivery.Status.SUCCEEDED, now=now)
            batch.sent(item)
            if endpoint.failing_since is not None:
                WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
                endpoint.failing_since = None
            return
        final = batch.failed(item, error)
        if final:
            _finish(delivery, WebhookDelivery.Status.FAILED, now=now)
        else:
            WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=delivery.attempts)
        if endpoint.failing_since is None:
            WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(
                failing_since=now
            )
            endpoint.failing_since = now
        if final:
            endpoint_disable_if_failing(endpoint=endpoint, now=now)


def _finish(delivery: WebhookDelivery, status: str, *, now=None) -> None:
    delivery.status = status
    delivery.finished_at = now or timezone.now()
    delivery.save(update_fields=["status", "attempts", "finished_at"])


def endpoint_disable_if_failing(*, endpoint: WebhookEndpoint, now=None) -> bool:
    """A delivery failed for good: disable the endpoint if every try has been
    failing for WEBHOOK_DISABLE_AFTER_HOURS, and email staff. In the caller's
    transaction; checked again under the endpoint's row lock."""
    now = now or timezone.now()
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    since = locked.failing_since
    limit = timedelta(hours=settings.WEBHOOK_DISABLE_AFTER_HOURS)
    if not locked.is_active or since is None or now - since < limit:
        return False
    locked.is_active = False
    locked.disabled_at = now
    locked.save(update_fields=["is_active", "disabled_at"])
    endpoint.is_active = False
    _staff_tell_disabled(locked)
    log.warning("webhook endpoint %s disabled: failing since %s", locked.uuid, since)
    return True


def _staff_tell_disabled(endpoint: WebhookEndpoint) -> None:
    link = settings.SITE_URL.rstrip("/") + reverse(
        "admin:integrations_webhookendpoint_change", args=[endpoint.pk]
    )
    staff = get_user_model().objects.filter(is_staff=True, is_active=True).order_by("pk")
    for person in staff:
        subject, text, html = mail.render_email(
            DISABLED_EMAIL,
            {
                "endpoint": endpoint,
                "since": endpoint.failing_since.isoformat(timespec="minutes"),
                "link": link,
            },
            language=person.language,
        )
        mail.outbound_email_queue(
            to=person.email,
            subject=subject,
            body_text=text,
            body_html=html,
            template=DISABLED_EMAIL,
        )
