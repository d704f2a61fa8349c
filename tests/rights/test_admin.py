"""The staff queue: ordered by due date, overdue and due-soon requests
highlighted, filters; entering a request for a person; answering it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from integrations import systems
from integrations.models import SystemTask
from rights.models import Kind, RightsRequest, Status
from tests.conftest import make_user
from tests.rights.conftest import ask, emails, enter

QUEUE = reverse("admin:rights_rightsrequest_changelist")
ADD = reverse("admin:rights_rightsrequest_add")


def change_url(request) -> str:
    return reverse("admin:rights_rightsrequest_change", args=[request.pk])


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def _due_in(request, delta: timedelta) -> RightsRequest:
    # Moving a deadline is not something any service does: set it for the test.
    RightsRequest.objects.filter(pk=request.pk).update(
        received_at=timezone.now() + delta - timedelta(days=15), due_at=timezone.now() + delta
    )
    request.refresh_from_db()
    return request


def test_the_queue_is_ordered_by_due_date_with_closed_requests_last(admin_client, customer, staff):
    later = _due_in(ask(customer, details="later"), timedelta(days=10))
    overdue = _due_in(ask(customer, details="overdue"), timedelta(days=-2))
    soon = _due_in(ask(customer, details="soon"), timedelta(days=1))
    closed = _due_in(ask(customer, details="closed"), timedelta(days=-5))
    from rights import services

    services.request_complete(request=closed, acting_user=staff)
    html = admin_client.get(QUEUE).content.decode()
    places = [html.index(change_url(r)) for r in (overdue, soon, later, closed)]
    assert places == sorted(places)


def test_overdue_and_due_soon_requests_are_highlighted(admin_client, customer, settings):
    settings.RIGHTS_DUE_SOON_DAYS = 3
    _due_in(ask(customer), timedelta(days=-1))
    _due_in(ask(customer), timedelta(days=2))
    _due_in(ask(customer), timedelta(days=5))
    html = admin_client.get(QUEUE).content.decode()
    assert html.count('class="due due-overdue"') == 1
    assert html.count('class="due due-soon"') == 1
    assert html.count('<span class="due">') == 1
    settings.RIGHTS_DUE_SOON_DAYS = 7
    html = admin_client.get(QUEUE).content.decode()
    assert html.count('class="due due-soon"') == 2


def test_the_queue_filters_by_status_kind_and_jurisdiction(admin_client, customer):
    access = ask(customer, jurisdiction="gdpr")
    erasure = ask(customer, kind="erasure")
    html = admin_client.get(QUEUE, {"kind__exact": "erasure"}).content.decode()
    assert change_url(erasure) in html and change_url(access) not in html
    html = admin_client.get(QUEUE, {"jurisdiction__exact": "gdpr"}).content.decode()
    assert change_url(access) in html and change_url(erasure) not in html
    html = admin_client.get(QUEUE, {"status__exact": "done"}).content.decode()
    assert change_url(access) not in html


def test_customers_cannot_reach_the_queue(client, customer):
    request = ask(customer)
    client.force_login(customer)
    for url in (QUEUE, ADD, change_url(request)):
        assert client.get(url).status_code == 302
    client.post(change_url(request), {"action": "refuse", "reason": "x"})
    request.refresh_from_db()
    assert request.status == Status.RECEIVED


def test_staff_enter_a_request_received_by_letter(admin_client, customer, staff, purposes):
    data = {
        "email": customer.email,
        "kind": "objection",
        "jurisdiction": "lgpd",
        "channel": "letter",
        "identity_check": "",
        "received_at": timezone.localtime().strftime("%Y-%m-%d %H:%M"),
        "purposes": [purposes["newsletter"].pk],
        "details": "Letter of 3 March.",
    }
    response = admin_client.post(ADD, data)
    assert response.status_code == 400
    assert not RightsRequest.objects.exists()
    response = admin_client.post(ADD, {**data, "identity_check": "letter"})
    made = RightsRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == change_url(made)
    assert (made.entered_by, made.channel, made.identity_check) == (staff, "letter", "letter")
    assert made.subject_id == customer.subject_id


def test_refusing_in_the_admin_needs_a_reason(admin_client, customer):
    request = ask(customer)
    response = admin_client.post(change_url(request), {"action": "refuse", "reason": ""})
    assert response.status_code == 400
    assert "reason for the refusal" in response.content.decode()
    request.refresh_from_db()
    assert request.status == Status.RECEIVED and emails() == []
    response = admin_client.post(
        change_url(request), {"action": "refuse", "reason": "Not the account holder."}
    )
    assert response.status_code == 302
    request.refresh_from_db()
    assert (request.status, request.refusal_reason) == (Status.REFUSED, "Not the account holder.")
    assert len(emails("emails/rights_request_refused")) == 1


def test_extending_in_the_admin_needs_a_reason(admin_client, customer):
    request = ask(customer, jurisdiction="gdpr")
    assert admin_client.post(change_url(request), {"action": "extend"}).status_code == 400
    request.refresh_from_db()
    assert request.status == Status.RECEIVED
    admin_client.post(change_url(request), {"action": "extend", "reason": "Three systems."})
    request.refresh_from_db()
    assert request.status == Status.EXTENDED


def test_the_answer_screen_shows_the_request_and_its_entry(admin_client, staff, customer):
    request = enter(staff, customer.email, details="<script>alert(1)</script>")
    html = admin_client.get(change_url(request)).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
    assert staff.email in html and customer.email in html


def test_a_staff_member_without_a_second_factor_is_kept_out(client, customer):
    request = ask(customer)
    person = make_user("nomfa@example.com", staff=True, second_factor=False)
    client.force_login(person)
    response = client.post(change_url(request), {"action": "complete"})
    assert response.status_code in (302, 403)
    request.refresh_from_db()
    assert request.status == Status.RECEIVED


def waiting_column(html: str) -> list[str]:
    return re.findall(r'<td class="field-waiting_for">(.*?)</td>', html)


def test_the_queue_shows_who_each_request_waits_for_in_one_read(
    admin_client, customer, staff, purposes
):
    from integrations.systems import seed_demo_systems
    from rights import services

    seed_demo_systems()  # Shop and CRM, both manual here: a copy waits for both
    copy = services.request_create(user=customer, kind=Kind.ACCESS)
    with CaptureQueriesContext(connection) as one:
        html = admin_client.get(QUEUE).content.decode()
    assert waiting_column(html) == ["CRM, Shop"]

    for _ in range(3):
        services.request_create(user=customer, kind=Kind.ACCESS)
    task = SystemTask.objects.filter(request=copy, system__key="crm").get()
    systems.task_complete(task=task, done="Exported the contact.", acting_user=staff)
    services.request_create(user=customer, kind=Kind.RECTIFICATION, details="My name.")
    with CaptureQueriesContext(connection) as five:
        html = admin_client.get(QUEUE).content.decode()
    column = waiting_column(html)
    assert sorted(column) == sorted(["CRM, Shop"] * 3 + ["Shop", "-"])
    # The page reads every row's systems at once: five rows cost what one did.
    assert len(five.captured_queries) == len(one.captured_queries)
