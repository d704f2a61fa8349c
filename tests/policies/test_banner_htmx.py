"""The re-consent banner follows the panel's switches without a reload: an htmx
switch answers the banner out of band, as it now stands."""

from __future__ import annotations

import pytest

from tests.conftest import switch_form
from tests.consents.test_panel import HTMX, oob_elements, parse
from tests.policies.conftest import grant, publish, seeded_draft

NAMED = "This change affects what you allowed us to do for:"


@pytest.fixture
def v2(privacy, customer, django_capture_on_commit_callbacks):
    grant(customer, "recommendations", "newsletter")
    return publish(seeded_draft(privacy), django_capture_on_commit_callbacks).version


def reconsent_text(banner) -> str:
    return " ".join(p.text for p in banner.find_all("p") if NAMED in p.text)


def test_keeping_a_grant_under_the_new_terms_takes_it_off_the_banner_at_once(client, customer, v2):
    client.force_login(customer)
    banner = parse(client.get("/me/")).by_id("policy-banner")
    assert "Personalised recommendations" in reconsent_text(banner)

    response = client.post(
        "/me/consents/recommendations/",
        switch_form("recommendations", "granted", reconfirm="1"),
        headers=HTMX,
    )
    assert response.status_code == 200
    banner = oob_elements(response)["policy-banner"]
    assert banner.attrs["hx-swap-oob"] == "true"
    assert "Personalised recommendations" not in reconsent_text(banner)
    # The version itself still waits to be acknowledged.
    assert str(v2.policy.display_title) in banner.text


def test_turning_the_affected_purpose_off_takes_it_off_the_banner_at_once(client, customer, v2):
    client.force_login(customer)
    response = client.post("/me/consents/recommendations/", {"decision": "withdrawn"}, headers=HTMX)
    banner = oob_elements(response)["policy-banner"]
    assert "Personalised recommendations" not in reconsent_text(banner)
