"""Codes the portal publishes: sensitive data rests on explicit consent (GDPR
Art. 9(2)(a), LGPD Art. 11, I), and every DPV code is a term of the shipped
W3C DPV release, checked when staff save it."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from consents import services
from consents.dpv import DPV_RELEASE, DPVTermValidator, dpv_terms
from consents.models import (
    EXPLICIT_CONSENT_CODES,
    LEGAL_BASIS_CODES,
    DataCategory,
    Decision,
    LegalBasis,
    Method,
    Purpose,
)
from consents.receipts import receipt_payload
from tests.consents.test_transparency import facts, privacy_json, purpose_card, ropa_rows


def grant(user, purpose):
    return services.consent_record(
        subject_id=user.subject_id,
        purpose=purpose,
        decision=Decision.GRANTED,
        method=Method.PANEL,
        facts=services.RequestFacts(ip_truncated="127.0.0.0"),
    )


# Sensitive data: explicit consent, everywhere it is stated


def test_the_privacy_page_says_sensitive_data_rests_on_explicit_consent(client, purposes):
    html = client.get("/privacy/").content.decode()
    diet = facts(purpose_card(html, "dietary-suggestions"))["Legal basis"]
    assert diet == "Explicit consent (LGPD Art. 11, I; GDPR Art. 6(1)(a) and Art. 9(2)(a))"
    assert "Art. 7, I" not in diet
    ordinary = facts(purpose_card(html, "recommendations"))["Legal basis"]
    assert ordinary == "Consent (LGPD Art. 7, I; GDPR Art. 6(1)(a))"


def test_the_portuguese_privacy_page_names_explicit_consent(client, purposes, settings):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "pt-br"
    html = client.get("/privacy/").content.decode()
    diet = facts(purpose_card(html, "dietary-suggestions"))["Base legal"]
    assert diet.startswith("Consentimento explícito (LGPD Art. 11, I;")


def test_privacy_json_gives_the_sensitive_purpose_its_own_articles(client, purposes):
    by_key = {p["key"]: p for p in privacy_json(client)["purposes"]}
    diet = by_key["dietary-suggestions"]["legalBasis"]
    assert diet["gdpr"] == "GDPR Art. 6(1)(a) and Art. 9(2)(a)"
    assert diet["lgpd"] == "LGPD Art. 11, I"
    assert diet["dpv"] == "dpv:ExplicitlyExpressedConsent"
    assert diet["explicitConsent"] is True
    assert by_key["newsletter"]["legalBasis"]["lgpd"] == "LGPD Art. 7, I"
    assert by_key["newsletter"]["legalBasis"]["explicitConsent"] is False


def test_a_receipt_for_sensitive_data_states_explicit_consent(customer, purposes):
    sensitive = receipt_payload(grant(customer, purposes["dietary-suggestions"]))
    assert sensitive["sensitive"] is True
    assert sensitive["legalBasis"]["gdpr"] == "GDPR Art. 6(1)(a) and Art. 9(2)(a)"
    assert sensitive["legalBasis"]["lgpd"] == "LGPD Art. 11, I"
    ordinary = receipt_payload(grant(customer, purposes["newsletter"]))
    assert ordinary["legalBasis"]["lgpd"] == "LGPD Art. 7, I"


def test_a_receipt_keeps_the_basis_of_the_notice_that_was_agreed_to(customer, purposes):
    """Receipts describe the notice agreed to: adding a sensitive category later
    does not rewrite what an earlier grant rested on."""
    purpose = purposes["recommendations"]
    event = grant(customer, purpose)
    purpose.data_categories.add(DataCategory.objects.get(key="dietary-health"))
    services.purpose_notice_refresh(purpose=purpose)
    assert receipt_payload(event)["legalBasis"]["lgpd"] == "LGPD Art. 7, I"


def test_the_record_of_processing_gives_the_sensitive_purpose_article_9(client, staff, purposes):
    client.force_login(staff)
    header, *rows = ropa_rows(client)
    records = [dict(zip(header, row, strict=True)) for row in rows]
    records = {r["purpose key"]: r for r in records}
    diet = records["dietary-suggestions"]
    assert diet["legal basis"] == "Explicit consent"
    assert diet["GDPR article"] == "GDPR Art. 6(1)(a) and Art. 9(2)(a)"
    assert diet["LGPD article"] == "LGPD Art. 11, I"
    assert records["newsletter"]["LGPD article"] == "LGPD Art. 7, I"


# DPV codes


def test_every_dpv_code_the_portal_publishes_is_a_term_of_the_shipped_release(
    client, customer, purposes
):
    published: set[str] = set()
    for entry in privacy_json(client)["purposes"]:
        published.add(entry["dpv:hasPurpose"])
        published.add(entry["legalBasis"]["dpv"])
        published.update(c["dpv:hasPersonalData"] for c in entry["dataCategories"])
    for purpose in Purpose.objects.filter(legal_basis=LegalBasis.CONSENT):
        published.update(
            receipt_payload(grant(customer, purpose))["services"][0]["purposes"][0][
                "purposeCategory"
            ]
        )
    published.update(codes["dpv"] for codes in LEGAL_BASIS_CODES.values())
    published.add(EXPLICIT_CONSENT_CODES["dpv"])
    assert len(published) > 10
    assert published - dpv_terms() == set()


def test_the_shipped_term_list_is_a_whole_dpv_release():
    terms = dpv_terms()
    assert DPV_RELEASE == "2.3"
    assert len(terms) > 1000
    assert {"dpv:Consent", "dpv:Personalisation", "pd:PhysicalAddress", "pd:Identifier"} <= terms
    assert "pd:PostalAddress" not in terms and "pd:OnlineIdentifier" not in terms


@pytest.mark.parametrize(
    ("prefix", "code", "message"),
    [
        ("pd", "pd:PostalAddress", "Did you mean pd:PhysicalAddress"),
        ("pd", "pd:Zzzzzz", "is not a term of W3C DPV 2.3"),
        ("pd", "dpv:Marketing", "starts with “pd:”"),
        ("dpv", "pd:EmailAddress", "starts with “dpv:”"),
        ("dpv", "dpv:marketing", "Did you mean dpv:Marketing"),
    ],
)
def test_a_code_outside_the_vocabulary_is_refused_with_a_suggestion(prefix, code, message):
    with pytest.raises(ValidationError) as refused:
        DPVTermValidator(prefix)(code)
    assert message in " ".join(refused.value.messages)


def test_an_empty_or_known_code_is_accepted():
    DPVTermValidator("pd")("")
    DPVTermValidator("pd")("pd:EmailAddress")
    DPVTermValidator("dpv")("dpv:DirectMarketing")


def test_staff_saving_a_category_with_an_unknown_code_get_a_message_and_nothing_changes(
    client, staff, purposes
):
    client.force_login(staff)
    category = DataCategory.objects.get(key="postal-address")
    url = reverse("admin:consents_datacategory_change", args=[category.pk])
    response = client.post(
        url,
        {
            "key": category.key,
            "name": category.name,
            "name_pt": category.name_pt,
            "description": "",
            "description_pt": "",
            "dpv_code": "pd:PostalAddress",
        },
    )
    assert response.status_code == 200
    assert "Did you mean pd:PhysicalAddress" in response.content.decode()
    category.refresh_from_db()
    assert category.dpv_code == "pd:PhysicalAddress"


def test_staff_saving_a_purpose_with_an_unknown_code_get_a_message_and_nothing_changes(
    client, staff, purposes
):
    client.force_login(staff)
    purpose = purposes["newsletter"]
    notices = purpose.notices.count()
    url = reverse("admin:consents_purpose_change", args=[purpose.pk])
    page = client.get(url)
    assert page.status_code == 200
    response = client.post(
        url,
        {
            "key": purpose.key,
            "legal_basis": purpose.legal_basis,
            "data_categories": [c.pk for c in purpose.data_categories.all()],
            "order": purpose.order,
            "dpv_code": "dpv:NewsletterMarketing",
            "name": purpose.name,
            "name_pt": purpose.name_pt,
            "description": purpose.description,
            "description_pt": purpose.description_pt,
            "benefit": purpose.benefit,
            "benefit_pt": purpose.benefit_pt,
            "retention_days": purpose.retention_days,
            "recipients": purpose.recipients,
            "recipients_pt": purpose.recipients_pt,
            "transfers_abroad": purpose.transfers_abroad,
            "transfers_abroad_pt": purpose.transfers_abroad_pt,
            "notices-TOTAL_FORMS": "0",
            "notices-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "is not a term of W3C DPV 2.3" in response.content.decode()
    purpose.refresh_from_db()
    assert purpose.dpv_code == "dpv:DirectMarketing"
    assert purpose.notices.count() == notices


def test_the_demo_inventory_uses_dpv_terms_only(purposes):
    for category in DataCategory.objects.all():
        DPVTermValidator("pd")(category.dpv_code)
    for purpose in Purpose.objects.all():
        DPVTermValidator("dpv")(purpose.dpv_code)
    assert json.dumps(sorted(DataCategory.objects.values_list("dpv_code", flat=True)))
