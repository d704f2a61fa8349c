"""Rights requests reach the demo's connected systems, end to end, with no
fake: the shop is integrations/examples/consent_sync.py's receiver (in a
thread on loopback, as `make run` starts it, configured from the
demo-shop.json that integrations.demo_shop writes), answering its tasks
through the API of a live server; the CRM is manual, recorded by staff on the
task's admin page. Webhooks are delivered as each change commits (tasks run
eagerly, in this process)."""

from __future__ import annotations

import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from consents.demo import seed_inventory
from integrations import demo_shop, systems
from integrations.examples import consent_sync
from integrations.models import SystemTask, WebhookDelivery
from integrations.models import TaskStatus as Task
from portal import outbox
from portal.models import OutboxItem
from rights import exports
from rights import services as rights_services
from rights.models import AuditAction, AuditEntry, DataExport, Kind, RightsRequest
from rights.models import Status as RequestStatus
from tests.integrations.conftest import grant
from tests.integrations.test_consent_sync import PATH, Running
from tests.integrations.test_webhooks import send_all

pytestmark = pytest.mark.usefixtures("flushed_after")


@pytest.fixture
def demo(live_server, settings, staff, tmp_path):
    """What `make run` sets up: seed_demo's shop endpoint and key (secrets in
    VAR_DIR/demo-shop.json), the Shop and CRM systems, and the receiver
    started from that file."""
    purposes = {p.key: p for p in seed_inventory()}
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]  # DEBUG is off in tests
    settings.VAR_DIR = tmp_path
    settings.SITE_URL = live_server.url
    # The receiver listens first (on a free port), then the demo is seeded for it.
    sync = consent_sync.ConsentSync(None, consent_sync.Copy(tmp_path / "unused.json"), [])
    running = Running(sync)
    settings.DEMO_SHOP_WEBHOOK_URL = running.url
    endpoint, key = demo_shop.seed()
    shop, crm = systems.seed_demo_systems(shop_endpoint=endpoint, shop_key=key)
    args = consent_sync.options(["--config", str(demo_shop.config_path())])
    assert (args.listen, args.path) == (f"127.0.0.1:{running.server.server_port}", PATH)
    sync.portal = consent_sync.Portal(args.portal, args.key)
    sync.copy = consent_sync.Copy(Path(args.state))
    sync.secrets = args.secrets
    running.purposes, running.key, running.shop, running.crm = purposes, key, shop, crm
    yield running
    running.close()


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def tasks_of(request) -> dict[str, SystemTask]:
    return {t.system.key: t for t in SystemTask.objects.filter(request=request)}


def record_in_admin(staff_client, task, done: str, data: str = ""):
    """Staff open the CRM's task page (it shows the addresses to look up) and
    send the "Record what was done" form."""
    url = f"/admin/integrations/systemtask/{task.pk}/change/"
    page = staff_client.get(url)
    assert page.status_code == 200
    response = staff_client.post(url, {"action": "record", "done": done, "data": data})
    assert response.status_code == 302, response.content
    return page


def test_an_erasure_reaches_the_shop_by_webhook_and_waits_for_the_crm_in_the_admin(
    demo, customer, staff, staff_client, capsys
):
    sync, subject = demo.sync, str(customer.subject_id)
    grant(customer, demo.purposes["newsletter"])
    assert sync.copy.allowed(subject, "newsletter")  # the shop holds the person

    # The customer closes their account; after the grace period the beat task erases.
    request = rights_services.account_close(user=customer)
    assert tasks_of(request) == {}  # cancellable until then: no system is asked yet
    assert rights_services.erasures_due(now=request.erase_after + timedelta(minutes=1)) == 1

    # The shop: forgot the person, and completed its task through the real API.
    assert subject not in sync.copy.people
    tasks = tasks_of(request)
    shop, crm = tasks["shop"], tasks["crm"]
    assert shop.status == Task.COMPLETED and shop.completed_by_key == demo.key
    assert shop.done.startswith("Erased: this system's copy of the person's consents")
    assert str(shop.uuid) in sync.copy.tasks_done
    out = capsys.readouterr().out
    assert f"rights_request.assigned  subject {subject[:8]}: erasure task" in out
    # The request stays open: the CRM has not confirmed.
    request.refresh_from_db()
    assert request.status == RequestStatus.IN_PROGRESS and request.erased_at is not None
    assert crm.status == Task.OPEN and crm.person_emails == "customer@example.com"
    # What staff see on the request's page in the admin.
    page = staff_client.get(f"/admin/rights/rightsrequest/{request.pk}/change/")
    assert b"Still waiting for: CRM." in page.content

    page = record_in_admin(staff_client, crm, done="Deleted the contact and 2 tickets.")
    assert b"customer@example.com" in page.content

    request.refresh_from_db()
    crm.refresh_from_db()
    assert request.status == RequestStatus.DONE and request.closed_by == staff
    assert crm.status == Task.COMPLETED and crm.completed_by == staff
    assert crm.person_emails == ""
    recorded = AuditEntry.objects.get(
        action=AuditAction.SYSTEM_TASK_COMPLETE, request_uuid=request.uuid
    )
    assert recorded.actor == staff and recorded.details["system"] == "crm"
    assert AuditEntry.objects.filter(
        action=AuditAction.REQUEST_COMPLETE, request_uuid=request.uuid, actor=staff
    ).exists()


