"""The policy-update fan-out under real conditions: real Celery workers
(prefork, two pool processes) drain the outbox over SMTP into a sink that this
test runs (aiosmtpd on loopback), and every recipient is counted.

1. Thousands of recipients: each gets exactly one message.
2. The worker is SIGKILLed mid fan-out (with its pool children): a new worker
   and the sweep finish the job; nothing is lost, and the only duplicates are
   the messages in flight at the kill.
3. The broker is down when the version is published: the publish still
   succeeds (the rows are in PostgreSQL), and once Redis is back the sweep
   sends every message exactly once.

Needs REDIS_URL and PostgreSQL (the workers reach the test database); the
broker-outage test also needs the redis-server binary, to run a Redis of its
own that it can stop. CI has all three."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from aiosmtpd.controller import Controller
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from kombu import pools

from consents.models import NewsletterSignup
from policies import services
from policies.demo import seed_policies
from policies.models import Policy, PolicyVersion
from policies.notices import NOTICE, notices_of, topic
from portal import outbox
from portal.celery import app as celery_app
from portal.tasks import outbox_sweep
from tests.worker_support import (
    NEEDS_POSTGRESQL,
    NEEDS_REDIS,
    Worker,
    default_queue,
    new_queue_name,
    start_worker,
)

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason=NEEDS_REDIS),
    pytest.mark.skipif(connection.vendor != "postgresql", reason=NEEDS_POSTGRESQL),
]

RECIPIENTS = 2000
SENDERS = settings.OUTBOX_PARALLEL_SENDERS
# The workers run as in production (DEBUG off: templates are compiled once, not
# for every message), with a key of their own: nothing here checks their links.
PRODUCTION = {"DEBUG": "0", "SECRET_KEY": "fanout-test-" + secrets.token_urlsafe(48)}
# In the kill test: a lease short enough that the killed worker's rows come back
# within the test, yet many times what one batch takes to send (a tenth of a
# second to half a second here), so that no live batch outlives its lease.
LEASE_SECONDS = 5
# How long the workers get to finish: generous, because CI may share the machine
# with other work; every wait ends as soon as its condition holds.
SETTLE = 120
KILL_BATCH = 50
HEADER = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.MULTILINE | re.IGNORECASE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """aiosmtpd handler: accepts everything, records (Message-ID, recipients).

    hold(): from then on each message is recorded (the server has it) but its
    "250" reply waits until release(), so every sender stops mid-batch, its
    rows leased, at the moment the test chooses."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple[str, ...]]] = []
        self.held: list[tuple[str, ...]] = []
        self._holding = threading.Event()
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        headers = envelope.content.split(b"\r\n\r\n", 1)[0]
        match = HEADER.search(headers)
        recipients = tuple(envelope.rcpt_tos)
        with self._lock:
            self.messages.append((match.group(1).decode() if match else "", recipients))
            if self._holding.is_set():
                self.held.append(recipients)
        while self._holding.is_set():
            await asyncio.sleep(0.01)  # other connections are served meanwhile
        return "250 Message accepted for delivery"

    def hold(self) -> None:
        self._holding.set()

    def release(self) -> None:
        self._holding.clear()

    def __len__(self) -> int:
        return len(self.messages)

    def per_recipient(self) -> Counter:
        return Counter(to for _id, tos in self.messages for to in tos)

    def message_ids(self) -> Counter:
        return Counter(message_id for message_id, _tos in self.messages)


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Recorder, str]]:
    # aiosmtpd logs every SMTP command at INFO: thousands of lines that slow the sink.
    smtp_log = logging.getLogger("mail.log")
    level = smtp_log.level
    smtp_log.setLevel(logging.WARNING)
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield recorder, f"smtp://127.0.0.1:{controller.port}"
    finally:
        controller.stop()
        smtp_log.setLevel(level)


@pytest.fixture
def queue() -> Iterator[str]:
    with default_queue(new_queue_name()) as name:
        yield name


@pytest.fixture
def workers(queue, smtp_sink, tmp_path) -> Iterator:
    """start(**env) starts a prefork worker (concurrency 2) sending to the sink."""
    started: list[Worker] = []
    _recorder, email_url = smtp_sink

    def start(*, redis_url: str | None = None, **env: str) -> Worker:
        worker = start_worker(
            queue=queue,
            log=tmp_path / f"worker-{len(started)}.log",
            redis_url=redis_url,
            pool="prefork",
            concurrency=2,
            env={**PRODUCTION, "EMAIL_URL": email_url, **env},
        )
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


