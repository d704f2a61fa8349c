"""The policy version pages of the admin: a published version offers no Delete
anywhere, and the page that polls the delivery with htmx keeps to the CSP."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from policies.models import PolicyVersion
from tests.policies.conftest import draft, v1

HTMX = "/static/django_htmx/htmx"
CHANGELIST = reverse("admin:policies_policyversion_changelist")


def change_url(version: PolicyVersion) -> str:
    return reverse("admin:policies_policyversion_change", args=[version.pk])


def delete_url(version: PolicyVersion) -> str:
    return reverse("admin:policies_policyversion_delete", args=[version.pk])


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def test_a_published_version_offers_no_delete_and_cannot_be_deleted(admin_client, privacy):
    published = v1(privacy)
    page = admin_client.get(change_url(published)).content.decode()
    assert delete_url(published) not in page
    listing = admin_client.get(CHANGELIST).content.decode()
    assert 'value="delete_selected"' not in listing

    for method in (admin_client.get, admin_client.post):
        response = method(delete_url(published), {"post": "yes"})
        assert response.status_code == 302  # back to the version, not the customer 403 page
        assert response["Location"] == change_url(published)
        shown = admin_client.get(change_url(published)).content.decode()
        assert "A published version cannot be deleted" in shown
    bulk = admin_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [published.pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 302)
    assert PolicyVersion.objects.filter(pk=published.pk).exists()


def test_a_draft_can_still_be_deleted_from_its_page(admin_client, privacy):
    version = draft(privacy)
    page = admin_client.get(change_url(version)).content.decode()
    assert f'href="{delete_url(version)}"' in page
    assert admin_client.get(delete_url(version)).status_code == 200
    response = admin_client.post(delete_url(version), {"post": "yes"})
    assert response.status_code == 302
    assert not PolicyVersion.objects.filter(pk=version.pk).exists()


@pytest.mark.parametrize("which", ["draft", "published"])
def test_the_admin_version_page_configures_htmx_for_the_csp(admin_client, privacy, which):
    version = draft(privacy) if which == "draft" else v1(privacy)
    response = admin_client.get(change_url(version))
    page = response.content.decode()
    assert HTMX in page
    config = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", page)
    assert config, "htmx would add its indicator <style>, which the CSP refuses"
    settings = json.loads(config.group(1))
    assert (
        settings["allowEval"],
        settings["includeIndicatorStyles"],
        settings["historyCacheSize"],
    ) == (False, False, 0)
    # The config must come before htmx reads it.
    assert page.index('name="htmx-config"') < page.index(HTMX)
    csp = response.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp
    assert "<style" not in page
    assert ' style="' not in page
    for tag in re.findall(r"<script\b[^>]*>", page):
        assert " src=" in tag or 'type="application/json"' in tag, tag


def test_a_policy_with_versions_is_not_offered_for_deletion(admin_client, privacy):
    v1(privacy)
    change = reverse("admin:policies_policy_change", args=[privacy.pk])
    delete = reverse("admin:policies_policy_delete", args=[privacy.pk])
    listing = admin_client.get(reverse("admin:policies_policy_changelist")).content.decode()
    assert 'value="delete_selected"' not in listing
    assert f'href="{delete}"' not in admin_client.get(change).content.decode()
    for method in (admin_client.get, admin_client.post):
        response = method(delete, {"post": "yes"})
        assert response.status_code == 302  # back to the policy, not the customer 403 page
        assert response["Location"] == change
        assert "its versions are the record" in admin_client.get(change).content.decode()
    assert type(privacy).objects.filter(pk=privacy.pk).exists()
