"""Staff make keys in the admin (the secret shown once), revoke them, and find
the API reference from there; each write has its audit row."""

from __future__ import annotations

import re

import pytest

from integrations.models import ApiKey
from rights.models import AuditAction, AuditEntry
from tests.integrations.conftest import make_key

ADD = "/admin/integrations/apikey/add/"
LIST = "/admin/integrations/apikey/"


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def test_staff_make_a_key_and_see_its_secret_once(staff_client, staff):
    response = staff_client.post(
        ADD, {"name": "Call centre", "scopes": ["consents:read", "decisions:write"]}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get()
    secret = re.search(rb'value="(clz_[^"]+)"', response.content).group(1).decode()
    assert secret.startswith(key.prefix)
    assert key.scopes == ["consents:read", "decisions:write"]
    assert key.created_by == staff
    entry = AuditEntry.objects.get(action=AuditAction.API_KEY_CREATE)
    assert entry.actor_id == staff.pk and key.prefix in entry.target + str(entry.details)
    # The key's page never shows it again.
    page = staff_client.get(f"{LIST}{key.pk}/change/")
    assert page.status_code == 200
    assert secret.encode() not in page.content
    assert key.prefix.encode() in page.content


def test_a_key_needs_a_scope_and_a_future_expiry(staff_client):
    response = staff_client.post(ADD, {"name": "Store", "scopes": []})
    assert response.status_code == 200 and b"errorlist" in response.content
    response = staff_client.post(
        ADD,
        {
            "name": "Store",
            "scopes": ["consents:read"],
            "expires_at_0": "2001-01-01",
            "expires_at_1": "10:00:00",
        },
    )
    assert b"errorlist" in response.content
    assert not ApiKey.objects.exists()
    assert not AuditEntry.objects.exists()


def test_staff_revoke_keys(staff_client, staff, client):
    secret = make_key(staff)
    key = ApiKey.objects.get()
    response = staff_client.post(
        LIST, {"action": "revoke", "_selected_action": [key.pk]}, follow=True
    )
    assert response.status_code == 200
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditEntry.objects.filter(action=AuditAction.API_KEY_REVOKE).count() == 1
    client.logout()
    assert client.get("/api/v1/inventory", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401


def test_keys_are_never_deleted_nor_edited(staff_client, staff):
    make_key(staff)
    key = ApiKey.objects.get()
    assert staff_client.get(f"{LIST}{key.pk}/delete/").status_code == 403
    staff_client.post(f"{LIST}{key.pk}/change/", {"name": "Renamed"})
    key.refresh_from_db()
    assert key.name == "Shop checkout"


def test_the_keys_page_links_the_api_reference(staff_client):
    response = staff_client.get(LIST)
    assert response.status_code == 200
    assert b'href="/api/docs/"' in response.content


def test_customers_and_visitors_cannot_reach_keys(client, customer):
    assert client.get(ADD).status_code == 302
    client.force_login(customer)
    assert client.get(ADD).status_code == 302
    assert client.post(ADD, {"name": "X", "scopes": ["consents:read"]}).status_code == 302
    assert not ApiKey.objects.exists()


def test_the_call_log_shows_no_person(staff_client, staff, customer, client):
    from tests.integrations.conftest import bearer

    secret = make_key(staff)
    client.get(f"/api/v1/subjects/{customer.subject_id}/consents", **bearer(secret))
    from integrations.models import ApiCall

    call = ApiCall.objects.get()
    assert call.subject_id == customer.subject_id
    listing = staff_client.get("/admin/integrations/apicall/")
    page = staff_client.get(f"/admin/integrations/apicall/{call.pk}/change/")
    assert listing.status_code == page.status_code == 200
    assert b"consents_by_subject" in listing.content
    for response in (listing, page):
        assert str(customer.subject_id).encode() not in response.content
