"""Staff change what a purpose does (issue 8, item 8). A change that widens
processing asks everyone who granted it again, by email and in the portal, and
their grant lapses at the effective date unless they confirm it under the new
notice. A change that narrows processing asks nobody."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import formats, timezone, translation

from consents import services
from consents.models import (
    ConsentEvent,
    ConsentState,
    DataCategory,
    Decision,
    Method,
    Purpose,
    ReconsentRequest,
)
from consents.selectors import reconsent_pending
from policies.tasks import expire_changed_grants
from portal.models import OutboxItem
from tests.conftest import make_user, switch_form

DECIDE_LINK = r"https?://[^/\s\"<>]+(/reconsent/[^/\s\"<>]+/)"


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def recommendations(purposes) -> Purpose:
    return purposes["recommendations"]


@pytest.fixture
def grantees(recommendations, customer):
    """Two people granted recommendations (one reads Portuguese); a third withdrew."""
    portuguese = make_user("ana@example.com", language="pt-br")
    withdrew = make_user("withdrew@example.com")
    for person in (customer, portuguese, withdrew):
        grant(person, recommendations)
    services.consent_record(
        subject_id=withdrew.subject_id,
        purpose=recommendations,
        decision=Decision.WITHDRAWN,
        method=Method.PANEL,
    )
    return {"en": customer, "pt": portuguese, "withdrew": withdrew}


def grant(person, purpose: Purpose) -> ConsentEvent:
    event = services.consent_record(
        subject_id=person.subject_id,
        purpose=purpose,
        decision=Decision.GRANTED,
        method=Method.PANEL,
    )
    assert event is not None
    return event


def state(person, purpose: Purpose) -> ConsentState:
    return ConsentState.objects.select_related("event").get(
        subject_id=person.subject_id, purpose=purpose
    )


def widen(purpose: Purpose, staff, capture, **kwargs) -> services.PurposeUpdated:
    """Add survey answers and a recipient, keep the data twice as long."""
    categories = [*purpose.data_categories.all(), DataCategory.objects.get(key="survey-answers")]
    with capture(execute=True):  # the outbox's delivery task, after the commit
        return services.purpose_update(
            purpose=purpose,
            acting_user=staff,
            values={
                "retention_days": 730,
                "recipients": "Insight Analytics Ltda.",
                "recipients_pt": "Insight Analytics Ltda.",
            },
            data_categories=categories,
            **kwargs,
        )


def pending(person) -> list[str]:
    return [ask.purpose.key for ask in reconsent_pending(subject_id=person.subject_id)]


def message_to(email: str) -> mail.EmailMultiAlternatives:
    found = [m for m in mail.outbox if m.to == [email]]
    assert len(found) == 1, [m.to for m in mail.outbox]
    return found[0]


def decide_link(message) -> str:
    match = re.search(DECIDE_LINK, message.body)
    assert match, message.body
    return match.group(1)


def test_a_widening_change_asks_every_grantee_again(
    recommendations, grantees, staff, django_capture_on_commit_callbacks
):
    before = recommendations.notices.order_by("-version").first()
    updated = widen(recommendations, staff, django_capture_on_commit_callbacks)
    assert updated.notice.version == before.version + 1
    request = updated.reconsent
    assert request is not None
    assert (request.purpose, request.notice, request.previous_notice, request.created_by) == (
        recommendations,
        updated.notice,
        before,
        staff,
    )
    assert request.effective_date == timezone.localdate() + timedelta(days=30)
    assert [d["kind"] for d in request.differences] == [
        "data_categories_added",
        "recipients_added",
        "retention_longer",
    ]
    assert updated.asked == 2
    assert pending(grantees["en"]) == pending(grantees["pt"]) == ["recommendations"]
    assert pending(grantees["withdrew"]) == []
    # Asked, not taken away: the grant stands until the effective date.
    assert state(grantees["en"], recommendations).decision == Decision.GRANTED


def test_each_grantee_gets_one_email_in_their_language_naming_the_differences(
    recommendations, grantees, staff, django_capture_on_commit_callbacks
):
    updated = widen(recommendations, staff, django_capture_on_commit_callbacks)
    assert OutboxItem.objects.count() == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["ana@example.com", "customer@example.com"]
    english = message_to("customer@example.com")
    date = formats.date_format(updated.reconsent.effective_date, "DATE_FORMAT")
    assert english.subject == "Please decide again: “Personalised recommendations” is changing"
    html = english.alternatives[0][0]
    for body in (english.body, html):
        assert "New data used: Survey answers." in body
        assert "New recipients: Insight Analytics Ltda." in body
        assert "Kept longer: 730 days instead of 365." in body
        assert f"it ends on {date}" in body
        assert "/me/#purpose-recommendations" in body
        assert "/reconsent/" in body
    portuguese = message_to("ana@example.com")
    with translation.override("pt-br"):
        date_pt = formats.date_format(updated.reconsent.effective_date, "DATE_FORMAT")
    assert "Recomendações personalizadas" in portuguese.subject
    html_pt = portuguese.alternatives[0][0]
    assert '<html lang="pt-br">' in html_pt
    for body in (portuguese.body, html_pt):
        assert "Novos dados usados: Respostas a pesquisas." in body
        assert "Guardado por mais tempo: 730 dias em vez de 365." in body
        assert date_pt in body
        assert "New data used" not in body


def test_the_panel_and_the_banner_ask_again_with_the_date_and_both_buttons(
    client, recommendations, grantees, staff, django_capture_on_commit_callbacks
):
    updated = widen(recommendations, staff, django_capture_on_commit_callbacks)
    date = formats.date_format(updated.reconsent.effective_date, "DATE_FORMAT")
    client.force_login(grantees["en"])
    for path in ("/", "/me/"):
        html = client.get(path).content.decode()
        assert "Please decide again" in html
        assert "New data used: Survey answers." in html
        assert f"Lapses on {date} unless you confirm it." in html
        assert 'name="reconfirm" value="1"' in html
        assert 'name="decision" value="withdrawn"' in html
    assert "Keep it on under the new terms" in client.get("/me/").content.decode()
    client.force_login(grantees["withdrew"])
    assert "Please decide again" not in client.get("/me/").content.decode()


def test_confirming_keeps_the_grant_under_the_new_notice_and_it_does_not_lapse(
    client, recommendations, grantees, staff, django_capture_on_commit_callbacks
):
    updated = widen(recommendations, staff, django_capture_on_commit_callbacks)
    client.force_login(grantees["en"])
    response = client.post(
        "/me/consents/recommendations/", switch_form("recommendations", "granted", reconfirm="1")
    )
    assert response.status_code == 302
    kept = state(grantees["en"], recommendations)
    assert (kept.decision, kept.event.notice, kept.event.method) == (
        Decision.GRANTED,
        updated.notice,
        Method.PANEL,
    )
    assert pending(grantees["en"]) == []
    assert "Please decide again" not in client.get("/me/").content.decode()
    ReconsentRequest.objects.update(effective_date=timezone.localdate())  # test set-up: time passes
    assert expire_changed_grants() == 1  # the Portuguese grantee, who never decided
    assert state(grantees["en"], recommendations).decision == Decision.GRANTED


def test_the_emailed_link_shows_buttons_on_get_and_decides_only_on_post(
    recommendations, grantees, staff, django_capture_on_commit_callbacks
):
    updated = widen(recommendations, staff, django_capture_on_commit_callbacks)
    browser = Client()
    keep = decide_link(message_to("customer@example.com"))
    page = browser.get(keep)
    assert page.status_code == 200
    html = page.content.decode()
    assert "New data used: Survey answers." in html
    assert "Keep it on under the new terms" in html and "Withdraw my consent" in html
    assert pending(grantees["en"]) == ["recommendations"]  # a GET decides nothing
    assert browser.post(keep, {"decision": "granted"}).status_code == 302
    kept = state(grantees["en"], recommendations)
    assert (kept.event.notice, kept.event.method) == (updated.notice, Method.EMAIL_LINK)
    events = ConsentEvent.objects.count()
    browser.post(keep, {"decision": "granted"})  # again: nothing left to decide
    assert ConsentEvent.objects.count() == events
    assert "nothing left to decide" in browser.get(keep).content.decode()

    withdraw = decide_link(message_to("ana@example.com"))
    assert browser.post(withdraw, {"decision": "withdrawn"}).status_code == 302
    assert state(grantees["pt"], recommendations).decision == Decision.WITHDRAWN
    assert pending(grantees["pt"]) == []


def test_a_tampered_or_unknown_link_decides_nothing(
    recommendations, grantees, staff, django_capture_on_commit_callbacks
):
    widen(recommendations, staff, django_capture_on_commit_callbacks)
    keep = decide_link(message_to("customer@example.com"))
    events = ConsentEvent.objects.count()
    assert Client().post(keep[:-3] + "xx/", {"decision": "granted"}).status_code == 400
    assert Client().post(keep, {"decision": "maybe"}).status_code == 400
    assert Client().put(keep).status_code == 405
    assert ConsentEvent.objects.count() == events


def test_grants_never_confirmed_lapse_at_the_effective_date(
    recommendations, grantees, staff, django_capture_on_commit_callbacks
):
    updated = widen(recommendations, staff, django_capture_on_commit_callbacks)
    assert expire_changed_grants() == 0  # the notice period is not over
    ReconsentRequest.objects.filter(pk=updated.reconsent.pk).update(
        effective_date=timezone.localdate()
    )  # test set-up: the effective date has come
    assert expire_changed_grants() == 2
    for person in (grantees["en"], grantees["pt"]):
        lapsed = state(person, recommendations)
        assert (lapsed.decision, lapsed.event.method) == (Decision.WITHDRAWN, Method.EXPIRY)
        assert pending(person) == []
    updated.reconsent.refresh_from_db()
    assert updated.reconsent.lapsed_at is not None
    assert expire_changed_grants() == 0
    # Whoever grants now does so under the new notice, and keeps it.
    grant(grantees["en"], recommendations)
    assert state(grantees["en"], recommendations).event.notice == updated.notice


@pytest.mark.parametrize(
    "values, removed_category, kinds",
    [
        ({"retention_days": 90}, None, ["retention_shorter"]),
        ({}, "browsing", ["data_categories_removed"]),
        ({"description": "Suggestions, in new words."}, None, []),
    ],
)
def test_a_narrowing_change_asks_nobody_again(
    recommendations,
    grantees,
    staff,
    django_capture_on_commit_callbacks,
    values,
    removed_category,
    kinds,
):
    categories = None
    if removed_category:
        categories = recommendations.data_categories.exclude(key=removed_category)
    before = recommendations.notices.order_by("-version").first()
    with django_capture_on_commit_callbacks(execute=True):
        updated = services.purpose_update(
            purpose=recommendations, acting_user=staff, values=values, data_categories=categories
        )
    assert updated.notice.version == before.version + 1
    assert [d["kind"] for d in updated.differences] == kinds
    assert updated.reconsent is None
    assert not ReconsentRequest.objects.exists()
    assert not OutboxItem.objects.exists()
    assert pending(grantees["en"]) == []


def test_a_category_turned_sensitive_asks_the_grantees_of_its_purposes_again(
    recommendations, grantees, staff, django_capture_on_commit_callbacks
):
    DataCategory.objects.filter(key="interests").update(sensitive=True)  # as the admin saves it
    with django_capture_on_commit_callbacks(execute=True):
        updated = services.purpose_update(purpose=recommendations, acting_user=staff)
    assert [d["kind"] for d in updated.differences] == ["sensitive_categories_added"]
    assert pending(grantees["en"]) == ["recommendations"]
    assert (
        "Sensitive data now used: Interests you tell us." in message_to("customer@example.com").body
    )


def test_an_effective_date_within_the_notice_period_is_refused(
    recommendations, grantees, staff, django_capture_on_commit_callbacks
):
    too_soon = timezone.localdate() + timedelta(days=29)
    with pytest.raises(services.ConsentError):
        widen(recommendations, staff, django_capture_on_commit_callbacks, effective_date=too_soon)
    recommendations.refresh_from_db()
    assert recommendations.retention_days == 365  # nothing was saved
    assert not ReconsentRequest.objects.exists()
    later = timezone.localdate() + timedelta(days=45)
    updated = widen(
        recommendations, staff, django_capture_on_commit_callbacks, effective_date=later
    )
    assert updated.reconsent.effective_date == later


# The admin ------------------------------------------------------------------------


def change_form(purpose: Purpose, **changes) -> dict:
    """The admin change form's fields as a browser would post them."""
    data = {
        name: getattr(purpose, name)
        for name in (
            "key",
            "legal_basis",
            "order",
            "dpv_code",
            "name",
            "name_pt",
            "description",
            "description_pt",
            "benefit",
            "benefit_pt",
            "retention_days",
            "recipients",
            "recipients_pt",
            "transfers_abroad",
            "transfers_abroad_pt",
        )
    }
    data["data_categories"] = [c.pk for c in purpose.data_categories.all()]
    if purpose.is_sale_or_sharing:
        data["is_sale_or_sharing"] = "on"
    if purpose.offered_in_newsletter:
        data["offered_in_newsletter"] = "on"
    notices = list(purpose.notices.order_by("-version"))
    data.update(
        {
            "notices-TOTAL_FORMS": str(len(notices)),
            "notices-INITIAL_FORMS": str(len(notices)),
            "notices-MIN_NUM_FORMS": "0",
            "notices-MAX_NUM_FORMS": "1000",
        }
    )
    for index, notice in enumerate(notices):
        data[f"notices-{index}-id"] = notice.pk
        data[f"notices-{index}-purpose"] = purpose.pk
    data.update(changes)
    return data


