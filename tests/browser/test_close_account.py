"""Closing an account in a real browser, on a 360 px phone and with the
keyboard only: from the Security page to allauth's password check, the page
that says what goes and what stays, the confirmation, and the cancellation
in Your requests."""

from __future__ import annotations

import pytest

from rights.models import Kind, RightsRequest, Status
from tests.browser.conftest import PHONE, log_in, make_customer, seed_shop
from tests.browser.test_pages import axe_violations
from tests.browser.test_panel import tab_to
from tests.conftest import PASSWORD


@pytest.fixture
def joao(live_server, flushable_db):
    seed_shop()
    return make_customer(
        "joao@example.com",
        language="pt-br",
        first_name="João",
        granted=frozenset({"newsletter", "recommendations"}),
        interests=("coffee-tea",),
    )


def text(page) -> str:
    return page.evaluate("() => document.activeElement.textContent")


def fits(page) -> bool:
    """Nothing scrolls sideways."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def test_joao_closes_his_account_and_cancels_on_a_phone_with_the_keyboard(open_page, joao):
    watched = open_page(viewport=PHONE, language="pt-br")
    page = watched.page
    log_in(page, joao.email, next_url="/me/security/")
    page.goto("/me/security/")

    tab_to(page, lambda f: f["tag"] == "a" and page.evaluate(
        "() => document.activeElement.getAttribute('href')"
    ) == "/me/requests/close-account/")  # fmt: skip
    page.keyboard.press("Enter")

    # allauth asks for the password again first.
    page.wait_for_url("**/accounts/reauthenticate/**")
    tab_to(page, lambda f: f["name"] == "password")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/me/requests/close-account/")

    assert page.get_by_role("heading", name="O que será eliminado").is_visible()
    assert page.get_by_role("heading", name="O que precisamos guardar, e por quê").is_visible()
    assert "LGPD Art. 16" in page.content()
    assert fits(page)
    violations = axe_violations(page)
    assert violations.violations_count == 0, violations.generate_report()
    assert not RightsRequest.objects.exists()

    tab_to(page, lambda f: f["tag"] == "button" and "Encerrar minha conta" in text(page))
    page.keyboard.press("Enter")
    page.wait_for_url("**/me/requests/#request-*")
    closure = RightsRequest.objects.get(kind=Kind.ERASURE)
    assert closure.status == Status.RECEIVED
    assert page.get_by_text("Sua conta foi encerrada").first.is_visible()
    assert fits(page)
    violations = axe_violations(page)
    assert violations.violations_count == 0, violations.generate_report()

    tab_to(
        page,
        lambda f: (
            f["tag"] == "button"
            and "Cancelar o encerramento"
            in page.evaluate("() => document.activeElement.textContent")
        ),
    )
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Cancelado")
    closure.refresh_from_db()
    joao.refresh_from_db()
    assert closure.status == Status.CANCELLED and joao.closed_at is None
