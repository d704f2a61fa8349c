"""What staff type into a purpose and what a customer types about themselves
reaches every page escaped (the panel's `|linebreaksbr` included): none of it
is marked safe on its way."""

from __future__ import annotations

import pytest

from consents import personal_data, services
from consents.models import Decision, Method, Purpose
from portal.services import user_language_set

MARKUP = '<script>alert(1)</script><form action="/admin/portal/user/1/change/">'
ESCAPED = (
    "&lt;script&gt;alert(1)&lt;/script&gt;"
    "&lt;form action=&quot;/admin/portal/user/1/change/&quot;&gt;"
)
PURPOSE_TEXTS = [
    "name",
    "name_pt",
    "description",
    "description_pt",
    "benefit",
    "benefit_pt",
    "recipients",
    "recipients_pt",
    "transfers_abroad",
    "transfers_abroad_pt",
]


def _hostile(purpose: Purpose) -> None:
    """What the purpose admin does on save: the texts, then a fresh notice."""
    Purpose.objects.filter(pk=purpose.pk).update(
        **{field: f"{field} {MARKUP}" for field in PURPOSE_TEXTS}
    )
    purpose.refresh_from_db()
    services.purpose_notice_refresh(purpose=purpose)


def _assert_escaped(html: str, field: str) -> None:
    assert "<script>alert(1)" not in html
    assert '<form action="/admin/portal/user/' not in html
    assert f"{field} {ESCAPED}" in html


@pytest.mark.parametrize("language", ["en", "pt-br"])
def test_a_hostile_purpose_text_is_escaped_wherever_customers_read_it(
    client, customer, purposes, language, settings
):
    newsletter = purposes["newsletter"]
    assert newsletter.offered_in_newsletter
    _hostile(newsletter)
    suffix = "_pt" if language == "pt-br" else ""
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    headers: dict = {}

    _assert_escaped(client.get("/privacy/", **headers).content.decode(), "description" + suffix)
    _assert_escaped(client.get("/newsletter/", **headers).content.decode(), "name" + suffix)
    _assert_escaped(client.get("/accounts/signup/", **headers).content.decode(), "name" + suffix)
    user_language_set(user=customer, language=language)
    client.force_login(customer)
    panel = client.get("/me/", **headers).content.decode()
    _assert_escaped(panel, "description" + suffix)
    _assert_escaped(panel, "benefit" + suffix)


def test_a_customers_own_data_is_escaped_in_your_data(client, customer, purposes):
    for purpose in purposes.values():
        if purpose.legal_basis != "consent":
            continue
        services.consent_record(
            subject_id=customer.subject_id,
            purpose=purpose,
            decision=Decision.GRANTED,
            method=Method.PANEL,
        )
    personal_data.personal_data_update(user=customer, field_key="first_name", value=MARKUP[:30])
    personal_data.personal_data_update(
        user=customer, field_key="postal_address", value=f"Rua A, 1\n{MARKUP}"
    )
    client.force_login(customer)
    html = client.get("/me/data/").content.decode()
    assert "<script>alert(1)" not in html
    assert '<form action="/admin/portal/user/' not in html
    assert f"Rua A, 1<br>{ESCAPED}" in html  # linebreaksbr escapes, then breaks lines
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;form" in html
