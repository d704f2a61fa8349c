"""A real Celery worker process delivers the outbox: nothing here runs a task
in the test process. Needs REDIS_URL (a broker) and PostgreSQL (a test
database that a second process can reach); CI has both."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from celery.signals import task_prerun
from django.conf import settings
from django.utils import timezone

from portal.celery import app as celery_app
from portal.mail import EMAIL
from portal.models import OutboxItem
from portal.tasks import outbox_send, outbox_sweep
from tests.worker_support import (
    NEEDS_REDIS,
    Worker,
    default_queue,
    new_queue_name,
    skip_unless_postgresql,
)
from tests.worker_support import start_worker as start_worker_process

DELIVER = outbox_send.name
SWEEP = outbox_sweep.name
RESET = "account/email/password_reset_key"

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason=NEEDS_REDIS)


def test_celery_reads_the_reliability_settings_from_django():
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == 600
    # A task still running must never be handed to a second worker.
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_url == (settings.REDIS_URL or "memory://")


def _queued(queue: str) -> list[dict]:
    """The task messages waiting in the queue's Redis list, oldest first."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return [json.loads(raw)["headers"] for raw in reversed(client.lrange(queue, 0, -1))]
    finally:
        client.close()


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue of this test's own, that this process publishes to and the worker consumes."""
    skip_unless_postgresql()
    with default_queue(new_queue_name()) as name:
        # Verify instead of assuming: the router sends an unrouted task there.
        route = celery_app.amqp.router.route({}, DELIVER, (EMAIL, RESET), {})
        assert route["queue"].name == name
        yield name


@pytest.fixture
def tasks_run_here() -> Iterator[list[str]]:
    """Every task this process executes (eagerly or otherwise): must stay empty."""
    ran: list[str] = []

    def record(sender=None, **kwargs):
        ran.append(sender.name)

    task_prerun.connect(record, weak=False)
    yield ran
    task_prerun.disconnect(record)


@pytest.fixture
def start_worker(queue, tmp_path) -> Iterator:
    workers: list[Worker] = []

    def start() -> Worker:
        worker = start_worker_process(
            queue=queue, log=tmp_path / f"worker-{len(workers)}.log", pool="solo", concurrency=1
        )
        workers.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()


def _wait_until_sent(email: OutboxItem, worker: Worker, timeout: float = 30) -> OutboxItem:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        email.refresh_from_db()
        if email.status == OutboxItem.Status.SENT:
            return email
        time.sleep(0.2)
    raise AssertionError(
        f"row still {email.status!r} after {timeout}s; worker log:\n{worker.log()}"
    )


@needs_redis
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_password_reset_email_is_delivered_by_a_real_worker(
    client, customer, queue, start_worker, tasks_run_here
):
    assert celery_app.conf.task_always_eager is False

    response = client.post("/accounts/password/reset/", {"email": customer.email})

    assert response.status_code == 302
    email = OutboxItem.objects.get(kind=EMAIL, recipient=customer.email)
    # The request has returned and committed, and nothing has run the task yet.
    assert email.status == OutboxItem.Status.PENDING
    assert email.attempts == 0
    messages = _queued(queue)
    # The task names the kind and the topic, and claims the row when it runs.
    assert [(m["task"], m["argsrepr"]) for m in messages] == [(DELIVER, repr((EMAIL, RESET)))]
    task_id = messages[0]["id"]

    worker = start_worker()
    email = _wait_until_sent(email, worker)

    assert email.attempts == 1
    assert email.sent_at is not None
    assert (email.leased_until, email.next_attempt_at, email.payload) == (None, None, {})
    log = worker.wait_for(rf"Task {re.escape(DELIVER)}\[{task_id}\] succeeded").string
    assert f"Task {DELIVER}[{task_id}] received" in log
    assert email.message_id in log  # the console backend printed this very message
    assert tasks_run_here == []
    assert _queued(queue) == []


@needs_redis
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_sweep_requeues_an_email_whose_task_was_lost(queue, start_worker, tasks_run_here):
    lost = OutboxItem.objects.create(
        kind=EMAIL,
        recipient="lost@example.com",
        title="Lost",
        payload={"body_text": "Its task never reached the broker."},
        created_at=timezone.now() - settings.OUTBOX_GRACE - timedelta(seconds=1),
    )
    # Written a moment ago: its own task may still be queued, so the sweep leaves it.
    fresh = OutboxItem.objects.create(
        kind=EMAIL,
        recipient="fresh@example.com",
        title="Fresh",
        payload={"body_text": "Its task is on its way."},
    )
    OutboxItem.objects.create(
        kind=EMAIL,
        recipient="done@example.com",
        title="Done",
        status=OutboxItem.Status.SENT,
        attempts=1,
        sent_at=timezone.now(),
    )
    assert _queued(queue) == []

    outbox_sweep.delay()

    assert [m["task"] for m in _queued(queue)] == [SWEEP]
    worker = start_worker()
    lost = _wait_until_sent(lost, worker)

    assert lost.attempts == 1
    log = worker.wait_for(rf"Task {re.escape(DELIVER)}\[[0-9a-f-]+\] succeeded").string
    # The sweep found exactly the one unsent row, and queued its delivery.
    assert re.search(rf"Task {re.escape(SWEEP)}\[[0-9a-f-]+\] succeeded in [0-9.]+s: 1\b", log)
    assert lost.message_id in log
    assert "done@example.com" not in log
    assert "fresh@example.com" not in log
    fresh.refresh_from_db()
    assert (fresh.status, fresh.attempts) == (OutboxItem.Status.PENDING, 0)
    assert tasks_run_here == []


@needs_redis
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_with_the_reliability_settings(start_worker, queue):
    worker = start_worker()

    replies = celery_app.control.inspect(destination=[worker.nodename], timeout=10).conf(
        with_defaults=True
    )

    assert replies, f"no reply from {worker.nodename}:\n{worker.log()}"
    conf = replies[worker.nodename]
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["broker_transport_options"]["visibility_timeout"] == 600
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["task_default_queue"] == queue
    assert conf["task_always_eager"] is False
