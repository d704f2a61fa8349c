"""Transparency: the privacy page, its JSON, the GPC file, the record of
processing for staff, and notice versioning through the admin."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser

from django.conf import settings
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from django.utils.html import escape

from consents import services
from consents.admin import PurposeAdmin
from consents.models import Decision, Method, Purpose, PurposeNotice, legal_basis_codes

ACTIVE = [
    "account-orders",
    "newsletter",
    "recommendations",
    "tailored-offers",
    "product-research",
    "ad-partners",
    "dietary-suggestions",
]
ART_30_COLUMNS = [
    "controller",
    "controller contact",
    "data protection officer",
    "purpose",
    "purpose key",
    "description",
    "legal basis",
    "GDPR article",
    "LGPD article",
    "categories of data subjects",
    "categories of personal data",
    "special categories",
    "recipients",
    "transfers abroad",
    "erasure time limit (days)",
    "sale or sharing",
    "security measures",
    "DPV purpose",
    "erasure rule (enforced)",
]


def purpose_card(html: str, key: str) -> str:
    match = re.search(rf'<article class="card purpose" id="purpose-{key}".*?</article>', html, re.S)
    assert match, f"no card for {key}"
    return match.group(0)


def facts(card: str) -> dict[str, str]:
    """The card's <dt>/<dd> pairs, tags stripped, whitespace collapsed."""
    pairs = re.findall(r"<dt>(.*?)</dt>\s*<dd>(.*?)</dd>", card, re.S)
    return {dt.strip(): " ".join(re.sub(r"<[^>]+>", "", dd).split()) for dt, dd in pairs}


