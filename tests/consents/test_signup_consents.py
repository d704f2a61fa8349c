"""The sign-up form's consent boxes: what it shows, what a sign-up records, and
every way a forged or stale form is refused without recording anything."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils.html import escape

from consents import services
from consents.models import ConsentEvent, ConsentState, Decision, Method
from tests.conftest import PASSWORD, make_user
from tests.consents.conftest import inputs

EMAIL = "new@example.com"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
OPTIONAL = [
    "newsletter",
    "recommendations",
    "tailored-offers",
    "product-research",
    "ad-partners",
    "dietary-suggestions",
]
INVALID_CHOICE = "is not a purpose you can choose here. Nothing was saved"
NOTICE_CHANGED = "is not the one we hold now"
GPC_NOTE = "your browser sends a Global Privacy Control signal"


def checkboxes(html: str) -> dict[str, dict]:
    """The purpose checkboxes, by value, with their attributes (a bare attribute is None)."""
    return {
        i["value"]: i
        for i in inputs(html)
        if i.get("type") == "checkbox" and i.get("name") == "purposes"
    }


def notice_hashes(html: str) -> dict[str, str]:
    return dict(re.findall(r'name="(notice_[\w-]+)" value="(\w*)"', html))


def offer_block(html: str, key: str) -> str:
    """The HTML of one purpose's offer (its box, texts and notes)."""
    blocks = re.split(r'<div class="offer(?: offer-blocked)?">', html)[1:]
    found = [b.split("</fieldset>")[0] for b in blocks if f'id="purpose-{key}"' in b]
    assert len(found) == 1, f"{len(found)} offers for {key}"
    return found[0]


def fieldsets(html: str) -> dict[str, str]:
    return dict(re.findall(r'<fieldset class="([^"]+)">(.*?)</fieldset>', html, re.S))


def signup_page(client, headers=None) -> str:
    response = client.get(reverse("account_signup"), headers=headers or {})
    assert response.status_code == 200
    return response.content.decode()


def post_signup(client, hashes, purposes, headers=None):
    data = {
        "email": EMAIL,
        "password1": PASSWORD,
        "password2": PASSWORD,
        "purposes": purposes,
        **hashes,
    }
    return client.post(reverse("account_signup"), data, headers=headers or {})


def sign_up(client, capture, purposes, headers=None):
    hashes = notice_hashes(signup_page(client, headers))
    with capture(execute=True):
        response = post_signup(client, hashes, purposes, headers=headers)
    assert response.status_code == 302, response.content.decode()[:2000]
    return get_user_model().objects.get(email=EMAIL)


def assert_refused_and_nothing_recorded(response, message: str) -> str:
    html = response.content.decode()
    assert response.status_code == 200
    assert message in html
    assert 'role="alert"' in html
    assert not ConsentEvent.objects.exists()
    assert not ConsentState.objects.exists()
    assert not get_user_model().objects.filter(email=EMAIL).exists()
    return html


# What the page shows


def test_the_signup_page_offers_one_unticked_box_per_optional_purpose_with_its_benefit_and_link(
    client, purposes
):
    html = signup_page(client)
    boxes = checkboxes(html)
    assert sorted(boxes) == sorted(OPTIONAL)
    for key in OPTIONAL:
        box = boxes[key]
        assert "checked" not in box and "required" not in box and "disabled" not in box
        block = offer_block(html, key)
        assert escape(purposes[key].benefit) in block
        assert escape(purposes[key].description) in block
        assert f'href="/privacy/#purpose-{key}"' in block
    assert all(purposes[key].benefit for key in OPTIONAL)


def test_the_contract_purpose_has_no_box_but_is_explained_with_a_link(client, purposes):
    html = signup_page(client)
    assert "account-orders" not in checkboxes(html)
    assert "notice_account-orders" not in notice_hashes(html)
    explained = re.search(r'<details class="basis">(.*?)</details>', html, re.S).group(1)
    contract = purposes["account-orders"]
    assert escape(contract.name) in explained
    assert escape(contract.description) in explained
    assert "Performance of a contract" in explained
    assert 'href="/privacy/#purpose-account-orders"' in explained


