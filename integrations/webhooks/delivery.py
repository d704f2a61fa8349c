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
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Case, F, When
from django.urls import reverse
from django.utils import timezone

from integrations.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookMessage
from integrations.webhooks import net, sealing, signing
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


# The kinds that active endpoints want, read at most every
# WEBHOOK_ENDPOINTS_CACHE_SECONDS per process (and again at once after this
# process saves or deletes an endpoint): most decisions are made with no
# endpoint wanting them, and then cost no query and no transaction here.
_kinds_cache: list = []  # [(expires, frozenset of kinds)]


def subscribed_kinds() -> frozenset[str]:
    now = time.monotonic()
    if _kinds_cache and _kinds_cache[0][0] > now:
        return _kinds_cache[0][1]
    kinds: set[str] = set()
    for wanted in WebhookEndpoint.objects.filter(is_active=True).values_list("events", flat=True):
        kinds.update(wanted)
    _kinds_cache[:] = [(now + settings.WEBHOOK_ENDPOINTS_CACHE_SECONDS, frozenset(kinds))]
    return _kinds_cache[0][1]


def endpoints_changed(**_kwargs) -> None:
    """post_save/post_delete of an endpoint: read the kinds again next time."""
    _kinds_cache.clear()


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


fan_out.wants = lambda kind: kind in subscribed_kinds()


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

# The outcomes of POSTs are recorded together, in one transaction, every this
# many deliveries: a commit per delivery cost more than the POST.
# A crash between a POST and its record sends it again, with the same
# webhook-id (Standard Webhooks is at-least-once: receivers deduplicate on it).
RECORD_EVERY = 250
# Deliveries one task claims (the outbox's claim for this kind).
CLAIM = 1000


@dataclass(frozen=True)
class Job:
    """What a POST needs of a delivery (read as plain values: a batch is hundreds)."""

    pk: int
    endpoint: WebhookEndpoint
    webhook_id: str
    body: str
    # The endpoint's secrets, unsealed once per batch; a SealError instead
    # when they cannot be (the attempt fails with it, and is retried).
    secrets: tuple[str, ...] | sealing.SealError


@dataclass
class Outcome:
    item: OutboxItem
    delivery: Job | None
    answer: net.Answer | None  # None: not tried (no delivery, or the endpoint is off)
    at: datetime


def deliver_batch(batch: outbox.Batch) -> None:
    """The outbox handler of kind "webhook": the claimed deliveries in groups
    of RECORD_EVERY, each group POSTed by WEBHOOK_PARALLEL_POSTS threads (a
    kept-alive connection each; no database work in them) while this thread
    records the group before it."""
    ids = [item.payload.get("delivery") for item in batch.items]
    rows = WebhookDelivery.objects.filter(pk__in=ids).values_list(
        "pk", "endpoint_id", "message__uuid", "message__body"
    )
    rows = list(rows)
    # One instance per endpoint: its state (turned off, failing since) is shared.
    endpoints = WebhookEndpoint.objects.in_bulk({row[1] for row in rows})
    unsealed = {pk: _unsealed(endpoint) for pk, endpoint in endpoints.items()}
    deliveries = {
        pk: Job(pk, endpoints[endpoint_id], f"msg_{message_uuid.hex}", body, unsealed[endpoint_id])
        for pk, endpoint_id, message_uuid, body in rows
    }
    local, clients = threading.local(), []

    def post(delivery: Job) -> tuple[net.Answer, datetime]:
        if not hasattr(local, "client"):
            local.client = net.Client()
            clients.append(local.client)
        return _post(local.client, delivery), timezone.now()

    def launch(group: list) -> list:
        """[(item, delivery, future or None)]: an endpoint turned off is not contacted."""
        return [
            (item, delivery, pool.submit(post, delivery) if _live(delivery) else None)
            for item, delivery in group
        ]

    in_flight: list[list] = []
    with ThreadPoolExecutor(max_workers=settings.WEBHOOK_PARALLEL_POSTS) as pool:
        try:
            group: list = []
            for item in batch:
                group.append((item, deliveries.get(item.payload.get("delivery"))))
                if len(group) >= RECORD_EVERY:
                    in_flight.append(launch(group))
                    group = []
                    if len(in_flight) > 1:
                        _record_group(batch, in_flight.pop(0))
            if group:
                in_flight.append(launch(group))
        finally:
            try:
                # What was POSTed is recorded, whatever stopped the batch.
                while in_flight:
                    _record_group(batch, in_flight.pop(0))
            finally:
                for client in clients:
                    client.close()


def _live(delivery: Job | None) -> bool:
    return delivery is not None and delivery.endpoint.is_active


def _record_group(batch: outbox.Batch, launched: list) -> None:
    """Wait for a group's POSTs and record them; a POST that raised is left
    unrecorded, for the outbox to release (the error goes on up)."""
    pending = {future for _item, _delivery, future in launched if future is not None}
    while pending:  # a slow receiver: the rows stay ours meanwhile
        _done, pending = wait(pending, timeout=5)
        batch.keep_alive()
    now, outcomes, error = timezone.now(), [], None
    for item, delivery, future in launched:
        if future is None:
            outcomes.append(Outcome(item, delivery, None, now))
            continue
        try:
            answer, at = future.result()
        except Exception as exc:  # a bug, not an answer: the others are still recorded
            error = error or exc
            continue
        outcomes.append(Outcome(item, delivery, answer, at))
    _record(batch, outcomes)
    batch.keep_alive()
    if error is not None:
        raise error


