"""After a material change: the banner, acknowledging it, deciding again on the
purposes it changes, and the lapse of grants not given again."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import formats, timezone

from consents.models import ConsentEvent, ConsentState, Decision, Method, Purpose
from consents.selectors import reconsent_pending
from consents.services import consent_record
from policies import selectors as policy_selectors
from policies.models import Acknowledgement, PolicyVersion
from policies.tasks import expire_changed_grants
from tests.conftest import make_user, switch_form
from tests.policies.conftest import (
    draft,
    grant,
    link,
    message_to,
    move_effective_date,
    publish,
    redate_published,
    seeded_draft,
    v1,
)

BANNER = "We changed how we use your data"
KEEP = "Keep it on under the new terms"
NAMED = "This change affects what you allowed us to do for:"


@pytest.fixture
def v2(privacy, customer, django_capture_on_commit_callbacks):
    """The customer joined, allowed recommendations, then the material v2 (which
    changes recommendations) was published and emailed."""
    grant(customer, "recommendations")
    return publish(seeded_draft(privacy), django_capture_on_commit_callbacks).version


def state(user, key: str) -> ConsentState:
    return ConsentState.objects.select_related("event").get(
        subject_id=user.subject_id, purpose__key=key
    )


@pytest.mark.parametrize("path", ["/", "/me/", "/policies/"])
def test_a_customer_who_joined_before_sees_the_banner_on_any_page(client, customer, v2, path):
    client.force_login(customer)
    html = client.get(path).content.decode()
    assert BANNER in html
    assert v2.summary in html
    assert 'href="/policies/privacy/diff/1/2/"' in html
    assert f'action="/policies/versions/{v2.pk}/acknowledge/"' in html
    assert "I have read it" in html


def test_acknowledging_in_the_portal_records_it_and_the_banner_goes(client, customer, v2):
    client.force_login(customer)
    response = client.post(f"/policies/versions/{v2.pk}/acknowledge/", {"next": "/me/"})
    assert response.status_code == 302
    assert response["Location"] == "/me/"
    ack = Acknowledgement.objects.get()
    assert (ack.subject_id, ack.version, ack.method, ack.user) == (
        customer.subject_id,
        v2,
        "web",
        customer,
    )
    assert BANNER not in client.get("/me/").content.decode()
    mine = client.get("/me/policies/").content.decode()
    assert str(v2) in mine
    assert "You acknowledged it on" in mine
    assert "Emailed to you on" in mine
    assert "Not acknowledged yet." not in mine


def test_my_policies_lists_an_unacknowledged_version(client, customer, v2):
    client.force_login(customer)
    html = client.get("/me/policies/").content.decode()
    assert str(v2) in html
    assert "Not acknowledged yet." in html
    assert "Emailed to you on" in html


def test_a_customer_who_joined_after_the_change_sees_no_banner(client, v2):
    newcomer = make_user("newcomer@example.com")
    client.force_login(newcomer)
    assert BANNER not in client.get("/me/").content.decode()
    assert (
        "We have not changed a policy since you joined."
        in client.get("/me/policies/").content.decode()
    )


def test_a_grant_the_change_affects_is_named_and_can_be_kept_under_the_new_terms(
    client, customer, v2
):
    client.force_login(customer)
    html = client.get("/me/").content.decode()
    assert NAMED in html
    assert "<strong>Personalised recommendations</strong>" in html
    assert html.count(KEEP) == 1
    response = client.post(
        "/me/consents/recommendations/",
        switch_form("recommendations", "granted", reconfirm="1"),
    )
    assert response.status_code == 302
    kept = state(customer, "recommendations")
    assert kept.decision == Decision.GRANTED
    # Given again before v2 takes effect: the ledger names v1, the version in
    # force; the event's time, after v2 was published, is what keeps it past v2's date.
    assert (kept.event.decision, kept.event.method, kept.event.policy_version_id) == (
        Decision.GRANTED,
        Method.PANEL,
        v1(v2.policy).pk,
    )
    assert ConsentEvent.objects.filter(subject_id=customer.subject_id).count() == 2
    html = client.get("/me/").content.decode()
    assert KEEP not in html
    assert NAMED not in html
    assert BANNER in html  # reading the change is asked for separately


def test_a_customer_without_an_affected_grant_is_not_asked_to_decide_again(
    client, other_customer, v2
):
    client.force_login(other_customer)
    html = client.get("/me/").content.decode()
    assert BANNER in html
    assert NAMED not in html
    assert KEEP not in html


def test_grants_not_given_again_lapse_once_the_change_takes_effect(customer, other_customer, v2):
    grant(other_customer, "recommendations")  # after v2: under the new terms
    kept = make_user("kept@example.com")
    untouched = make_user("untouched@example.com")
    move_effective_date(v2, timezone.localdate() + timedelta(days=1))
    assert expire_changed_grants() == 0
    assert state(customer, "recommendations").decision == Decision.GRANTED
    # Test set-up: the notice period is over.
    move_effective_date(v2, timezone.localdate() - timedelta(days=1))
    assert expire_changed_grants() == 1
    lapsed = state(customer, "recommendations")
    assert lapsed.decision == Decision.WITHDRAWN
    assert (lapsed.event.method, lapsed.event.policy_version_id) == (Method.EXPIRY, v2.pk)
    assert state(other_customer, "recommendations").decision == Decision.GRANTED
    assert not ConsentEvent.objects.filter(subject_id__in=[kept.subject_id, untouched.subject_id])
    assert expire_changed_grants() == 0


def test_a_reconfirmed_grant_and_other_purposes_do_not_lapse(customer, v2, privacy):
    grant(customer, "newsletter")  # not a purpose v2 changes
    consent_record(
        subject_id=customer.subject_id,
        purpose=Purpose.objects.get(key="recommendations"),
        decision=Decision.GRANTED,
        method=Method.PANEL,
        reconfirm=True,
    )
    move_effective_date(v2, timezone.localdate() - timedelta(days=1))
    assert expire_changed_grants() == 0
    assert state(customer, "recommendations").decision == Decision.GRANTED
    assert state(customer, "newsletter").decision == Decision.GRANTED


def test_ledger_events_name_the_privacy_version_in_force(
    privacy, customer, django_capture_on_commit_callbacks
):
    material = seeded_draft(privacy)
    grant(customer, "newsletter")
    assert state(customer, "newsletter").event.policy_version_id == v1(privacy).pk
    draft(privacy)  # a draft is not in force
    grant(customer, "tailored-offers")
    assert state(customer, "tailored-offers").event.policy_version_id == v1(privacy).pk
    v2 = publish(material, django_capture_on_commit_callbacks).version
    assert v2.effective_date > timezone.localdate()
    grant(customer, "recommendations")  # v2 is announced, v1 still applies
    assert state(customer, "recommendations").event.policy_version_id == v1(privacy).pk
    redate_published(v2, timezone.localdate())  # test set-up: the notice period is over
    grant(customer, "product-research")
    assert state(customer, "product-research").event.policy_version_id == v2.pk


def test_acknowledging_needs_a_login_and_a_post_and_records_nothing_otherwise(client, customer, v2):
    url = f"/policies/versions/{v2.pk}/acknowledge/"
    anonymous = client.post(url)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/")
    client.force_login(customer)
    assert client.get(url).status_code == 405
    assert not Acknowledgement.objects.exists()


def test_a_draft_cannot_be_acknowledged(client, customer, privacy):
    client.force_login(customer)
    draft_version = seeded_draft(privacy)
    assert client.post(f"/policies/versions/{draft_version.pk}/acknowledge/").status_code == 404
    assert not Acknowledgement.objects.exists()


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/", "javascript:x"])
def test_acknowledging_never_redirects_off_the_portal(client, customer, v2, next_url):
    client.force_login(customer)
    response = client.post(f"/policies/versions/{v2.pk}/acknowledge/", {"next": next_url})
    assert response["Location"] == "/me/policies/"


# Acknowledging the text is not deciding again (issue 8, item 7) ---------------------

ASK = "Please decide again"


def _asks_to_decide_again(html: str, version: PolicyVersion) -> bool:
    date = formats.date_format(version.effective_date, "DATE_FORMAT")
    return (
        ASK in html
        and "<strong>Personalised recommendations</strong>" in html
        and f"Lapses on {date} unless you confirm it." in html
        and 'action="/me/consents/recommendations/"' in html
        and 'name="reconfirm" value="1"' in html
        and 'name="decision" value="withdrawn"' in html
    )


def _pending(user) -> list[str]:
    return [ask.purpose.key for ask in reconsent_pending(subject_id=user.subject_id)]


def test_acknowledging_in_the_banner_still_asks_to_decide_again(client, customer, v2):
    client.force_login(customer)
    assert _asks_to_decide_again(client.get("/me/").content.decode(), v2)
    client.post(f"/policies/versions/{v2.pk}/acknowledge/", {"next": "/me/"})
    assert Acknowledgement.objects.filter(subject_id=customer.subject_id, version=v2).exists()
    for path in ("/", "/me/"):
        html = client.get(path).content.decode()
        assert BANNER not in html  # the text is acknowledged
        assert _asks_to_decide_again(html, v2), path  # the decision is still asked
    assert KEEP in client.get("/me/").content.decode()
    assert _pending(customer) == ["recommendations"]
    assert state(customer, "recommendations").decision == Decision.GRANTED


def test_acknowledging_from_the_email_still_asks_to_decide_again(client, customer, v2):
    response = Client().post(link(message_to(customer.email), "acknowledge"))
    assert response.status_code == 200
    assert Acknowledgement.objects.filter(subject_id=customer.subject_id, method="email_link")
    assert _pending(customer) == ["recommendations"]
    client.force_login(customer)
    html = client.get("/").content.decode()
    assert BANNER not in html
    assert _asks_to_decide_again(html, v2)


def test_the_acknowledged_page_links_to_deciding_again_without_logging_in(customer, v2):
    browser = Client()
    html = browser.post(link(message_to(customer.email), "acknowledge")).content.decode()
    assert ASK in html
    decide = re.search(r'href="(/reconsent/[^"]+/)">Personalised recommendations<', html)
    assert decide, html
    assert browser.post(decide.group(1), {"decision": "granted"}).status_code == 302
    kept = state(customer, "recommendations")
    assert (kept.decision, kept.event.method) == (Decision.GRANTED, Method.EMAIL_LINK)
    assert _pending(customer) == []
    assert ASK not in browser.get(link(message_to(customer.email), "acknowledge")).content.decode()


def test_confirming_after_acknowledging_records_a_grant_under_the_new_terms(client, customer, v2):
    client.force_login(customer)
    client.post(f"/policies/versions/{v2.pk}/acknowledge/", {"next": "/me/"})
    before = state(customer, "recommendations").event
    response = client.post(
        "/me/consents/recommendations/", switch_form("recommendations", "granted", reconfirm="1")
    )
    assert response.status_code == 302
    kept = state(customer, "recommendations")
    assert kept.event.pk != before.pk
    # Confirmed before v2 takes effect: the ledger names v1, the version then in
    # force; what keeps the grant past v2's date is the time it was given.
    in_force = policy_selectors.in_force(v2.policy)
    assert in_force.pk != v2.pk
    assert (kept.decision, kept.event.policy_version_id) == (Decision.GRANTED, in_force.pk)
    current = Purpose.objects.get(key="recommendations").notices.order_by("-version").first()
    assert kept.event.notice == current
    assert _pending(customer) == []
    html = client.get("/me/").content.decode()
    assert ASK not in html and KEEP not in html
    move_effective_date(v2, timezone.localdate() - timedelta(days=1))
    assert expire_changed_grants() == 0
    assert state(customer, "recommendations").decision == Decision.GRANTED


def test_withdrawing_from_the_banner_answers_the_request(client, customer, v2):
    client.force_login(customer)
    client.post(f"/policies/versions/{v2.pk}/acknowledge/", {"next": "/"})
    client.post("/me/consents/recommendations/", {"decision": "withdrawn"})
    assert state(customer, "recommendations").decision == Decision.WITHDRAWN
    assert _pending(customer) == []
    assert ASK not in client.get("/").content.decode()


def test_who_acknowledged_but_never_decided_lapses_at_the_effective_date(client, customer, v2):
    client.force_login(customer)
    client.post(f"/policies/versions/{v2.pk}/acknowledge/", {"next": "/me/"})
    move_effective_date(v2, timezone.localdate() - timedelta(days=1))
    assert expire_changed_grants() == 1
    lapsed = state(customer, "recommendations")
    assert (lapsed.decision, lapsed.event.method) == (Decision.WITHDRAWN, Method.EXPIRY)
    assert _pending(customer) == []
    assert ASK not in client.get("/me/").content.decode()


def test_reconfirming_with_nothing_asked_adds_no_event(client, customer, privacy):
    """A re-confirm post (a stale tab, a forged form) with no change asking for
    it repeats the standing grant: nothing is recorded."""
    grant(customer, "recommendations")
    before = ConsentEvent.objects.filter(subject_id=customer.subject_id).count()
    client.force_login(customer)
    response = client.post(
        "/me/consents/recommendations/",
        switch_form("recommendations", "granted", reconfirm="1"),
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert "Nothing changed" in response.content.decode()
    assert ConsentEvent.objects.filter(subject_id=customer.subject_id).count() == before


def test_the_banners_keep_button_confirms_the_grant(client, customer, v2):
    """The banner's own form, posted as the page has it, keeps the grant under
    the new terms (it carries the text's hash, as every grant must)."""
    client.force_login(customer)
    html = client.get("/").content.decode()
    form = re.search(
        r'<form method="post" action="/me/consents/recommendations/"[^>]*>(.*?)'
        r'<button type="submit" class="button-small" id="banner-keep-recommendations">',
        html,
        re.S,
    )
    assert form, "the banner offers no keep button"
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form.group(1)))
    before = state(customer, "recommendations").event
    response = client.post("/me/consents/recommendations/", fields)
    assert response.status_code == 302
    kept = state(customer, "recommendations")
    assert kept.decision == Decision.GRANTED and kept.event.pk != before.pk
    assert _pending(customer) == []