def test_the_admin_says_before_saving_that_a_change_widens_and_how_many_are_asked(
    client, recommendations, grantees, staff, django_capture_on_commit_callbacks
):
    client.force_login(staff)
    url = reverse("admin:consents_purpose_change", args=[recommendations.pk])
    survey = DataCategory.objects.get(key="survey-answers")
    data = change_form(
        recommendations,
        data_categories=[*recommendations.data_categories.values_list("pk", flat=True), survey.pk],
    )
    notices = recommendations.notices.count()
    response = client.post(url, data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "This change widens what the purpose does: New data used: Survey answers." in html
    assert "2 people who granted it will be emailed and asked again" in html
    assert recommendations.notices.count() == notices  # nothing saved yet
    assert not ReconsentRequest.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {**data, "confirm_reconsent": "on"})
    assert response.status_code == 302
    request = ReconsentRequest.objects.get()
    assert (request.created_by, request.reason) == (staff, ReconsentRequest.Reason.NOTICE)
    assert recommendations.notices.count() == notices + 1
    assert sorted(m.to[0] for m in mail.outbox) == ["ana@example.com", "customer@example.com"]
    assert pending(grantees["pt"]) == ["recommendations"]
    followed = client.get(response["Location"]).content.decode()
    assert "2 people were asked again by email" in followed


