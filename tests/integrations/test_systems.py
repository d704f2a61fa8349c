"""Rights requests reach every connected system: the fan-out per kind, the
signed message to a system's own endpoint, the manual task recorded in the
admin, the API a system answers through, and the request that completes only
when every system has confirmed (its copy holding what each returned)."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from django.db import transaction
from django.utils import timezone, translation

from integrations import systems
from integrations.api import services as api_services
from integrations.models import (
    ApiCall,
    ApiScope,
    ConnectedSystem,
    SystemTask,
    WebhookDelivery,
    WebhookMessage,
)
from integrations.models import TaskStatus as Task
from integrations.webhooks import services as webhook_services
from portal import events, outbox
from rights import exports
from rights import services as rights_services
from rights.models import AuditAction, AuditEntry, DataExport, ExportStatus, Kind, RightsRequest
from rights.models import Status as RequestStatus
from tests.integrations.conftest import bearer
from tests.integrations.test_webhooks import send_all, verified
from tests.integrations.webhook_receiver import Receiver

PROBLEM = "application/problem+json"
TASKS = "/api/v1/rights/tasks"


class World:
    """The demo's two systems: the shop (webhook + its own key) and a manual CRM."""

    def __init__(self, staff, receiver):
        # The shop's endpoint wants only consent events: the assigned task
        # reaches it all the same (it is the system's own endpoint).
        self.hook = webhook_services.endpoint_create(
            name="Shop", url=receiver.url, events=[events.CONSENT_WITHDRAWN], acting_user=staff
        )
        made = api_services.api_key_create(
            name="Shop", scopes=[ApiScope.RIGHTS_HANDLE], acting_user=staff
        )
        self.key, self.secret = made.key, made.secret
        self.shop, self.crm = systems.seed_demo_systems(
            shop_endpoint=self.hook.endpoint, shop_key=self.key
        )
        self.receiver = receiver


@pytest.fixture
def world(staff, receiver, purposes):
    return World(staff, receiver)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def tasks_of(request) -> dict[str, SystemTask]:
    return {t.system.key: t for t in SystemTask.objects.filter(request=request)}


def call(client, method, path, secret, body=None):
    if method == "get":
        return client.get(path, **bearer(secret))
    return client.post(
        path, json.dumps(body or {}), content_type="application/json", **bearer(secret)
    )


def problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    assert response.json()["type"].endswith(f"#problem-{code}")
    return response.json()