def test_the_sensitive_purpose_stands_in_its_own_fieldset(client, purposes):
    sets = fieldsets(signup_page(client))
    assert set(sets) == {"consents", "consents consents-sensitive"}
    assert list(checkboxes(sets["consents consents-sensitive"])) == ["dietary-suggestions"]
    assert "Sensitive data" in sets["consents consents-sensitive"]
    assert sorted(checkboxes(sets["consents"])) == sorted(
        k for k in OPTIONAL if k != "dietary-suggestions"
    )


# What a sign-up records


def test_signing_up_with_one_box_ticked_grants_it_and_refuses_each_other_optional_purpose(
    client, purposes, django_capture_on_commit_callbacks
):
    user = sign_up(
        client,
        django_capture_on_commit_callbacks,
        ["recommendations"],
        headers={"User-Agent": FIREFOX},
    )
    events = list(ConsentEvent.objects.select_related("purpose").order_by("id"))
    decisions = {e.purpose.key: e.decision for e in events}
    assert len(events) == len(OPTIONAL)
    assert decisions == {
        key: Decision.GRANTED if key == "recommendations" else Decision.REFUSED for key in OPTIONAL
    }
    for event in events:
        assert event.method == Method.SIGNUP
        assert event.subject_id == user.subject_id
        assert event.notice == purposes[event.purpose.key].notices.order_by("-version").first()
        assert event.ip_truncated == "127.0.0.0"
        assert event.user_agent_family == "Firefox"
        row = ConsentEvent.objects.filter(pk=event.pk).values().get()
        assert not [v for v in row.values() if EMAIL in str(v) or "@" in str(v)]
    states = dict(ConsentState.objects.values_list("purpose__key", "decision"))
    assert states == decisions


def test_signing_up_without_ticking_anything_works_and_refuses_every_optional_purpose(
    client, purposes, django_capture_on_commit_callbacks
):
    user = sign_up(client, django_capture_on_commit_callbacks, [])
    events = ConsentEvent.objects.filter(subject_id=user.subject_id)
    assert sorted(events.values_list("purpose__key", flat=True)) == sorted(OPTIONAL)
    assert set(events.values_list("decision", flat=True)) == {Decision.REFUSED}


def test_signing_up_with_an_address_that_has_an_account_records_nothing_for_anyone(
    client, purposes, django_capture_on_commit_callbacks
):
    existing = make_user(EMAIL)
    hashes = notice_hashes(signup_page(client))
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signup(client, hashes, ["ad-partners", "newsletter"])
    assert response.status_code == 302
    assert get_user_model().objects.filter(email=EMAIL).get() == existing
    assert not ConsentEvent.objects.exists()
    assert not ConsentState.objects.exists()


# Forged or stale forms: refused, nothing recorded


@pytest.mark.parametrize("key", ["lottery", "account-orders"], ids=["unknown", "contract"])
def test_it_refuses_a_purpose_that_is_not_offered_and_records_nothing(client, purposes, key):
    hashes = notice_hashes(signup_page(client))
    response = post_signup(client, hashes, ["newsletter", key])
    assert_refused_and_nothing_recorded(response, f"“{key}” {INVALID_CHOICE}")


def test_it_refuses_a_purpose_retired_after_the_page_was_shown_and_records_nothing(
    client, purposes
):
    hashes = notice_hashes(signup_page(client))
    services.purpose_retire(purpose=purposes["recommendations"])
    response = post_signup(client, hashes, ["recommendations"])
    html = assert_refused_and_nothing_recorded(response, f"“recommendations” {INVALID_CHOICE}")
    assert "recommendations" not in checkboxes(html)


@pytest.mark.parametrize("forged", ["0" * 64, ""], ids=["tampered", "missing"])
def test_it_refuses_a_tampered_notice_hash_and_records_nothing(client, purposes, forged):
    hashes = notice_hashes(signup_page(client))
    assert hashes["notice_newsletter"] == purposes["newsletter"].notices.get().content_hash
    hashes["notice_newsletter"] = forged
    response = post_signup(client, hashes, ["newsletter"])
    assert_refused_and_nothing_recorded(response, NOTICE_CHANGED)
    assert "“Newsletter”" in response.content.decode()