def make_recipients(count: int) -> list[str]:
    """Three quarters customers with a verified primary address, one quarter
    confirmed newsletter subscribers; some in Portuguese. In bulk: seconds, not minutes."""
    User = get_user_model()
    customers = count * 3 // 4
    users = User.objects.bulk_create(
        [
            User(
                email=f"customer{i}@example.com",
                password="!",  # unusable: nobody logs in here
                language="pt-br" if i % 5 == 0 else "en",
            )
            for i in range(customers)
        ],
        batch_size=1000,
    )
    EmailAddress.objects.bulk_create(
        [EmailAddress(user=u, email=u.email, verified=True, primary=True) for u in users],
        batch_size=1000,
    )
    now = timezone.now()
    NewsletterSignup.objects.bulk_create(
        [
            NewsletterSignup(
                email=f"reader{i}@example.com",
                language="pt-br" if i % 5 == 0 else "en",
                status=NewsletterSignup.Status.CONFIRMED,
                confirmed_at=now,
            )
            for i in range(count - customers)
        ],
        batch_size=1000,
    )
    return [u.email for u in users] + [f"reader{i}@example.com" for i in range(count - customers)]


def material_draft() -> PolicyVersion:
    """The demo privacy policy: v1 published, a material v2 draft taking effect
    at the earliest date allowed."""
    assert seed_policies() == "created"
    draft = Policy.objects.get(slug="privacy").versions.get(status=PolicyVersion.Status.DRAFT)
    assert draft.material
    assert draft.effective_date == services.earliest_effective_date(material=True)
    return draft


def unsent(version: PolicyVersion) -> int:
    return notices_of(version).exclude(status="sent").count()


