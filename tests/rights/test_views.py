"""'Your requests' in the control panel: a person sees, makes and cancels
only their own requests; anonymous visitors are sent to log in; refused
input changes nothing; no JavaScript is needed."""

from __future__ import annotations

import pytest
from django.urls import reverse

from rights.models import Kind, RightsRequest, Status
from tests.rights.conftest import ask

PAGE = reverse("me_requests")


def cancel_url(request) -> str:
    return reverse("me_request_cancel", kwargs={"uuid": request.uuid})


def test_anonymous_visitors_are_sent_to_log_in(client, customer):
    request = ask(customer)
    for response in (client.get(PAGE), client.post(PAGE, {"kind": "access"})):
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    response = client.post(cancel_url(request))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    request.refresh_from_db()
    assert request.status == Status.RECEIVED
    assert RightsRequest.objects.count() == 1


def test_wrong_methods_are_refused(client, customer):
    client.force_login(customer)
    request = ask(customer)
    assert client.put(PAGE).status_code == 405
    assert client.get(cancel_url(request)).status_code == 405
    request.refresh_from_db()
    assert request.status == Status.RECEIVED


def test_the_page_lists_only_the_persons_own_requests(client, customer, other_customer):
    mine = ask(customer, details="mine-details")
    theirs = ask(other_customer, details="their-details")
    client.force_login(customer)
    html = client.get(PAGE).content.decode()
    assert str(mine.uuid) in html and "mine-details" in html
    assert str(theirs.uuid) not in html and "their-details" not in html


def test_a_person_cannot_cancel_another_persons_request(client, customer, other_customer):
    theirs = ask(other_customer)
    client.force_login(customer)
    assert client.post(cancel_url(theirs)).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == Status.RECEIVED


def test_a_person_makes_a_request_and_sees_its_due_date(client, customer, purposes):
    client.force_login(customer)
    response = client.post(
        PAGE,
        {
            "kind": Kind.RESTRICTION,
            "purposes": ["recommendations"],
            "details": "My interests are wrong.",
            "jurisdiction": "gdpr",
        },
        follow=True,
    )
    made = RightsRequest.objects.get(subject_id=customer.subject_id)
    assert (made.kind, made.jurisdiction) == (Kind.RESTRICTION, "gdpr")
    assert [p.key for p in made.purposes.all()] == ["recommendations"]
    html = response.content.decode()
    assert "We received your request" in html
    assert f'id="request-{made.uuid}"' in html
    assert "Uses we have stopped at your request" in html


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "nonsense", "jurisdiction": "lgpd"},
        {"kind": Kind.OBJECTION, "jurisdiction": "lgpd"},  # no purpose
        {"kind": Kind.ACCESS, "jurisdiction": "lgpd", "purposes": ["newsletter"]},
        {"kind": Kind.ACCESS, "jurisdiction": "mars"},
        {"kind": Kind.ACCESS, "jurisdiction": "lgpd", "details": "x" * 5001},
    ],
)
def test_bad_input_is_explained_and_changes_nothing(client, customer, purposes, data):
    client.force_login(customer)
    response = client.post(PAGE, data)
    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()
    assert not RightsRequest.objects.exists()


def test_a_person_cancels_their_open_request_without_javascript(client, customer):
    request = ask(customer)
    client.force_login(customer)
    response = client.post(cancel_url(request))
    assert response.status_code == 302
    assert response["Location"] == f"{PAGE}#request-{request.uuid}"
    request.refresh_from_db()
    assert request.status == Status.CANCELLED
    html = client.get(PAGE).content.decode()
    assert cancel_url(request) not in html  # a closed request offers no cancel


def test_the_panel_and_the_privacy_page_link_to_the_requests(client, customer, purposes):
    client.force_login(customer)
    assert f'href="{PAGE}"' in client.get(reverse("me")).content.decode()
    assert f'href="{PAGE}"' in client.get(reverse("consents:privacy")).content.decode()


def test_the_page_is_in_portuguese_for_a_portuguese_speaker(client, db):
    from tests.conftest import make_user

    client.force_login(make_user("ana@example.com", language="pt-br"))
    html = client.get(PAGE, HTTP_ACCEPT_LANGUAGE="pt-br").content.decode()
    assert "Seus pedidos" in html