def _unsealed(endpoint: WebhookEndpoint) -> tuple[str, ...] | sealing.SealError:
    try:
        return tuple(endpoint.secrets())
    except sealing.SealError as exc:
        log.error("webhook endpoint %s: its secret cannot be unsealed: %s", endpoint.uuid, exc)
        return exc


def _post(client: net.Client, delivery: Job) -> net.Answer:
    endpoint = delivery.endpoint
    if isinstance(delivery.secrets, sealing.SealError):
        # Nothing is sent unsigned: the attempt fails, and is retried (a key
        # restored meanwhile lets the retry through).
        return net.Answer(None, "", f"Not sent: {delivery.secrets}", 0)
    headers = signing.headers(
        webhook_id=delivery.webhook_id,
        timestamp=int(time.time()),
        body=delivery.body,
        secrets=list(delivery.secrets),
    )
    return client.post(endpoint.url, delivery.body.encode(), headers)


def _record(batch: outbox.Batch, outcomes: list[Outcome]) -> None:
    """Attempts, deliveries, outbox rows and the endpoints' failure streaks for
    a group of outcomes, in one transaction."""
    if not outcomes:
        return
    Status = WebhookDelivery.Status
    with transaction.atomic():
        WebhookAttempt.objects.bulk_create(
            [
                WebhookAttempt(
                    delivery_id=o.delivery.pk,
                    at=o.at,
                    duration_ms=o.answer.duration_ms,
                    status_code=o.answer.status,
                    response_excerpt=o.answer.excerpt,
                    error=o.answer.error,
                )
                for o in outcomes
                if o.answer is not None
            ]
        )
        succeeded = [o for o in outcomes if o.answer is not None and o.answer.ok]
        if succeeded:
            WebhookDelivery.objects.filter(pk__in=[o.delivery.pk for o in succeeded]).update(
                status=Status.SUCCEEDED, attempts=F("attempts") + 1, finished_at=timezone.now()
            )
            batch.sent_many([o.item for o in succeeded])
        retried, ended, finals = [], [], set()
        for o in outcomes:
            if o.answer is None:
                reason = "The endpoint is disabled." if o.delivery else "The delivery is gone."
                batch.failed(o.item, reason, retry=False)
                if o.delivery is not None:
                    ended.append(o.delivery.pk)
            elif not o.answer.ok:
                if batch.failed(o.item, o.answer.error or f"HTTP {o.answer.status}"):
                    ended.append(o.delivery.pk)
                    finals.add(o.item.pk)
                else:
                    retried.append(o.delivery.pk)
        tried = {o.delivery.pk for o in outcomes if o.answer is not None}
        if retried:
            WebhookDelivery.objects.filter(pk__in=retried).update(attempts=F("attempts") + 1)
        if ended:
            WebhookDelivery.objects.filter(pk__in=ended).update(
                status=Status.FAILED,
                attempts=F("attempts") + Case(When(pk__in=tried, then=1), default=0),
                finished_at=timezone.now(),
            )
        _streaks([o for o in outcomes if o.answer is not None], finals)


def _streaks(outcomes: list[Outcome], finals: set[int]) -> None:
    """Each endpoint's failure streak, in the order of its outcomes: a success
    ends it, a failure starts it; a delivery failing for good at the end of a
    long enough streak disables the endpoint."""
    by_endpoint: dict[int, list[Outcome]] = {}
    for o in outcomes:
        by_endpoint.setdefault(o.delivery.endpoint.pk, []).append(o)
    limit = timedelta(hours=settings.WEBHOOK_DISABLE_AFTER_HOURS)
    for group in by_endpoint.values():
        endpoint = group[0].delivery.endpoint
        since, disable = endpoint.failing_since, False
        for o in group:
            if o.answer.ok:
                since = None
                continue
            since = since or o.at
            if o.item.pk in finals and o.at - since >= limit:
                disable = True
        if since != endpoint.failing_since:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=since)
            endpoint.failing_since = since
        if disable:
            endpoint_disable(endpoint=endpoint)


def endpoint_disable(*, endpoint: WebhookEndpoint) -> bool:
    """Every try has failed for WEBHOOK_DISABLE_AFTER_HOURS and a delivery
    has failed for good: disable the endpoint and email staff, in the caller's
    transaction, once (checked again under the endpoint's row lock)."""
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if not locked.is_active:
        return False
    locked.is_active = False
    locked.disabled_at = timezone.now()
    locked.save(update_fields=["is_active", "disabled_at"])
    endpoint.is_active = False
    _staff_tell_disabled(locked)
    log.warning("webhook endpoint %s disabled: failing since %s", locked.uuid, locked.failing_since)
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