def wait_until_all_sent(version: PolicyVersion, workers: list[Worker], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if unsent(version) == 0:
            return
        time.sleep(0.1)
    statuses = Counter(notices_of(version).values_list("status", flat=True))
    logs = "\n".join(w.log()[-4000:] for w in workers)
    raise AssertionError(f"not all sent after {timeout}s: {dict(statuses)}\n{logs}")


def expected_message_ids(version: PolicyVersion) -> set[str]:
    return {n.message_id for n in notices_of(version).only("uuid")}


def forget_unacked(queue: str) -> None:
    """A SIGKILLed worker leaves its unacknowledged task messages in Redis, to be
    restored after the visibility timeout by whichever worker then polls this
    Redis database: drop this test's, so that none reappears in ten minutes."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for tag, raw in client.hscan_iter("unacked"):
            _message, _exchange, routing_key = json.loads(raw)
            if routing_key == queue:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    finally:
        client.close()


def test_every_recipient_gets_exactly_one_message(smtp_sink, workers):
    sink, _url = smtp_sink
    emails = make_recipients(RECIPIENTS)
    draft = material_draft()
    worker = workers()

    started = time.monotonic()
    published = services.policy_version_publish(version=draft)
    assert published.notifications == RECIPIENTS
    wait_until_all_sent(published.version, [worker], timeout=SETTLE)
    elapsed = time.monotonic() - started

    assert len(sink) == RECIPIENTS, f"{len(sink)} messages for {RECIPIENTS} recipients"
    assert sink.per_recipient() == Counter(emails)
    assert set(sink.message_ids()) == expected_message_ids(published.version)
    rows = notices_of(published.version)
    assert set(rows.values_list("status", "attempts", "leased_until", "next_attempt_at")) == {
        ("sent", 1, None, None)
    }
    print(f"{RECIPIENTS} messages in {elapsed:.1f}s: {RECIPIENTS / elapsed:.0f}/s")


def test_a_worker_killed_mid_fanout_loses_nothing(smtp_sink, workers, queue):
    sink, _url = smtp_sink
    emails = make_recipients(RECIPIENTS)
    draft = material_draft()
    lease = {
        "OUTBOX_LEASE_SECONDS": str(LEASE_SECONDS),
        "OUTBOX_BATCH": str(KILL_BATCH),
    }
    first = workers(**lease)

    try:
        published = services.policy_version_publish(version=draft)
        version = published.version
        deadline = time.monotonic() + SETTLE
        while len(sink) < 300 and time.monotonic() < deadline:
            time.sleep(0.005)
        # Some hundreds are out: catch every sender with a message on the wire
        # (the server has it, the reply is held), then SIGKILL the worker, the
        # main process and its pool children together.
        sink.hold()
        while len(sink.held) < SENDERS and time.monotonic() < deadline:
            time.sleep(0.005)
        first.kill()
        sink.release()
        received_at_kill = len(sink)
        held = {to for recipients in sink.held for to in recipients}

        assert len(held) == SENDERS, f"{len(held)} senders caught mid-batch\n{first.log()}"
        assert 300 <= received_at_kill < RECIPIENTS, "the kill did not land mid fan-out"
        in_flight = set(
            notices_of(version).filter(status="sending").values_list("recipient", flat=True)
        )
        # The held messages and the rest of their batches: leased to a dead worker.
        assert held <= in_flight
        assert len(in_flight) <= KILL_BATCH * SENDERS
        assert unsent(version) > 0

        second = workers(**lease)
        # The killed worker's leases run out; then the periodic sweep (its task,
        # queued here as beat would) hands their version to the senders again.
        latest = (
            notices_of(version)
            .filter(status="sending")
            .order_by("-leased_until")
            .values_list("leased_until", flat=True)
            .first()
        )
        if latest is not None:
            time.sleep(max(0.0, (latest - timezone.now()).total_seconds()) + 0.2)
        outbox_sweep.delay()
        wait_until_all_sent(version, [first, second], timeout=SETTLE)
    finally:
        forget_unacked(queue)

    per_recipient = sink.per_recipient()
    assert set(per_recipient) == set(emails), "every recipient got at least one message"
    duplicated = {email for email, count in per_recipient.items() if count > 1}
    # The server had the held messages, but the killed worker never heard so:
    # exactly those are sent twice, and nothing else.
    assert duplicated == held
    assert duplicated <= in_flight, "only messages in flight at the kill are sent twice"
    assert len(sink.message_ids()) == RECIPIENTS
    assert set(sink.message_ids()) == expected_message_ids(version)
    assert len(sink) - RECIPIENTS <= KILL_BATCH * SENDERS
    assert set(notices_of(version).values_list("status", flat=True)) == {"sent"}
    print(
        f"killed after {received_at_kill} messages with {len(in_flight)} rows leased; "
        f"{len(sink) - RECIPIENTS} duplicate(s)"
    )


class RedisServer:
    """A Redis of this test's own, on a free port, that it can stop and start."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def _use_broker(url: str) -> None:
    """Point this process's Celery app at another broker. Its connection and
    producer pools (kombu's, process-wide) were made for the old URL: drop them
    all, as kombu does after a fork, so that the next publish connects anew."""
    celery_app.conf.broker_url = url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    pools.reset()


@pytest.fixture
def private_redis(queue, tmp_path) -> Iterator[RedisServer]:
    """A private Redis, and this process's Celery app publishing to it (the
    workers get it as REDIS_URL). Depends on `queue`, so that the app points
    back at the shared Redis before that queue is cleaned up there."""
    if not shutil.which("redis-server"):
        pytest.skip("needs the redis-server binary, to run and stop a Redis of its own")
    server = RedisServer(tmp_path)
    server.start()
    previous = celery_app.conf.broker_url
    _use_broker(server.url)
    try:
        yield server
    finally:
        _use_broker(previous)
        server.stop()


def test_a_broker_outage_during_publishing_delays_but_loses_nothing(
    smtp_sink, workers, private_redis, caplog
):
    sink, _url = smtp_sink
    emails = make_recipients(RECIPIENTS)
    draft = material_draft()
    private_redis.stop()

    published = services.policy_version_publish(version=draft)

    # Committed: the version and every row are in PostgreSQL, though the
    # dispatch after the commit could not reach the broker (robust: logged).
    version = published.version
    assert published.notifications == RECIPIENTS
    version.refresh_from_db()
    assert version.status == PolicyVersion.Status.PUBLISHED
    assert unsent(version) == RECIPIENTS
    assert any("on_commit" in r.getMessage() for r in caplog.records), caplog.text

    private_redis.start()  # empty: the dispatch never reached it
    worker = workers(redis_url=private_redis.url)
    time.sleep(0.5)
    assert len(sink) == 0, "nothing is sent before the sweep"
    # Rows younger than the grace period may still have their own task on the
    # way, so the sweep leaves them; time passes (test set-up) and it takes them.
    assert outbox.outbox_due() == {}
    notices_of(version).update(
        created_at=timezone.now() - settings.OUTBOX_GRACE - timedelta(seconds=1)
    )
    assert outbox.outbox_due() == {(NOTICE, topic(version.pk)): RECIPIENTS}
    outbox_sweep.delay()  # what beat queues every minute
    wait_until_all_sent(version, [worker], timeout=SETTLE)

    assert len(sink) == RECIPIENTS
    assert sink.per_recipient() == Counter(emails)
    assert set(sink.message_ids()) == expected_message_ids(version)
