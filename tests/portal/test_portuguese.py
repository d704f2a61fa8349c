"""A Portuguese-speaking customer meets Portuguese: the login message, the
language of the HTML email, and dates with their month in lower case."""

from __future__ import annotations

import re
from datetime import date

import pytest
from django.core import mail
from django.test import Client
from django.utils import formats, translation

from consents import services as consent_services
from consents.demo import seed_inventory
from consents.models import Purpose
from policies.demo import seed_policies
from tests.conftest import make_user

MONTHS = [
    *("janeiro", "fevereiro", "março", "abril", "maio", "junho"),
    *("julho", "agosto", "setembro", "outubro", "novembro", "dezembro"),
]


def in_portuguese(english: str) -> str:
    with translation.override("pt-br"):
        portuguese = translation.gettext(english)
    assert portuguese != english, f"no pt-BR translation of {english!r}"
    return portuguese


def test_a_portuguese_customer_signing_in_from_an_english_browser_is_greeted_in_portuguese(
    db, password
):
    customer = make_user("ana@example.com", language="pt-br")
    browser = Client(HTTP_ACCEPT_LANGUAGE="en")
    response = browser.post(
        "/accounts/login/", {"login": customer.email, "password": password}, follow=True
    )
    assert response.status_code == 200
    html = response.content.decode()
    greeting = in_portuguese("Successfully signed in as %(name)s.") % {"name": customer.email}
    assert greeting in html
    assert "Successfully signed in" not in html


def test_a_newsletter_confirmation_in_portuguese_says_so_in_its_html(
    db, django_capture_on_commit_callbacks
):
    seed_inventory()
    offered = list(Purpose.objects.filter(offered_in_newsletter=True))
    with translation.override("en"), django_capture_on_commit_callbacks(execute=True):
        consent_services.newsletter_signup_start(
            email="leitora@example.com",
            choices={p: p.key == "newsletter" for p in offered},
            notices=consent_services.current_notices(offered),
            language="pt-br",
        )
    [message] = mail.outbox
    html = dict((mimetype, content) for content, mimetype in message.alternatives)["text/html"]
    assert '<html lang="pt-br">' in html
    assert in_portuguese("Confirm my subscription") in html


@pytest.mark.parametrize("month", range(1, 13))
def test_portuguese_dates_write_the_month_in_lower_case(month):
    with translation.override("pt-br"):
        written = formats.date_format(date(2026, month, 29 if month != 2 else 28), "DATE_FORMAT")
    assert written == f"{29 if month != 2 else 28} de {MONTHS[month - 1]} de 2026"
    with translation.override("en"):
        assert formats.date_format(date(2026, 11, 29), "DATE_FORMAT") == "Nov. 29, 2026"


def test_a_portuguese_page_writes_its_dates_with_lower_case_months(client, db):
    seed_inventory()
    seed_policies()
    client.cookies["django_language"] = "pt-br"
    html = client.get("/policies/").content.decode()
    found = re.findall(r"\d{1,2} de (\w+) de \d{4}", html)
    assert found, html
    assert all(month in MONTHS for month in found), found