def utc_z(moment: datetime) -> str:
    """A time as a system must read it: UTC, to the second, with "Z"."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def messages_of(world, kind: str) -> list[dict]:
    send_all()
    return [m for m in verified(world.hook.secret, world.receiver.received) if m["type"] == kind]


def record_in_admin(staff_client, task, done="Deleted the contact.", data=""):
    url = f"/admin/integrations/systemtask/{task.pk}/change/"
    return staff_client.post(url, {"action": "record", "done": done, "data": data})


# Declaring systems ---------------------------------------------------------------------


def test_staff_declare_a_system_in_the_admin_with_its_audit_row(staff_client, staff, purposes):
    response = staff_client.post(
        "/admin/integrations/connectedsystem/add/",
        {
            "name": "Email platform",
            "key": "email-platform",
            "description": "Sends the newsletter.",
            "contact_email": "ops@example.com",
            "data_categories": [c.pk for c in purposes["newsletter"].data_categories.all()],
            "kinds": ["erasure", "objection"],
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    system = ConnectedSystem.objects.get(key="email-platform")
    assert system.kinds == ["erasure", "objection"] and system.is_manual
    assert {c.key for c in system.data_categories.all()} == {"email", "name"}
    entry = AuditEntry.objects.get(action=AuditAction.SYSTEM_SAVE)
    assert entry.actor_id == staff.pk and entry.target.endswith(":email-platform")
    assert staff_client.get("/admin/integrations/connectedsystem/").status_code == 200
    page = staff_client.get(f"/admin/integrations/connectedsystem/{system.pk}/change/")
    assert page.status_code == 200 and b"email-platform" in page.content


def test_a_systems_key_must_hold_the_rights_scope(staff, purposes):
    key = api_services.api_key_create(
        name="Reader", scopes=[ApiScope.CONSENTS_READ], acting_user=staff
    ).key
    with pytest.raises(systems.SystemsError):
        systems.system_save(name="X", key="x", kinds=["copy"], api_key=key, acting_user=staff)
    with pytest.raises(systems.SystemsError):
        systems.system_save(name="X", key="x", kinds=["copy"], acting_user=None)
    assert not ConnectedSystem.objects.exists()


# Fan-out -------------------------------------------------------------------------------


def test_a_copy_reaches_every_system_and_the_shop_by_signed_webhook(world, customer):
    request = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    tasks = tasks_of(request)
    assert set(tasks) == {"shop", "crm"}
    assert {t.kind for t in tasks.values()} == {"copy"}
    assert tasks["crm"].person_emails == "customer@example.com"
    assert tasks["shop"].person_emails == ""  # a system finds people by subject id
    # Only the shop's own endpoint gets a message, and only this one.
    assert WebhookMessage.objects.filter(event_type=events.RIGHTS_REQUEST_ASSIGNED).count() == 1
    send_all()
    (message,) = [
        m for m in verified(world.hook.secret, world.receiver.received)
        if m["type"] == events.RIGHTS_REQUEST_ASSIGNED
    ]  # fmt: skip
    assert message["data"] == {
        "task": str(tasks["shop"].uuid),
        "request": str(request.uuid),
        "kind": "copy",
        "subject_id": str(customer.subject_id),
        "purposes": [],
        "due_at": utc_z(request.due_at),
        "system": "shop",
    }
    for _headers, body in world.receiver.received:
        assert "customer@example.com" not in body
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"succeeded"}


def test_an_objection_reaches_only_the_systems_holding_its_purposes_data(world, customer, purposes):
    request = rights_services.request_create(
        user=customer, kind=Kind.OBJECTION, purposes=[purposes["recommendations"]]
    )
    # recommendations uses interests, orders, browsing: the shop's, not the CRM's.
    assert set(tasks_of(request)) == {"shop"}
    survey = rights_services.request_create(
        user=customer, kind=Kind.RESTRICTION, purposes=[purposes["product-research"]]
    )
    assert set(tasks_of(survey)) == {"shop", "crm"}  # email is held by both
    assert tasks_of(survey)["crm"].kind == "restriction"


def test_a_system_not_handling_a_kind_or_turned_off_is_not_reached(world, customer, staff):
    systems.system_save(
        system=world.crm, name="CRM", key="crm", kinds=["erasure"], acting_user=staff
    )
    systems.system_save(
        system=world.shop, name="Shop", key="shop", kinds=["copy"], is_active=False,
        webhook_endpoint=world.hook.endpoint, api_key=world.key, acting_user=staff,
    )  # fmt: skip
    request = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    assert tasks_of(request) == {}
    rights_services.request_complete(request=request, acting_user=staff)


def test_an_erasure_reaches_the_systems_only_when_carried_out(world, customer, staff):
    request = rights_services.account_close(user=customer)
    assert tasks_of(request) == {}  # the person may still cancel
    rights_services.erasure_cancel(request=request, user=customer)
    assert tasks_of(request) == {}
    request = rights_services.account_close(user=customer)
    rights_services.erasures_due(now=request.erase_after + timedelta(minutes=1))
    request.refresh_from_db()
    tasks = tasks_of(request)
    assert set(tasks) == {"shop", "crm"}
    # Erased here, the addresses survive only on the manual task, for the person doing it.
    assert request.email == "" and request.erased_at is not None
    assert tasks["crm"].person_emails == "customer@example.com"
    assert request.status == RequestStatus.IN_PROGRESS and request.closed_at is None
    # Carried out once: the hourly task does not pick it up again.
    assert rights_services.erasures_due(now=request.erase_after + timedelta(hours=2)) == 0


# Completing ----------------------------------------------------------------------------


def test_a_request_cannot_complete_while_a_system_is_open(world, customer, staff, purposes):
    request = rights_services.request_create(
        user=customer, kind=Kind.OBJECTION, purposes=[purposes["product-research"]]
    )
    with pytest.raises(rights_services.RightsError) as refused:
        rights_services.request_complete(request=request, acting_user=staff, answer="Done.")
    assert "CRM" in str(refused.value) and "Shop" in str(refused.value)
    tasks = tasks_of(request)
    systems.task_complete(task=tasks["shop"], done="Stopped.", api_key_id=world.key.pk)
    with pytest.raises(rights_services.RightsError, match="CRM"):
        rights_services.request_complete(request=request, acting_user=staff)
    systems.task_complete(task=tasks["crm"], done="Flagged.", acting_user=staff)
    request.refresh_from_db()
    assert request.is_open  # an objection's answer is staff's
    rights_services.request_complete(request=request, acting_user=staff, answer="Stopped.")
    request.refresh_from_db()
    assert request.status == RequestStatus.DONE


def test_a_failed_task_keeps_the_request_waiting_until_done_after_all(world, customer, staff):
    request = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    crm = tasks_of(request)["crm"]
    systems.task_fail(task=crm, reason="CRM down for maintenance.", acting_user=staff)
    with pytest.raises(rights_services.RightsError, match="CRM"):
        rights_services.request_complete(request=request, acting_user=staff)
    systems.task_complete(task=crm, done="Exported by hand.", acting_user=staff)
    crm.refresh_from_db()
    assert crm.status == Task.COMPLETED and crm.person_emails == ""
    rows = AuditEntry.objects.filter(request_uuid=request.uuid).order_by("pk")
    assert list(rows.values_list("action", flat=True)) == [
        AuditAction.SYSTEM_TASK_FAIL,
        AuditAction.SYSTEM_TASK_COMPLETE,
    ]


def test_erasure_waits_for_the_shop_by_api_and_the_crm_by_admin(
    world, customer, staff, client, staff_client
):
    request = rights_services.account_close(user=customer)
    rights_services.erasures_due(now=request.erase_after + timedelta(minutes=1))
    tasks = tasks_of(request)
    shop = tasks["shop"]
    path = f"{TASKS}/{shop.uuid}"
    assert call(client, "post", f"{path}/acknowledge", world.secret).json()["status"] == (
        "acknowledged"
    )
    answer = call(client, "post", f"{path}/complete", world.secret, {"done": "Deleted 3 orders."})
    assert answer.status_code == 200 and answer.json()["status"] == "completed"
    request.refresh_from_db()
    assert request.is_open  # the CRM has not confirmed

    crm = tasks["crm"]
    page = staff_client.get(f"/admin/integrations/systemtask/{crm.pk}/change/")
    assert page.status_code == 200 and b"customer@example.com" in page.content
    response = record_in_admin(staff_client, crm, done="Deleted the contact and 2 tickets.")
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == RequestStatus.DONE and request.closed_by == staff
    crm.refresh_from_db()
    assert crm.completed_by == staff and crm.person_emails == ""
    shop.refresh_from_db()
    assert shop.completed_by_key == world.key
    actions = set(
        AuditEntry.objects.filter(request_uuid=request.uuid).values_list("action", flat=True)
    )
    assert {AuditAction.SYSTEM_TASK_COMPLETE, AuditAction.REQUEST_COMPLETE} <= actions
    # The completion is announced once every system confirmed.
    completed = WebhookMessage.objects.filter(event_type=events.RIGHTS_REQUEST_COMPLETED)
    assert completed.count() == 0  # the shop's endpoint did not choose that event
    assert ApiCall.objects.filter(
        operation="rights_task_complete", status=200, subject_id=request.subject_id
    ).exists()


def test_the_rights_request_page_shows_the_systems_and_who_is_waiting(
    world, customer, staff_client
):
    request = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    page = staff_client.get(f"/admin/rights/rightsrequest/{request.pk}/change/")
    assert page.status_code == 200
    assert b"Still waiting for: CRM, Shop" in page.content
    listing = staff_client.get("/admin/integrations/systemtask/?progress=manual")
    assert listing.status_code == 200 and b"CRM" in listing.content
    overdue = staff_client.get("/admin/integrations/systemtask/?progress=overdue")
    assert overdue.status_code == 200


def test_cancelling_or_refusing_a_request_cancels_its_tasks(world, customer, staff, purposes):
    objection = rights_services.request_create(
        user=customer, kind=Kind.OBJECTION, purposes=[purposes["product-research"]]
    )
    rights_services.request_cancel(request=objection, user=customer)
    assert {t.status for t in tasks_of(objection).values()} == {Task.CANCELLED}
    assert {t.person_emails for t in tasks_of(objection).values()} == {""}
    copy = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    rights_services.request_refuse(request=copy, reason="Identity unclear.", acting_user=staff)
    assert {t.status for t in tasks_of(copy).values()} == {Task.CANCELLED}
    with pytest.raises(systems.TaskClosed):
        systems.task_complete(task=tasks_of(copy)["crm"], done="Late.", acting_user=staff)


def test_a_system_is_told_its_task_is_called_off_and_why(world, customer, staff, purposes):
    warehouse = Receiver()
    other = webhook_services.endpoint_create(
        name="Warehouse", url=warehouse.url, events=list(events.KINDS), acting_user=staff
    ).endpoint
    objection = rights_services.request_create(
        user=customer, kind=Kind.OBJECTION, purposes=[purposes["product-research"]]
    )
    shop = tasks_of(objection)["shop"]
    rights_services.request_cancel(request=objection, user=customer)
    copy = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    refused = rights_services.request_refuse(
        request=copy, reason="Identity unclear.", acting_user=staff
    )

    # Deliveries go out side by side: their order is not the requests' order.
    told = {
        m["data"]["request"]: m["data"] for m in messages_of(world, events.RIGHTS_REQUEST_CANCELLED)
    }
    shop.refresh_from_db()
    assert told[str(objection.uuid)] == {
        "task": str(shop.uuid),
        "request": str(objection.uuid),
        "kind": "objection",
        "subject_id": str(customer.subject_id),
        "reason": "cancelled",
        "cancelled_at": utc_z(shop.cancelled_at),
        "system": "shop",
    }
    assert told[str(copy.uuid)]["reason"] == "refused"
    assert told[str(copy.uuid)]["cancelled_at"] == utc_z(refused.closed_at)
    assert len(told) == 2  # the CRM has no endpoint: its tasks wait, cancelled, in the admin
    # Only to the system's own endpoint: another endpoint that chose every kind hears nothing.
    cancelled = WebhookMessage.objects.filter(event_type=events.RIGHTS_REQUEST_CANCELLED)
    assert not WebhookDelivery.objects.filter(message__in=cancelled, endpoint=other).exists()
    assert WebhookDelivery.objects.filter(message__in=cancelled).count() == 2
    assert warehouse.received  # it did hear of the requests themselves
    assert events.RIGHTS_REQUEST_CANCELLED not in {m["type"] for m in warehouse.bodies()}
    warehouse.close()


def test_a_cancellation_rolled_back_tells_nobody(world, customer):
    request = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    with pytest.raises(RuntimeError), transaction.atomic():
        rights_services.request_cancel(request=request, user=customer)
        assert WebhookMessage.objects.filter(event_type=events.RIGHTS_REQUEST_CANCELLED).exists()
        raise RuntimeError("the change fails after the cancellation")
    assert not WebhookMessage.objects.filter(event_type=events.RIGHTS_REQUEST_CANCELLED).exists()
    assert {t.status for t in tasks_of(request).values()} == {Task.OPEN}


def test_due_at_reads_in_utc_for_a_copy_and_an_erasure_alike(world, customer, client):
    copy = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    # Made in this process, the copy's deadline is in the portal's zone: -03:00.
    assert copy.due_at.utcoffset() != timedelta(0)
    erasure = rights_services.account_close(user=customer)
    rights_services.erasures_due(now=erasure.erase_after + timedelta(minutes=1))
    erasure.refresh_from_db()
    assigned = messages_of(world, events.RIGHTS_REQUEST_ASSIGNED)
    due = {m["data"]["kind"]: m["data"]["due_at"] for m in assigned}
    assert due == {"copy": utc_z(copy.due_at), "erasure": utc_z(erasure.due_at)}
    # The API says the same, to the character.
    listed = call(client, "get", f"{TASKS}?status=all", world.secret).json()["items"]
    assert {item["kind"]: item["due_at"] for item in listed} == due


def test_an_erasure_cancels_the_persons_other_requests_tasks(world, customer):
    copy = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    erasure = rights_services.account_close(user=customer)
    rights_services.erasures_due(now=erasure.erase_after + timedelta(minutes=1))
    assert {t.status for t in tasks_of(copy).values()} == {Task.CANCELLED}
    assert {t.status for t in tasks_of(erasure).values()} == {Task.OPEN}
    (told,) = messages_of(world, events.RIGHTS_REQUEST_CANCELLED)
    assert told["data"]["request"] == str(copy.uuid)
    assert told["data"]["reason"] == "ended_by_erasure"


def test_the_daily_notice_names_the_systems_still_pending(world, customer):
    from portal.mail import EMAIL
    from portal.models import OutboxItem

    rights_services.request_create(user=customer, kind=Kind.ACCESS)
    rights_services.requests_due_notify(now=timezone.now() + timedelta(days=60))
    item = OutboxItem.objects.get(kind=EMAIL, topic="emails/rights_requests_due")
    assert "Waiting for: CRM, Shop" in item.payload["body_text"]
    assert "Waiting for: CRM, Shop" in item.payload["body_html"]


# The API -------------------------------------------------------------------------------


def test_the_api_lists_and_answers_only_the_keys_systems_tasks(world, customer, staff, client):
    request = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    tasks = tasks_of(request)
    listed = call(client, "get", TASKS, world.secret)
    assert listed.status_code == 200
    (item,) = listed.json()["items"]
    assert item["id"] == str(tasks["shop"].uuid)
    assert item["kind"] == "copy" and item["status"] == "open"
    assert item["subject_id"] == str(customer.subject_id)
    assert item["acknowledged_at"] is None and item["done"] == "" and item["failure"] == ""
    assert call(client, "get", f"{TASKS}/{tasks['shop'].uuid}", world.secret).status_code == 200
    # Another system's task is not there for this key.
    crm = f"{TASKS}/{tasks['crm'].uuid}"
    problem(call(client, "get", crm, world.secret), 404, "not-found")
    problem(call(client, "post", f"{crm}/complete", world.secret, {"done": "x"}), 404, "not-found")
    tasks["crm"].refresh_from_db()
    assert tasks["crm"].status == Task.OPEN

    done = call(
        client, "post", f"{TASKS}/{tasks['shop'].uuid}/complete", world.secret,
        {"done": "Exported.", "data": {"orders": [{"id": "A-1"}]}},
    )  # fmt: skip
    assert done.status_code == 200 and done.json()["completed_at"]
    assert call(client, "get", TASKS, world.secret).json()["items"] == []
    assert len(call(client, "get", f"{TASKS}?status=all", world.secret).json()["items"]) == 1
    again = call(
        client, "post", f"{TASKS}/{tasks['shop'].uuid}/complete", world.secret, {"done": "x"}
    )
    problem(again, 409, "task-closed")


def test_the_api_reports_a_failure_and_refuses_a_cancelled_task(world, customer, client):
    request = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    shop = tasks_of(request)["shop"]
    path = f"{TASKS}/{shop.uuid}"
    problem(call(client, "post", f"{path}/fail", world.secret, {"reason": ""}), 422, "validation")
    failed = call(client, "post", f"{path}/fail", world.secret, {"reason": "Customer unknown."})
    assert failed.status_code == 200
    assert failed.json()["status"] == "failed" and failed.json()["failure"] == "Customer unknown."
    rights_services.request_cancel(request=request, user=customer)
    problem(
        call(client, "post", f"{path}/complete", world.secret, {"done": "x"}), 409, "task-closed"
    )
    problem(call(client, "post", f"{path}/acknowledge", world.secret), 409, "task-closed")


def test_the_api_needs_the_scope_and_a_key_linked_to_a_system(world, customer, staff, client):
    reader = api_services.api_key_create(
        name="Reader", scopes=[ApiScope.CONSENTS_READ], acting_user=staff
    ).secret
    problem(call(client, "get", TASKS, reader), 403, "insufficient-scope")
    loose = api_services.api_key_create(
        name="Loose", scopes=[ApiScope.RIGHTS_HANDLE], acting_user=staff
    ).secret
    problem(call(client, "get", TASKS, loose), 403, "not-a-system")
    problem(client.get(TASKS), 401, "unauthenticated")


# The person's copy ---------------------------------------------------------------------


def build_copies() -> int:
    return outbox.outbox_send(kind=exports.EXPORT_KIND)


def test_the_copy_completes_only_with_every_systems_answer_in_it(
    world, customer, staff, client, staff_client
):
    export = exports.export_request(user=customer)
    assert build_copies() == 1
    export.refresh_from_db()
    assert export.status == ExportStatus.READY
    request = export.request
    request.refresh_from_db()
    assert request.is_open  # the systems have not answered

    tasks = tasks_of(request)
    call(
        client, "post", f"{TASKS}/{tasks['shop'].uuid}/complete", world.secret,
        {"done": "Exported 2 orders.", "data": {"orders": [{"id": "A-1", "total": "42.00"}]}},
    )  # fmt: skip
    record_in_admin(
        staff_client, tasks["crm"], done="Exported the contact.",
        data='{"tickets": [{"id": "T-9", "subject": "Refund"}]}',
    )  # fmt: skip
    # The last answer queued a fresh copy; it completes the request when ready.
    fresh = DataExport.objects.filter(request=request).exclude(pk=export.pk).get()
    assert build_copies() == 1
    request.refresh_from_db()
    assert request.status == RequestStatus.DONE
    fresh.refresh_from_db()
    archive = zipfile.ZipFile(exports.export_path(fresh))
    data = json.loads(archive.read("data.json"))
    schema = json.loads(archive.read("schema.json"))
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(data)
    answers = {row["system"]: row for row in data["sections"]["connected_systems"]}
    assert answers["Shop"]["data"] == {"orders": [{"id": "A-1", "total": "42.00"}]}
    assert answers["Shop"]["status"] == "completed"
    assert answers["CRM"]["done"] == "Exported the contact."
    assert answers["CRM"]["data"] == {"tickets": [{"id": "T-9", "subject": "Refund"}]}
    assert b"Exported 2 orders." in archive.read("summary.html")


def test_a_copy_built_before_the_last_answer_is_followed_by_a_fresh_one(
    world, customer, staff, monkeypatch
):
    export = exports.export_request(user=customer)
    tasks = tasks_of(export.request)
    systems.task_complete(task=tasks["crm"], done="Nothing held.", acting_user=staff)
    write_zip = exports.write_zip

    def answered_meanwhile(*args, **kwargs):
        # The shop answers while the worker writes the ZIP: no second copy
        # while this one is on its way ...
        systems.task_complete(task=tasks["shop"], done="Exported.", api_key_id=world.key.pk)
        assert DataExport.objects.filter(subject_id=customer.subject_id).count() == 1
        return write_zip(*args, **kwargs)

    monkeypatch.setattr(exports, "write_zip", answered_meanwhile)
    assert build_copies() == 1
    monkeypatch.setattr(exports, "write_zip", write_zip)
    # ... and this one, ready, does not complete the request: a fresh one is queued.
    request = RightsRequest.objects.get(pk=export.request_id)
    assert request.is_open
    assert DataExport.objects.filter(
        subject_id=customer.subject_id, status=ExportStatus.QUEUED
    ).exists()
    assert build_copies() == 1
    request.refresh_from_db()
    assert request.status == RequestStatus.DONE


def test_erasing_the_person_clears_what_the_systems_returned(world, customer, staff):
    request = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    shop = tasks_of(request)["shop"]
    systems.task_complete(
        task=shop, done="Exported.", data={"orders": ["A-1"]}, api_key_id=world.key.pk
    )
    rights_services.user_erase(user=customer, acting_user=staff)
    shop.refresh_from_db()
    assert shop.data == {} and shop.done == "" and shop.status == Task.COMPLETED


def test_the_task_page_needs_staff_with_permission_and_a_post_to_act(world, customer, client):
    from tests.conftest import make_user

    request = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    crm = tasks_of(request)["crm"]
    url = f"/admin/integrations/systemtask/{crm.pk}/change/"
    assert client.get(url).status_code == 302  # anonymous: to the login page
    assert client.post(url, {"action": "record", "done": "x"}).status_code == 302
    clerk = make_user("clerk@example.com", staff=True)
    clerk.is_superuser = False
    clerk.save(update_fields=["is_superuser"])
    client.force_login(clerk)
    assert client.get(url).status_code == 403
    assert client.post(url, {"action": "record", "done": "x"}).status_code == 403
    crm.refresh_from_db()
    assert crm.status == Task.OPEN
    assert not AuditEntry.objects.filter(action=AuditAction.SYSTEM_TASK_COMPLETE).exists()


def test_recording_needs_a_text_and_a_json_object(world, customer, staff_client):
    request = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    crm = tasks_of(request)["crm"]
    assert record_in_admin(staff_client, crm, done="").status_code == 400
    assert record_in_admin(staff_client, crm, done="x", data="[1, 2]").status_code == 400
    assert record_in_admin(staff_client, crm, done="x", data="{nope").status_code == 400
    crm.refresh_from_db()
    assert crm.status == Task.OPEN
    url = f"/admin/integrations/systemtask/{crm.pk}/change/"
    failed = staff_client.post(url, {"action": "fail", "reason": "CRM offline."})
    assert failed.status_code == 302
    crm.refresh_from_db()
    assert crm.status == Task.FAILED and crm.failure == "CRM offline."


def test_two_systems_confirming_at_once_complete_the_request(
    flushed_after, staff, receiver, customer
):
    """Each confirmation locks the request before its task: the second waits for
    the first to commit, then sees it, and completes the request. Locking only
    the task, each would see the other still open, and the request would wait
    for ever."""
    import threading

    from django.db import connection, connections, transaction

    from consents.demo import seed_inventory

    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL; SQLite locks the whole database")
    seed_inventory()
    world = World(staff, receiver)
    request = rights_services.account_close(user=customer)
    rights_services.erasures_due(now=request.erase_after + timedelta(minutes=1))
    tasks = tasks_of(request)
    first_done, release, errors = threading.Event(), threading.Event(), []

    def first() -> None:
        try:
            with transaction.atomic():
                systems.task_complete(task=tasks["shop"], done="Deleted.", api_key_id=world.key.pk)
                first_done.set()
                release.wait(10)
        except Exception as exc:  # reported by the test below
            errors.append(exc)
        finally:
            connections.close_all()

    def second() -> None:
        try:
            systems.task_complete(task=tasks["crm"], done="Deleted.", acting_user=staff)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    one, two = threading.Thread(target=first), threading.Thread(target=second)
    one.start()
    try:
        assert first_done.wait(10)
        two.start()
        two.join(0.5)
        assert two.is_alive()  # waiting for the request's row
    finally:
        release.set()
        one.join(10)
        two.join(10)
    assert not errors
    request.refresh_from_db()
    assert request.status == RequestStatus.DONE


def test_an_unknown_query_parameter_is_refused_not_ignored(world, client, purposes):
    body = problem(call(client, "get", f"{TASKS}?stat=all", world.secret), 422, "validation")
    assert body["errors"] == [{"loc": ["query", "stat"], "msg": "Unknown parameter"}]
    assert call(client, "get", f"{TASKS}?status=all&limit=5", world.secret).status_code == 200


def test_a_cancelled_task_reads_in_the_feminine_in_pt_br(world, customer):
    request = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    rights_services.request_cancel(request=request, user=customer)
    request.refresh_from_db()
    with translation.override("pt-br"):
        # A task (tarefa) is feminine; the request (pedido) keeps the masculine.
        assert {row["status"] for row in systems.listed(request.pk)} == {"Cancelada"}
        assert request.get_status_display() == "Cancelado"