def test_a_copy_holds_what_the_shop_answered_under_connected_systems(demo, customer, staff_client):
    sync, subject = demo.sync, str(customer.subject_id)
    grant(customer, demo.purposes["newsletter"])

    export = exports.export_request(user=customer)
    request = RightsRequest.objects.get(pk=export.request_id)
    shop, crm = tasks_of(request)["shop"], tasks_of(request)["crm"]
    shop.refresh_from_db()
    # The shop answered at once, with what it holds, through the API.
    assert shop.status == Task.COMPLETED and shop.completed_by_key == demo.key
    assert shop.data["consents"]["newsletter"]["allowed"] is True
    assert subject in sync.copy.people  # a copy forgets nothing

    record_in_admin(staff_client, crm, done="Exported the contact.", data='{"tickets": []}')
    # Every system answered: the ZIP is (re)built with their answers, and completes the request.
    while outbox.outbox_send(kind=exports.EXPORT_KIND):
        pass
    request.refresh_from_db()
    assert request.status == RequestStatus.DONE
    fresh = DataExport.objects.filter(request=request).order_by("-pk").first()
    data = json.loads(zipfile.ZipFile(exports.export_path(fresh)).read("data.json"))
    answers = {row["system"]: row for row in data["sections"]["connected_systems"]}
    assert answers["Shop"]["status"] == "completed"
    assert answers["Shop"]["data"]["consents"]["newsletter"]["allowed"] is True
    assert answers["Shop"]["done"] == "Sent the 1 consent record this system holds."
    assert answers["CRM"]["done"] == "Exported the contact."


def _objection_the_shop_missed(demo, customer):
    """An objection to the newsletter granted before, whose assignment the
    shop's receiver refused (every signature, meanwhile): its task stays open,
    the webhook to be retried. The receiver takes signatures again after."""
    sync = demo.sync
    grant(customer, demo.purposes["newsletter"])
    secrets, sync.secrets = sync.secrets, []
    request = rights_services.request_create(
        user=customer, kind=Kind.OBJECTION, purposes=[demo.purposes["newsletter"]]
    )
    shop = tasks_of(request)["shop"]
    assert shop.status == Task.OPEN  # the webhook was answered 401: retried later
    sync.secrets = secrets
    return request, shop


def test_an_objection_whose_webhook_was_refused_is_caught_up_from_the_task_list(
    demo, customer, staff
):
    sync, subject = demo.sync, str(customer.subject_id)
    request, shop = _objection_the_shop_missed(demo, customer)

    # At its next sync the script reads its open tasks from GET /api/v1/rights/tasks.
    sync.sync()
    shop.refresh_from_db()
    assert shop.status == Task.COMPLETED and shop.acknowledged_at is not None
    assert shop.done == "Processing stopped in this system for: newsletter."
    assert sync.copy.allowed(subject, "newsletter") is False
    request.refresh_from_db()
    # An objection waits for staff's answer (and the CRM, if it holds the purpose's data).
    assert request.is_open


def test_a_cancelled_objection_is_told_to_the_shop_which_drops_its_task(demo, customer, capsys):
    """The shop missed the assignment (its webhook refused); the person
    cancels: the shop hears of it by a verified webhook at once, and the
    assignment retried afterwards is not carried out, nor is the task list's."""
    sync, subject = demo.sync, str(customer.subject_id)
    request, shop = _objection_the_shop_missed(demo, customer)
    capsys.readouterr()

    rights_services.request_cancel(request=request, user=customer)

    # Delivered as the cancellation committed, its signature checked by the script.
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "rights_request.cancelled" in line]
    assert len(lines) == 1, out
    assert f"subject {subject[:8]}: objection task {str(shop.uuid)[:8]}" in lines[0]
    assert lines[0].endswith("called off (cancelled), dropped")
    assert str(shop.uuid) in sync.copy.tasks_cancelled
    told = WebhookDelivery.objects.get(message__event_type="rights_request.cancelled")
    assert told.status == "succeeded" and told.endpoint_id == demo.shop.webhook_endpoint_id

    # The refused assignment comes again (its retry): the script does nothing with it.
    assigned = WebhookDelivery.objects.get(message__event_type="rights_request.assigned")
    assert assigned.status == "pending"
    OutboxItem.objects.filter(kind="webhook", status="pending").update(
        next_attempt_at=timezone.now()
    )
    send_all()
    assigned.refresh_from_db()
    assert assigned.status == "succeeded"
    out = capsys.readouterr().out
    assert f"objection task {str(shop.uuid)[:8]}: called off in the portal, not done" in out
    assert "Processing stopped" not in out  # the task was not carried out
    # Nor does the next sync's task list bring it back.
    sync.sync()
    assert "objection task" not in capsys.readouterr().out
    shop.refresh_from_db()
    assert shop.status == Task.CANCELLED and shop.acknowledged_at is None
    assert str(shop.uuid) not in sync.copy.tasks_done