def test_it_refuses_a_notice_changed_while_reading_and_shows_the_new_text_with_its_hash(
    client, purposes
):
    hashes = notice_hashes(signup_page(client))
    purpose = purposes["tailored-offers"]
    old = purpose.notices.get()
    purpose.description = "Discounts chosen from your orders, now also sent by text message."
    purpose.save()
    new = services.purpose_notice_refresh(purpose=purpose)
    assert new.content_hash != old.content_hash

    response = post_signup(client, hashes, ["tailored-offers"])
    html = assert_refused_and_nothing_recorded(response, NOTICE_CHANGED)
    assert "“Tailored offers”" in html
    assert escape(purpose.description) in offer_block(html, "tailored-offers")
    assert notice_hashes(html)["notice_tailored-offers"] == new.content_hash
    assert old.content_hash not in html


# Global Privacy Control


def test_with_gpc_the_ad_partners_box_is_disabled_and_explained(client, purposes):
    html = signup_page(client, headers={"Sec-GPC": "1"})
    boxes = checkboxes(html)
    assert "disabled" in boxes["ad-partners"]
    assert GPC_NOTE in offer_block(html, "ad-partners")
    for key in OPTIONAL:
        if key != "ad-partners":
            assert "disabled" not in boxes[key]
            assert GPC_NOTE not in offer_block(html, key)


def test_with_gpc_posting_ad_partners_anyway_is_refused_and_records_nothing(client, purposes):
    gpc = {"Sec-GPC": "1"}
    hashes = notice_hashes(signup_page(client, headers=gpc))
    response = post_signup(client, hashes, ["ad-partners"], headers=gpc)
    assert_refused_and_nothing_recorded(response, f"“ad-partners” {INVALID_CHOICE}")


def test_with_gpc_signing_up_records_ad_partners_as_refused_by_gpc(
    client, purposes, django_capture_on_commit_callbacks
):
    user = sign_up(
        client, django_capture_on_commit_callbacks, ["newsletter"], headers={"Sec-GPC": "1"}
    )
    events = {
        e.purpose.key: e
        for e in ConsentEvent.objects.filter(subject_id=user.subject_id).select_related("purpose")
    }
    assert sorted(events) == sorted(OPTIONAL)
    assert (events["ad-partners"].decision, events["ad-partners"].method) == (
        Decision.REFUSED,
        Method.GPC,
    )
    assert events["newsletter"].decision == Decision.GRANTED
    assert {e.method for k, e in events.items() if k != "ad-partners"} == {Method.SIGNUP}


@pytest.mark.parametrize("value", ["0", "true"])
def test_a_gpc_header_other_than_1_changes_nothing(
    client, purposes, django_capture_on_commit_callbacks, value
):
    headers = {"Sec-GPC": value}
    html = signup_page(client, headers=headers)
    assert "disabled" not in checkboxes(html)["ad-partners"]
    assert GPC_NOTE not in html
    user = sign_up(client, django_capture_on_commit_callbacks, ["ad-partners"], headers=headers)
    event = ConsentEvent.objects.get(subject_id=user.subject_id, purpose=purposes["ad-partners"])
    assert (event.decision, event.method) == (Decision.GRANTED, Method.SIGNUP)


def test_a_purpose_retired_while_the_form_is_being_saved_keeps_nothing(rf, purposes):
    """The moment between validating and saving: the account and its choices go
    together or not at all, and the form says why."""
    from allauth.core import context

    from consents.signup import AtomicSignupForm

    request = rf.post("/accounts/signup/")
    request.gpc = False
    request.session = {}
    with context.request_context(request):
        form = AtomicSignupForm(
            data={
                "email": "race@example.com",
                "password1": "a-long-Test-passphrase-42",
                "password2": "a-long-Test-passphrase-42",
                "purposes": ["newsletter"],
                **{
                    f"notice_{p.key}": p.notices.order_by("-version").first().content_hash
                    for p in purposes.values()
                    if p.is_optional
                },
            }
        )
        assert form.is_valid(), form.errors
        services.purpose_retire(purpose=purposes["newsletter"])
        user, response = form.try_save(request)

    assert user is None and response.status_code == 400
    assert "is no longer offered" in str(form.non_field_errors())
    assert not get_user_model().objects.filter(email="race@example.com").exists()
    assert not ConsentEvent.objects.exists()