def test_the_admin_saves_a_narrowing_change_without_asking(
    client, recommendations, grantees, staff
):
    client.force_login(staff)
    url = reverse("admin:consents_purpose_change", args=[recommendations.pk])
    response = client.post(url, change_form(recommendations, retention_days=30))
    assert response.status_code == 302
    recommendations.refresh_from_db()
    assert recommendations.retention_days == 30
    assert not ReconsentRequest.objects.exists()
    assert not OutboxItem.objects.exists()


def test_the_admin_warns_before_a_category_used_by_granted_purposes_turns_sensitive(
    client, recommendations, grantees, staff, django_capture_on_commit_callbacks
):
    client.force_login(staff)
    interests = DataCategory.objects.get(key="interests")
    url = reverse("admin:consents_datacategory_change", args=[interests.pk])
    data = {
        "key": interests.key,
        "name": interests.name,
        "name_pt": interests.name_pt,
        "description": interests.description,
        "description_pt": interests.description_pt,
        "dpv_code": interests.dpv_code,
        "sensitive": "on",
    }
    response = client.post(url, data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Sensitive data widens what Personalised recommendations does: 2 people" in html
    interests.refresh_from_db()
    assert not interests.sensitive
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {**data, "confirm_reconsent": "on"})
    assert response.status_code == 302
    request = ReconsentRequest.objects.get()
    assert [d["kind"] for d in request.differences] == ["sensitive_categories_added"]
    assert len(mail.outbox) == 2
    assert pending(grantees["en"]) == ["recommendations"]


