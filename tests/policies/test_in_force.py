"""Which version applies: a version published with a later effective date is
announced, with its date and its differences, while the one before it stays in
force on every page, in the ledger and in /privacy.json."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import formats, timezone

from policies import selectors
from policies.models import PolicyVersion
from tests.policies.conftest import draft, publish, redate_published, seeded_draft, v1

NEW_PARAGRAPH = "Personalised recommendations now also use"


@pytest.fixture
def coming(privacy, django_capture_on_commit_callbacks) -> PolicyVersion:
    """v1 in force; the material v2 published today, taking effect after the notice period."""
    version = publish(seeded_draft(privacy), django_capture_on_commit_callbacks).version
    assert version.effective_date > timezone.localdate()
    return version


def day(value) -> str:
    return formats.date_format(value, "DATE_FORMAT")


def comes_into_force(version: PolicyVersion) -> None:
    """Test set-up: the notice period is over."""
    redate_published(version, timezone.localdate())


def test_the_selectors_answer_for_a_moment_in_time(privacy, coming):
    first = v1(privacy)
    assert selectors.in_force(privacy) == first
    assert selectors.upcoming(privacy) == [coming]
    later = timezone.now() + timedelta(days=(coming.effective_date - timezone.localdate()).days)
    assert selectors.in_force(privacy, at=later) == coming
    assert selectors.upcoming(privacy, at=later) == []
    assert selectors.version_in_force_id() == first.pk
    assert selectors.version_in_force_id(at=later) == coming.pk


def test_a_later_version_already_in_force_supersedes_one_still_to_come(
    privacy, coming, django_capture_on_commit_callbacks
):
    minor = publish(draft(privacy), django_capture_on_commit_callbacks).version
    assert minor.number == 3 and minor.effective_date == timezone.localdate()
    assert selectors.in_force(privacy) == minor
    assert selectors.upcoming(privacy) == []


def test_the_policy_page_shows_the_version_in_force_and_announces_the_coming_one(client, coming):
    html = client.get("/policies/privacy/").content.decode()
    assert "<h2>Who we are</h2>" in html
    assert NEW_PARAGRAPH not in html
    assert "Version 1, in effect from" in html
    assert f"Version 2 takes effect on {day(coming.effective_date)}." in html
    assert "Until then, version 1 applies." in html
    assert coming.summary in html
    assert 'href="/policies/privacy/v2/"' in html
    assert 'href="/policies/privacy/diff/1/2/"' in html
    assert "This is an earlier version." not in html


def test_the_coming_version_says_it_does_not_apply_yet(client, coming):
    html = client.get("/policies/privacy/v2/").content.decode()
    assert NEW_PARAGRAPH in html
    assert f"Version 2, takes effect on {day(coming.effective_date)}" in html
    assert "This version does not apply yet" in html
    assert "Read version 1, in force until then" in html
    assert "This is an earlier version." not in html


def test_once_its_date_has_come_the_new_version_is_in_force(client, coming):
    comes_into_force(coming)
    html = client.get("/policies/privacy/").content.decode()
    assert NEW_PARAGRAPH in html
    assert "Version 2, in effect from" in html
    assert "takes effect on" not in html
    assert "This is an earlier version." in client.get("/policies/privacy/v1/").content.decode()


def test_the_index_and_the_history_label_the_version_in_force_and_the_coming_one(client, coming):
    index = client.get("/policies/").content.decode()
    assert "Version 1, in effect from" in index
    assert f"Version 2 takes effect on {day(coming.effective_date)}." in index
    assert 'href="/policies/privacy/diff/1/2/"' in index
    history = client.get("/policies/privacy/history/").content.decode()
    assert history.count('<span class="badge">in force</span>') == 1
    assert history.count('<span class="badge">coming</span>') == 1
    assert history.index("coming</span>") < history.index("in force</span>")  # newest first
    assert f"takes effect on {day(coming.effective_date)}" in history


def test_the_banner_says_when_a_coming_change_takes_effect(client, customer, coming):
    client.force_login(customer)
    html = client.get("/me/").content.decode()
    assert f"Takes effect on {day(coming.effective_date)}." in html
    assert "In effect from" not in html
    comes_into_force(coming)
    html = client.get("/me/").content.decode()
    assert f"In effect from {day(timezone.localdate())}." in html


def test_my_policies_lists_the_version_in_force_and_the_coming_one(client, customer, coming):
    client.force_login(customer)
    html = client.get("/me/policies/").content.decode()
    assert "(version 1)" in html
    assert f"version 2 takes effect on {day(coming.effective_date)}" in html


def test_privacy_json_names_the_version_in_force_and_the_coming_one(client, privacy, coming):
    body = json.loads(client.get("/privacy.json").content)
    [policy] = body["policies"]
    assert policy["slug"] == "privacy"
    assert policy["title"] == {"en": "Privacy policy", "pt-br": "Política de privacidade"}
    assert policy["inForce"]["version"] == 1
    assert policy["inForce"]["url"].endswith("/policies/privacy/v1/")
    [upcoming] = policy["upcoming"]
    assert upcoming["version"] == 2
    assert upcoming["effectiveDate"] == coming.effective_date.isoformat()
    assert upcoming["differencesUrl"].endswith("/policies/privacy/diff/1/2/")
    comes_into_force(coming)
    [policy] = json.loads(client.get("/privacy.json").content)["policies"]
    assert (policy["inForce"]["version"], policy["upcoming"]) == (2, [])


def test_a_first_version_still_to_come_is_shown_with_its_date(
    client, purposes, django_capture_on_commit_callbacks
):
    from policies.models import Policy

    terms = Policy.objects.create(slug="terms", title="Terms of sale")
    later = timezone.localdate() + timedelta(days=10)
    publish(
        draft(terms, body="## Terms\n\nBe nice.", effective_date=later),
        django_capture_on_commit_callbacks,
    )
    html = client.get("/policies/terms/").content.decode()
    assert "<h2>Terms</h2>" in html
    assert f"This version does not apply yet: it takes effect on {day(later)}." in html
