"""A real Celery worker process builds the copy: the request only writes it
down. Needs REDIS_URL (a broker) and PostgreSQL (a test database that a second
process can reach); CI has both."""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.urls import reverse

from consents.demo import seed_inventory
from portal.celery import app as celery_app
from portal.models import OutboxItem
from portal.tasks import outbox_send
from rights import exports
from rights.models import DataExport, ExportStatus, Status
from tests.rights.conftest import grant
from tests.worker_support import (
    NEEDS_REDIS,
    Worker,
    default_queue,
    new_queue_name,
    skip_unless_postgresql,
    start_worker,
)

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason=NEEDS_REDIS)


@pytest.fixture
def worker(tmp_path) -> Iterator[Worker]:
    skip_unless_postgresql()
    with default_queue(new_queue_name()) as name:
        route = celery_app.amqp.router.route({}, outbox_send.name, (exports.EXPORT_KIND,), {})
        assert route["queue"].name == name
        process = start_worker(queue=name, log=tmp_path / "worker.log")
        try:
            yield process
        finally:
            process.stop()


def _wait_for(export: DataExport, worker: Worker, timeout: float = 60) -> DataExport:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        export.refresh_from_db()
        if export.status not in (ExportStatus.QUEUED, ExportStatus.BUILDING):
            return export
        time.sleep(0.2)
    raise AssertionError(f"copy still {export.status!r}; worker log:\n{worker.log()}")


@needs_redis
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_builds_the_copy_asked_for_in_the_panel(client, customer, worker):
    assert celery_app.conf.task_always_eager is False
    purposes = {p.key: p for p in seed_inventory()}
    grant(customer, purposes["newsletter"])
    client.force_login(customer)

    response = client.post(reverse("me_export_create"))

    assert response.status_code == 302
    export = DataExport.objects.get(subject_id=customer.subject_id)
    export = _wait_for(export, worker)
    assert export.status == ExportStatus.READY, export.last_error
    assert export.request.status == Status.DONE
    # The copy is ready a moment before its outbox row is marked done.
    item = OutboxItem.objects.get(kind=exports.EXPORT_KIND)
    deadline = time.monotonic() + 30
    while item.status != OutboxItem.Status.SENT and time.monotonic() < deadline:
        time.sleep(0.2)
        item.refresh_from_db()
    assert (item.status, item.attempts) == (OutboxItem.Status.SENT, 1)
    with zipfile.ZipFile(exports.export_path(export)) as archive:
        data = json.loads(archive.read("data.json"))
    assert data["subjectId"] == str(customer.subject_id)
    assert len(data["sections"]["consent_history"]) == 1
    assert OutboxItem.objects.filter(topic="emails/rights_export_ready").exists()
    assert "succeeded" in worker.log()
