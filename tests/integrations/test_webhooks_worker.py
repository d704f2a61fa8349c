"""A real Celery worker process delivers a webhook: the change commits, its
task goes through Redis, the worker claims the outbox row and POSTs. Needs
REDIS_URL and PostgreSQL (a test database a second process can reach)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import standardwebhooks
from django.conf import settings

from consents.demo import seed_inventory
from consents.models import Decision, Method
from consents.services import consent_record
from integrations.models import WebhookDelivery
from integrations.webhooks import services
from portal import events
from portal.celery import app as celery_app
from tests.worker_support import (
    NEEDS_REDIS,
    default_queue,
    new_queue_name,
    skip_unless_postgresql,
    start_worker,
)

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason=NEEDS_REDIS)


@pytest.fixture
def queue() -> Iterator[str]:
    skip_unless_postgresql()
    with default_queue(new_queue_name()) as name:
        yield name


@needs_redis
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_a_signed_decision(queue, receiver, staff, customer, tmp_path):
    assert celery_app.conf.task_always_eager is False
    purposes = {p.key: p for p in seed_inventory()}
    hook = services.endpoint_create(
        name="CRM", url=receiver.url, events=[events.CONSENT_GRANTED], acting_user=staff
    )
    consent_record(
        subject_id=customer.subject_id,
        purpose=purposes["newsletter"],
        decision=Decision.GRANTED,
        method=Method.PANEL,
    )
    worker = start_worker(
        queue=queue,
        log=tmp_path / "worker.log",
        env={"WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"},
    )
    try:
        deadline = time.monotonic() + 30
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert receiver.received, worker.log()
    finally:
        worker.stop()
    headers, body = receiver.received[0]
    message = standardwebhooks.Webhook(hook.secret).verify(body, headers)
    assert message["type"] == "consent.granted"
    assert message["data"]["subject_id"] == str(customer.subject_id)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert headers["webhook-id"] == delivery.message.webhook_id