def test_confirming_with_htmx_answers_the_row_without_the_question(
    client, recommendations, grantees, staff, django_capture_on_commit_callbacks
):
    widen(recommendations, staff, django_capture_on_commit_callbacks)
    client.force_login(grantees["en"])
    response = client.post(
        "/me/consents/recommendations/",
        switch_form("recommendations", "granted", reconfirm="1"),
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="purpose-recommendations"' in html
    assert "“Personalised recommendations” is on." in html
    assert "Keep it on under the new terms" not in html
    assert pending(grantees["en"]) == []


def test_staff_can_read_the_requests_but_not_change_them(
    client, recommendations, grantees, staff, django_capture_on_commit_callbacks
):
    updated = widen(recommendations, staff, django_capture_on_commit_callbacks)
    client.force_login(staff)
    listing = client.get(reverse("admin:consents_reconsentrequest_changelist"))
    assert listing.status_code == 200
    assert "Personalised recommendations" in listing.content.decode()
    url = reverse("admin:consents_reconsentrequest_change", args=[updated.reconsent.pk])
    before = updated.reconsent.effective_date
    client.post(url, {"effective_date": "2000-01-01"})
    updated.reconsent.refresh_from_db()
    assert updated.reconsent.effective_date == before
    assert client.get(reverse("admin:consents_reconsentrequest_add")).status_code == 403