def privacy_json(client) -> dict:
    response = client.get("/privacy.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return json.loads(response.content)


def ropa_rows(client) -> list[list[str]]:
    response = client.get(reverse("admin:consents_purpose_ropa"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="record-of-processing-')
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


class _FormFields(HTMLParser):
    """What a browser would submit for one <form>: inputs, selected options, textareas."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.fields: dict[str, list[str]] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def _add(self, name: str | None, value: str) -> None:
        if name:
            self.fields.setdefault(name, []).append(value)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id") == self.form_id:
            self.inside = True
        if not self.inside:
            return
        if tag == "input":
            kind = a.get("type", "text")
            if kind in ("submit", "button", "image", "reset", "file"):
                return
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self._add(a.get("name"), a.get("value") or "on")
                return
            self._add(a.get("name"), a.get("value") or "")
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and "selected" in a:
            self._add(self._select, a.get("value") or "")
        elif tag == "textarea":
            self._textarea = a.get("name")
            self._add(self._textarea, "")

    def handle_data(self, data):
        if self.inside and self._textarea:
            self.fields[self._textarea][-1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            if self._textarea:
                # A browser drops the newline right after <textarea>.
                value = self.fields[self._textarea][-1]
                self.fields[self._textarea][-1] = value.removeprefix("\n")
            self._textarea = None


def change_form_fields(client, purpose) -> dict[str, list[str]]:
    response = client.get(reverse("admin:consents_purpose_change", args=[purpose.pk]))
    assert response.status_code == 200
    parser = _FormFields("purpose_form")
    parser.feed(response.content.decode())
    assert parser.fields["key"] == [purpose.key]
    return parser.fields


# The privacy page


def test_the_privacy_page_explains_every_active_purpose_fully(client, purposes):
    response = client.get("/privacy/")
    assert response.status_code == 200
    html = response.content.decode()
    for key in ACTIVE:
        purpose = purposes[key]
        card = purpose_card(html, key)
        shown = facts(card)
        sensitive = purpose.data_categories.filter(sensitive=True).exists()
        codes = legal_basis_codes(purpose.legal_basis, sensitive=sensitive)
        assert escape(purpose.name) in card
        assert escape(purpose.description) in card
        for category in purpose.data_categories.all():
            assert category.name in shown["Data used"]
        assert shown["Legal basis"] == (f"{codes['label']} ({codes['lgpd']}; {codes['gdpr']})")
        assert f"{purpose.retention_days} days after" in shown["How long we keep it"]
        assert shown["Who receives it"] == (purpose.recipients or "Only us.")
        assert shown["Transfers abroad"] == (
            purpose.transfers_abroad or "None: the data is not sent abroad."
        )
        assert shown["How to stop it"]
        if purpose.benefit:
            assert shown["What you get"] == purpose.benefit
    assert "United States, under standard contractual clauses." in purpose_card(html, "ad-partners")
    assert facts(purpose_card(html, "newsletter"))["How to stop it"].startswith("Withdraw")
    who = facts(
        re.search(
            r'<section class="card" aria-labelledby="who-title">.*?</section>', html, re.S
        ).group(0)
    )
    assert settings.CONTROLLER_NAME in who["Controller"]
    assert settings.CONTROLLER_EMAIL in who["Controller"]
    assert settings.DPO_NAME in who["Data protection officer (encarregado)"]
    assert settings.DPO_EMAIL in who["Data protection officer (encarregado)"]


def test_the_privacy_page_is_in_portuguese_with_the_language_cookie(client, purposes):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "pt-br"
    html = client.get("/privacy/").content.decode()
    card = purpose_card(html, "recommendations")
    assert "Recomendações personalizadas" in card
    assert "Personalised recommendations" not in html
    assert escape(purposes["ad-partners"].transfers_abroad_pt) in purpose_card(html, "ad-partners")
    assert "Consentimento (LGPD Art. 7, I; GDPR Art. 6(1)(a))" in card


def test_a_retired_purpose_disappears_from_the_privacy_page_and_its_json(client, purposes):
    services.purpose_retire(purpose=purposes["product-research"])
    html = client.get("/privacy/").content.decode()
    assert 'id="purpose-product-research"' not in html
    assert "Product research surveys" not in html
    assert 'id="purpose-newsletter"' in html
    keys = [p["key"] for p in privacy_json(client)["purposes"]]
    assert keys == [k for k in ACTIVE if k != "product-research"]


def test_privacy_json_gives_dpv_codes_legal_bases_and_the_current_notice_hash(client, purposes):
    body = privacy_json(client)
    assert body["controller"]["email"] == settings.CONTROLLER_EMAIL
    assert body["dataProtectionOfficer"]["email"] == settings.DPO_EMAIL
    by_key = {p["key"]: p for p in body["purposes"]}
    assert list(by_key) == ACTIVE
    for key, entry in by_key.items():
        purpose = purposes[key]
        assert entry["dpv:hasPurpose"] == purpose.dpv_code and entry["dpv:hasPurpose"]
        sensitive = purpose.data_categories.filter(sensitive=True).exists()
        codes = legal_basis_codes(purpose.legal_basis, sensitive=sensitive)
        assert entry["legalBasis"] == {
            "code": purpose.legal_basis,
            "gdpr": codes["gdpr"],
            "lgpd": codes["lgpd"],
            "dpv": codes["dpv"],
            "explicitConsent": sensitive,
        }
        assert {c["key"]: c["dpv:hasPersonalData"] for c in entry["dataCategories"]} == {
            c.key: c.dpv_code for c in purpose.data_categories.all()
        }
        assert all(c["dpv:hasPersonalData"] for c in entry["dataCategories"])
        current = purpose.notices.order_by("-version").first()
        assert entry["notice"] == {"version": current.version, "sha256": current.content_hash}
    assert by_key["ad-partners"]["legalBasis"]["lgpd"] == "LGPD Art. 7, I"
    assert by_key["account-orders"]["legalBasis"]["dpv"] == "dpv:Contract"
    assert by_key["dietary-suggestions"]["dataCategories"][0]["sensitive"] is True

    purpose = purposes["newsletter"]
    purpose.description = "Two emails a week."
    purpose.save()
    new = services.purpose_notice_refresh(purpose=purpose)
    entry = {p["key"]: p for p in privacy_json(client)["purposes"]}["newsletter"]
    assert entry["notice"] == {"version": 2, "sha256": new.content_hash}
    assert entry["description"]["en"] == "Two emails a week."


def test_gpc_json_declares_support(client, db):
    response = client.get("/.well-known/gpc.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert body == {"gpc": True, "lastUpdate": settings.GPC_LAST_UPDATE}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", body["lastUpdate"])


# The record of processing (GDPR Art. 30)


def test_staff_download_the_record_of_processing_with_one_row_per_active_purpose(
    client, staff, purposes
):
    services.purpose_retire(purpose=purposes["product-research"])
    client.force_login(staff)
    header, *rows = ropa_rows(client)
    assert header == ART_30_COLUMNS
    records = [dict(zip(header, row, strict=True)) for row in rows]
    # The records the portal keeps to run itself follow the purposes (tests/rights).
    records = [r for r in records if not r["purpose key"].startswith("record:")]
    assert [r["purpose key"] for r in records] == [k for k in ACTIVE if k != "product-research"]
    ads = next(r for r in records if r["purpose key"] == "ad-partners")
    assert ads["controller"] == settings.CONTROLLER_NAME
    assert settings.DPO_EMAIL in ads["data protection officer"]
    assert (ads["GDPR article"], ads["LGPD article"]) == ("GDPR Art. 6(1)(a)", "LGPD Art. 7, I")
    assert ads["transfers abroad"] == "United States, under standard contractual clauses."
    assert ads["erasure time limit (days)"] == "90"
    assert ads["sale or sharing"] == "yes"
    diet = next(r for r in records if r["purpose key"] == "dietary-suggestions")
    assert diet["special categories"] == "Allergies and dietary restrictions"
    contract = next(r for r in records if r["purpose key"] == "account-orders")
    assert contract["GDPR article"] == "GDPR Art. 6(1)(b)"


def test_a_customer_cannot_download_the_record_of_processing(client, customer, purposes):
    client.force_login(customer)
    url = reverse("admin:consents_purpose_ropa")
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login") + "?next=")
    assert b"purpose key" not in response.content


# Notice versions through the admin


def test_editing_a_description_in_the_admin_freezes_a_new_notice_and_keeps_the_old(
    client, staff, purposes
):
    purpose = purposes["recommendations"]
    old = purpose.notices.get()
    client.force_login(staff)
    data = change_form_fields(client, purpose)
    assert data["description"] == [purpose.description]
    data["description"] = ["We suggest products from what you bought, viewed and told us."]

    response = client.post(reverse("admin:consents_purpose_change", args=[purpose.pk]), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    notices = list(purpose.notices.order_by("version"))
    assert [n.version for n in notices] == [1, 2]
    assert notices[0].pk == old.pk and notices[0].content_hash == old.content_hash
    assert notices[0].content["en"]["description"] == old.content["en"]["description"]
    assert notices[1].content["en"]["description"] == data["description"][0]
    assert notices[1].content_hash != old.content_hash


def test_saving_in_the_admin_without_a_change_freezes_no_new_notice(client, staff, purposes):
    purpose = purposes["ad-partners"]
    client.force_login(staff)
    data = change_form_fields(client, purpose)
    response = client.post(reverse("admin:consents_purpose_change", args=[purpose.pk]), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(purpose.notices.values_list("version", flat=True)) == [1]
    purpose.refresh_from_db()
    assert set(purpose.data_categories.values_list("key", flat=True)) == {
        "advertising-id",
        "browsing",
        "orders",
    }


def test_a_purpose_with_recorded_decisions_cannot_be_deleted_in_the_admin(
    client, staff, customer, purposes
):
    purpose = purposes["newsletter"]
    services.consent_record(
        subject_id=customer.subject_id,
        purpose=purpose,
        decision=Decision.GRANTED,
        method=Method.PANEL,
    )
    request = RequestFactory().get("/")
    request.user = staff
    model_admin = admin.site.get_model_admin(Purpose)
    assert isinstance(model_admin, PurposeAdmin)
    assert model_admin.has_delete_permission(request, purpose) is False
    assert model_admin.has_delete_permission(request, purposes["tailored-offers"]) is True

    client.force_login(staff)
    url = reverse("admin:consents_purpose_delete", args=[purpose.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert Purpose.objects.filter(pk=purpose.pk).exists()
    assert PurposeNotice.objects.filter(purpose=purpose).exists()
