"""Global Privacy Control for a logged-in customer: any request with Sec-GPC: 1
withdraws a standing grant for a sale or sharing purpose, once, and says so."""

from __future__ import annotations

import pytest

from consents import services
from consents.models import ConsentEvent, ConsentState, Decision, Method
from tests.conftest import switch_form

GPC = {"Sec-GPC": "1"}
TOLD = (
    "Your browser sends a Global Privacy Control signal, so we stopped "
    "“Sharing with advertising partners”."
)


@pytest.fixture
def granted(customer, purposes):
    """The customer granted ad-partners and the newsletter, and refused tailored offers."""
    for key, decision in (
        ("ad-partners", Decision.GRANTED),
        ("newsletter", Decision.GRANTED),
        ("tailored-offers", Decision.REFUSED),
    ):
        services.consent_record(
            subject_id=customer.subject_id,
            purpose=purposes[key],
            decision=decision,
            method=Method.PANEL,
        )
    return customer


def states(user) -> dict[str, str]:
    return dict(
        ConsentState.objects.filter(subject_id=user.subject_id).values_list(
            "purpose__key", "decision"
        )
    )


def gpc_events(user):
    return ConsentEvent.objects.filter(subject_id=user.subject_id, method=Method.GPC)


@pytest.mark.parametrize("url", ["/", "/privacy/", "/me/"])
def test_a_gpc_request_withdraws_ad_partners_and_tells_the_customer(client, granted, url):
    client.force_login(granted)
    before = ConsentEvent.objects.count()
    response = client.get(url, headers=GPC)
    assert response.status_code == 200
    assert TOLD in response.content.decode()

    (event,) = gpc_events(granted)
    assert event.purpose.key == "ad-partners"
    assert event.decision == Decision.WITHDRAWN
    assert event.ip_truncated == "127.0.0.0"
    assert ConsentEvent.objects.count() == before + 1
    assert states(granted) == {
        "ad-partners": Decision.WITHDRAWN,
        "newsletter": Decision.GRANTED,
        "tailored-offers": Decision.REFUSED,
    }


def test_a_gpc_request_without_a_page_tells_the_customer_on_the_next_page(client, granted):
    client.force_login(granted)
    response = client.get("/privacy.json", headers=GPC)
    assert response.status_code == 200
    assert gpc_events(granted).count() == 1
    assert TOLD in client.get("/").content.decode()
    assert TOLD not in client.get("/").content.decode()


def test_a_second_gpc_request_records_nothing_more(client, granted):
    client.force_login(granted)
    client.get("/", headers=GPC)
    count = ConsentEvent.objects.count()
    response = client.get("/", headers=GPC)
    assert response.status_code == 200
    assert TOLD not in response.content.decode()
    assert ConsentEvent.objects.count() == count
    assert gpc_events(granted).count() == 1


def test_a_grant_given_again_after_a_gpc_withdrawal_stands_against_later_gpc_requests(
    client, granted, purposes
):
    client.force_login(granted)
    client.get("/", headers=GPC)
    again = services.consent_record(
        subject_id=granted.subject_id,
        purpose=purposes["ad-partners"],
        decision=Decision.GRANTED,
        method=Method.PANEL,
    )
    assert again is not None
    count = ConsentEvent.objects.count()

    response = client.get("/me/", headers=GPC)
    assert response.status_code == 200
    assert TOLD not in response.content.decode()
    assert ConsentEvent.objects.count() == count
    assert states(granted)["ad-partners"] == Decision.GRANTED
    assert ConsentState.objects.get(subject_id=granted.subject_id, purpose=again.purpose).event == (
        again
    )


@pytest.mark.parametrize("value", ["0", "true"])
def test_a_request_with_another_gpc_value_changes_nothing(client, granted, value):
    client.force_login(granted)
    count = ConsentEvent.objects.count()
    response = client.get("/", headers={"Sec-GPC": value})
    assert response.status_code == 200
    assert TOLD not in response.content.decode()
    assert ConsentEvent.objects.count() == count
    assert states(granted)["ad-partners"] == Decision.GRANTED


def test_a_gpc_request_from_a_visitor_records_nothing(client, granted):
    count = ConsentEvent.objects.count()
    assert client.get("/", headers=GPC).status_code == 200
    assert ConsentEvent.objects.count() == count


def test_a_grant_given_in_the_panel_while_gpc_is_on_is_the_customers_choice_and_stands(
    client, customer, purposes
):
    client.force_login(customer)
    page = client.get("/me/", headers=GPC).content.decode()
    assert "your choice here wins for this purpose" in page

    client.post("/me/consents/ad-partners/", switch_form("ad-partners", "granted"), headers=GPC)
    grant = ConsentEvent.objects.get(subject_id=customer.subject_id, purpose__key="ad-partners")
    assert grant.decision == Decision.GRANTED and grant.gpc_signal is True

    client.get("/", headers=GPC)
    assert states(customer)["ad-partners"] == Decision.GRANTED
    assert not gpc_events(customer).exists()
