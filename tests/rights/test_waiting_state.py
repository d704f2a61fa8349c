"""What "Your requests" says of a request that waits for the company's other
systems (rights.waiting, integrations.systems): not "Received" the whole time,
but in plain words what the portal has done and that the rest is awaited, for
every kind that can wait, in English and Portuguese, without naming a system;
and the usual state again once nobody is waited for. Read in the HTML the
person gets."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.urls import reverse

from consents.models import DataCategory
from integrations import systems
from integrations.models import SystemTask, TaskKind
from portal import outbox
from rights import emails as rights_emails
from rights import exports, services
from rights.models import Kind, Status
from tests.conftest import make_user
from tests.rights.conftest import ask

PAGE = reverse("me_requests")
# A name the person must never read: the systems are the company's inside.
SYSTEM = "Backoffice Zeta"

COPY_READY = "In progress: the portal's part of your copy is ready; waiting for our other systems."
COPY_BUILDING = (
    "In progress: we are preparing the portal's part of your copy; "
    "waiting for our other systems too."
)
COPY_FINISHING = "In progress: we are preparing your copy."
OBJECTION = (
    "In progress: this portal has stopped the uses concerned; "
    "waiting for our other systems to confirm they have stopped them too."
)
RESTRICTION = (
    "In progress: this portal has paused the uses concerned; "
    "waiting for our other systems to confirm they have paused them too."
)
ERASURE = (
    "In progress: your data is erased from this portal; "
    "waiting for our other systems to confirm they have erased theirs."
)


@pytest.fixture
def system(staff, purposes):
    """A manual system that handles every kind and holds every data category."""
    return systems.system_save(
        name=SYSTEM,
        key="zeta",
        kinds=list(TaskKind.values),
        data_categories=DataCategory.objects.all(),
        acting_user=staff,
    )


def state_of(page: str, request) -> str:
    """The "State" the page shows for one request, as the person reads it."""
    found = re.search(
        rf'id="request-{request.uuid}".*?<dd class="request-state">(.*?)</dd>', page, re.S
    )
    assert found, f"request {request.uuid} is not on the page"
    return html.unescape(found.group(1)).strip()


def page_of(client, person, **headers) -> str:
    client.force_login(person)
    response = client.get(PAGE, **headers)
    assert response.status_code == 200
    return response.content.decode()


def answer(staff, request) -> None:
    """Staff record every task of the request as done."""
    for task in SystemTask.objects.filter(request=request):
        systems.task_complete(task=task, done="Done by hand.", acting_user=staff)


def build() -> int:
    return outbox.outbox_send(kind=exports.EXPORT_KIND)


def test_a_copy_says_it_waits_while_being_prepared_then_ready_then_completes(
    client, customer, staff, system
):
    export = exports.export_request(user=customer)
    request = export.request
    page = page_of(client, customer)
    assert state_of(page, request) == COPY_BUILDING
    assert SYSTEM not in page

    assert build() == 1
    page = page_of(client, customer)
    assert state_of(page, request) == COPY_READY
    assert "Received" not in state_of(page, request)
    assert SYSTEM not in page

    # The system answers: nobody is waited for, and the complete copy is on its way.
    answer(staff, request)
    page = page_of(client, customer)
    assert state_of(page, request) == COPY_FINISHING
    assert "waiting for our other systems" not in page

    assert build() == 1
    request.refresh_from_db()
    assert request.status == Status.DONE
    assert state_of(page_of(client, customer), request) == "Done"


def test_a_copy_with_no_system_to_wait_for_says_only_that_it_is_prepared(client, customer):
    request = exports.export_request(user=customer).request
    assert state_of(page_of(client, customer), request) == COPY_FINISHING
    assert build() == 1
    request.refresh_from_db()
    assert request.status == Status.DONE
    page = page_of(client, customer)
    assert state_of(page, request) == "Done" and "our other systems" not in page


@pytest.mark.parametrize(
    ("kind", "wording"), [(Kind.OBJECTION, OBJECTION), (Kind.RESTRICTION, RESTRICTION)]
)
def test_an_objection_or_a_restriction_says_it_waits_until_the_system_confirms(
    client, customer, staff, system, purposes, kind, wording
):
    request = ask(customer, kind=kind, purposes=[purposes["newsletter"]])
    assert SystemTask.objects.filter(request=request).count() == 1
    page = page_of(client, customer)
    assert state_of(page, request) == wording
    assert SYSTEM not in page

    answer(staff, request)
    request.refresh_from_db()
    assert request.status == Status.RECEIVED  # staff answer it still
    page = page_of(client, customer)
    assert state_of(page, request) == "Received"
    assert "our other systems" not in page


def test_a_request_staff_have_started_that_waits_says_so_too(
    client, customer, staff, system, purposes
):
    request = ask(customer, kind=Kind.RESTRICTION, purposes=[purposes["newsletter"]])
    services.request_start(request=request, acting_user=staff)
    assert state_of(page_of(client, customer), request) == RESTRICTION


def test_a_request_that_reaches_no_system_keeps_its_state(client, customer, purposes):
    request = ask(customer, kind=Kind.OBJECTION, purposes=[purposes["newsletter"]])
    assert state_of(page_of(client, customer), request) == "Received"


def test_a_closed_request_says_it_is_closed_whatever_its_tasks(client, customer, system, purposes):
    request = ask(customer, kind=Kind.OBJECTION, purposes=[purposes["newsletter"]])
    services.request_cancel(request=request, user=customer)
    assert state_of(page_of(client, customer), request) == "Cancelled"


def test_the_waiting_state_is_in_portuguese_for_a_portuguese_speaker(
    client, staff, system, purposes
):
    ana = make_user("ana@example.com", language="pt-br")
    objection = ask(ana, kind=Kind.OBJECTION, purposes=[purposes["newsletter"]])
    copy = exports.export_request(user=ana).request
    page = page_of(client, ana, HTTP_ACCEPT_LANGUAGE="pt-br")
    assert state_of(page, objection).startswith("Em andamento:")
    assert "outros sistemas" in state_of(page, objection)
    assert build() == 1
    page = page_of(client, ana, HTTP_ACCEPT_LANGUAGE="pt-br")
    assert state_of(page, copy).startswith("Em andamento:")
    assert "pronta" in state_of(page, copy)
    assert "waiting" not in page and SYSTEM not in page


def test_an_erasure_carried_out_says_on_its_link_that_it_waits_for_the_other_systems(
    client, customer, staff, system
):
    closure = services.account_close(user=customer)
    link = reverse(
        "rights:erasure_cancel", kwargs={"token": rights_emails.erasure_cancel_token(closure)}
    )
    assert ERASURE not in html.unescape(client.get(link).content.decode())  # not yet erased

    assert services.erasures_due(now=closure.erase_after + timedelta(seconds=1)) == 1
    closure.refresh_from_db()
    assert closure.status == Status.IN_PROGRESS and closure.erased_at is not None
    page = html.unescape(client.get(link).content.decode())
    assert "This erasure was carried out" in page and ERASURE in page
    assert SYSTEM not in page

    answer(staff, closure)
    closure.refresh_from_db()
    assert closure.status == Status.DONE
    page = html.unescape(client.get(link).content.decode())
    assert "This erasure was carried out" in page and "our other systems" not in page
