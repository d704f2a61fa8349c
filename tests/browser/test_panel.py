"""The control panel in a real browser: with the keyboard only, with JavaScript
(htmx swaps a part of the page) and without it (plain forms, full pages),
including the paths where the portal refuses what was sent."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from consents import selectors
from consents.models import Decision, Purpose
from consents.services import purpose_notice_refresh
from policies import services as policy_services
from policies.models import Policy, PolicyVersion
from tests.browser.conftest import (
    focus_is_visible,
    log_in,
    make_customer,
    seed_shop,
)
from tests.policies.conftest import grant

TOO_LONG = "A" * 151  # first names hold 150 characters
# A refused value, or a switch under a description rewritten meanwhile, may be answered
# with any of these (the part to show, with its message).
REFUSED_STATUSES = (400, 409, 422)
STALE_STATUSES = (400, 404, 409, 410, 422)


@pytest.fixture
def ana(live_server, flushable_db):
    """An English-speaking customer who granted only the newsletter."""
    seed_shop()
    return make_customer(
        "ana@example.com", first_name="Ana", granted=frozenset({"newsletter"}), interests=()
    )


def state(user, key: str) -> str | None:
    purpose = Purpose.objects.get(key=key)
    current = selectors.consent_states(subject_id=user.subject_id).get(purpose.pk)
    return current.decision if current else None


def switch(page, key: str):
    return page.locator(f"#purpose-{key} button[role=switch]")


def active(page) -> dict:
    """What has the focus: its tag, role, and the id of the row around it."""
    return page.evaluate(
        """() => {
          const el = document.activeElement;
          const row = el && el.closest("[id^=purpose-], [id^=field-]");
          return {tag: el.tagName.toLowerCase(), role: el.getAttribute("role"),
                  name: el.getAttribute("name"), row: row ? row.id : null};
        }"""
    )


def focus_settles_in(page, row: str, *, timeout: float = 2_000) -> dict:
    """After a swap htmx settles, then restores the focus: wait for it to land in
    the row (and fail, naming where it is, if it never does)."""
    try:
        page.wait_for_function(
            "row => !!document.activeElement.closest('#' + row)", arg=row, timeout=timeout
        )
    except PlaywrightTimeoutError:
        raise AssertionError(f"the focus left {row}: it is on {active(page)}") from None
    return active(page)


def tab_to(page, predicate, *, limit: int = 80) -> dict:
    """Press Tab until predicate(active(page)) holds; focus must be visible there."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = active(page)
        if predicate(focused):
            assert focus_is_visible(page), f"no visible focus indicator on {focused}"
            return focused
    raise AssertionError(f"Tab never reached the control (last: {active(page)})")


# Keyboard only ------------------------------------------------------------------------


def test_a_consent_switch_is_reached_and_flipped_with_the_keyboard_and_keeps_the_focus(
    open_page, ana
):
    watched = open_page()
    page = watched.page
    log_in(page, ana.email, next_url="/me/")
    page.goto("/me/")

    tab_to(page, lambda f: f["role"] == "switch" and f["row"] == "purpose-recommendations")
    page.keyboard.press("Space")
    page.wait_for_selector("#purpose-recommendations button[role=switch][aria-checked=true]")

    assert state(ana, "recommendations") == Decision.GRANTED
    focused = focus_settles_in(page, "purpose-recommendations")
    assert focused["role"] == "switch"
    assert focus_is_visible(page)

    page.keyboard.press("Space")  # and off again, from where the focus stayed
    page.wait_for_selector("#purpose-recommendations button[role=switch][aria-checked=false]")
    assert state(ana, "recommendations") == Decision.WITHDRAWN
    assert focus_settles_in(page, "purpose-recommendations")["role"] == "switch"
    assert focus_is_visible(page)


def test_a_data_field_is_edited_with_the_keyboard_and_the_focus_stays_in_its_row(open_page, ana):
    watched = open_page()
    page = watched.page
    log_in(page, ana.email, next_url="/me/data/")
    page.goto("/me/data/")

    tab_to(page, lambda f: f["tag"] == "a" and f["row"] == "field-first_name")
    page.keyboard.press("Enter")
    page.wait_for_selector("#field-first_name input[name=first_name-value]")
    focus_settles_in(page, "field-first_name")
    assert focus_is_visible(page)

    if active(page)["name"] != "first_name-value":
        tab_to(page, lambda f: f["name"] == "first_name-value")
    page.keyboard.press("Control+A")
    page.keyboard.type("Ana Maria")
    page.keyboard.press("Enter")
    page.wait_for_selector("#field-first_name .value:has-text('Ana Maria')")

    ana.refresh_from_db()
    assert ana.first_name == "Ana Maria"
    focus_settles_in(page, "field-first_name")
    assert focus_is_visible(page)


@pytest.fixture
def material_change(ana):
    """Ana granted personalised recommendations; then the demo's material v2,
    which changes what that purpose does, was published."""
    grant(ana, "recommendations")
    version = Policy.objects.get(slug="privacy").versions.get(status=PolicyVersion.Status.DRAFT)
    policy_services.policy_version_publish(version=version)
    return version


DECIDE_AGAIN = re.compile("decide again", re.IGNORECASE)


def test_a_policy_change_is_acknowledged_with_the_keyboard(open_page, ana, material_change):
    watched = open_page()
    page = watched.page
    log_in(page, ana.email, next_url="/me/")
    page.goto("/me/")
    assert page.locator("#policy-banner").is_visible()

    tab_to(page, lambda f: f["tag"] == "button" and f["row"] is None and _in_banner(page))
    page.keyboard.press("Enter")
    page.wait_for_selector(".message-success")

    # The change is acknowledged; a request to decide again may remain (it is not
    # answered by reading), but nothing asks to acknowledge any more.
    assert not page.locator("[aria-labelledby=policy-banner-title]").count()
    assert not page.get_by_role("button", name="I have read it").count()
    assert material_change.acknowledgements.filter(subject_id=ana.subject_id).exists()


def _in_banner(page) -> bool:
    return page.evaluate("!!document.activeElement.closest('.policy-banner')")


def test_after_acknowledging_a_change_the_customer_is_still_asked_to_decide_again(
    open_page, ana, material_change
):
    """Acknowledging what changed is not deciding again: the request stays."""
    watched = open_page()
    page = watched.page
    log_in(page, ana.email, next_url="/me/")
    page.goto("/me/")
    page.get_by_role("button", name="I have read it").click()
    page.wait_for_selector(".message-success")

    assert page.locator("#reconfirm-recommendations").is_visible()
    assert page.locator("#banner-keep-recommendations").is_visible()


# With JavaScript: htmx swaps in place ----------------------------------------------------


def test_with_javascript_turning_a_purpose_on_brings_its_dependants_up_to_date(open_page, ana):
    """The benefit appears and "withdraw all" is offered, without a reload."""
    watched = open_page()
    page = watched.page
    log_in(page, ana.email, next_url="/me/")
    page.goto("/me/")
    assert not page.locator(".benefits").count()

    page.evaluate("window.notReloaded = true")
    switch(page, "tailored-offers").click()
    page.wait_for_selector("#purpose-tailored-offers button[role=switch][aria-checked=true]")

    assert page.evaluate("window.notReloaded === true"), "the page was reloaded"
    page.wait_for_selector(".benefits .code", timeout=3_000)
    assert page.locator("form.withdraw-all button").is_visible()


def test_with_javascript_confirming_under_the_new_terms_updates_the_banner(
    open_page, ana, material_change
):
    watched = open_page()
    page = watched.page
    log_in(page, ana.email, next_url="/me/")
    page.goto("/me/")
    banner = page.locator("#policy-banner")
    assert "decide again" in banner.inner_text().lower()

    page.evaluate("window.notReloaded = true")
    page.locator("#reconfirm-recommendations").click()
    page.wait_for_selector("#purpose-recommendations:not(:has(.reconsent))")

    assert page.evaluate("window.notReloaded === true"), "the page was reloaded"
    still_asking = page.locator("#policy-banner", has_text=DECIDE_AGAIN)
    assert not still_asking.count(), "the banner still asks to decide again"
    assert state(ana, "recommendations") == Decision.GRANTED


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_cancelling_an_edit_shows_the_value_again_unchanged(open_page, ana, javascript):
    watched = open_page(java_script_enabled=javascript)
    page = watched.page
    log_in(page, ana.email, next_url="/me/data/")
    page.goto("/me/data/")
    page.locator("#field-first_name a.edit-link").click()
    field = page.locator("#field-first_name input[name=first_name-value]")
    field.fill("Someone else")
    page.locator("#field-first_name a", has_text="Cancel").click()

    page.wait_for_selector("#field-first_name .value")
    assert page.locator("#field-first_name .value").inner_text() == "Ana"
    assert not page.locator("#field-first_name input").count()
    ana.refresh_from_db()
    assert ana.first_name == "Ana"


def test_with_javascript_a_rejected_value_shows_its_error_in_place(open_page, ana):
    watched = open_page()
    page = watched.page
    for status in REFUSED_STATUSES:
        watched.expect_status(status)
    log_in(page, ana.email, next_url="/me/data/")
    page.goto("/me/data/")
    page.locator("#field-first_name a.edit-link").click()
    field = page.locator("#field-first_name input[name=first_name-value]")
    field.evaluate("input => input.removeAttribute('maxlength')")  # as an old browser would
    field.fill(TOO_LONG)
    page.evaluate("window.notReloaded = true")
    page.locator("#field-first_name button[type=submit]").click()

    error = page.locator("#field-first_name .errorlist")
    error.wait_for(timeout=3_000)
    assert "150" in error.inner_text()
    assert page.evaluate("window.notReloaded === true"), "the page was replaced"
    assert page.locator("header.site-header").is_visible(), "the page lost its layout"
    assert page.locator("#field-last_name").is_visible(), "the rest of the page is gone"
    ana.refresh_from_db()
    assert ana.first_name == "Ana"


def test_with_javascript_a_switch_read_under_an_old_description_says_so_in_place(open_page, ana):
    """A stale tab: what the purpose does was rewritten after the page was shown,
    so turning it on would consent to a text the person has not read."""
    watched = open_page()
    page = watched.page
    for status in STALE_STATUSES:
        watched.expect_status(status)
    log_in(page, ana.email, next_url="/me/")
    page.goto("/me/")
    rewrite_description(ana, "recommendations")

    page.evaluate("window.notReloaded = true")
    switch(page, "recommendations").click()

    message = page.locator("#purpose-recommendations", has_text="changed while you were reading")
    message.wait_for(timeout=3_000)
    assert page.evaluate("window.notReloaded === true"), "the page was replaced"
    assert page.locator("header.site-header").is_visible(), "the page lost its layout"
    assert state(ana, "recommendations") == Decision.REFUSED


def rewrite_description(user, key: str) -> None:
    """Staff rewrite what a purpose says (as the admin does: the text, then a new
    notice version frozen through the service)."""
    Purpose.objects.filter(key=key).update(description="We now also use your wish list.")
    purpose_notice_refresh(purpose=Purpose.objects.get(key=key))


# Without JavaScript: the same actions as plain forms -----------------------------------------


def test_without_javascript_a_switch_posts_the_form_and_comes_back_to_its_row(open_page, ana):
    watched = open_page(java_script_enabled=False)
    page = watched.page
    log_in(page, ana.email, next_url="/me/")
    page.goto("/me/")
    switch(page, "recommendations").click()
    page.wait_for_url("**/me/#purpose-recommendations")

    assert switch(page, "recommendations").get_attribute("aria-checked") == "true"
    assert "is on" in page.locator(".messages").inner_text()
    assert state(ana, "recommendations") == Decision.GRANTED


def test_without_javascript_a_field_is_edited_on_its_own_page(open_page, ana):
    watched = open_page(java_script_enabled=False)
    page = watched.page
    log_in(page, ana.email, next_url="/me/data/")
    page.goto("/me/data/")
    page.locator("#field-first_name a.edit-link").click()
    page.wait_for_url("**/me/data/?edit=first_name*")
    page.fill("#field-first_name input[name=first_name-value]", "Ana Maria")
    page.locator("#field-first_name button[type=submit]").click()
    page.wait_for_url("**/me/data/#field-first_name")

    assert "Ana Maria" in page.locator("#field-first_name .value").inner_text()
    ana.refresh_from_db()
    assert ana.first_name == "Ana Maria"


def test_without_javascript_a_rejected_value_shows_its_error_beside_the_field(open_page, ana):
    watched = open_page(java_script_enabled=False)
    page = watched.page
    watched.expect_status(400)
    log_in(page, ana.email, next_url="/me/data/")
    page.goto("/me/data/?edit=first_name")
    field = page.locator("#field-first_name input[name=first_name-value]")
    field.evaluate("input => input.removeAttribute('maxlength')")  # DevTools run scripts anyway
    field.fill(TOO_LONG)
    with page.expect_response("**/me/data/first_name/") as answer:
        page.locator("#field-first_name button[type=submit]").click()

    assert answer.value.status == 400
    assert "150" in page.locator("#field-first_name .errorlist").inner_text()
    assert page.locator("header.site-header").is_visible()
    ana.refresh_from_db()
    assert ana.first_name == "Ana"


def test_without_javascript_a_switch_read_under_an_old_description_says_so(open_page, ana):
    watched = open_page(java_script_enabled=False)
    page = watched.page
    for status in STALE_STATUSES:
        watched.expect_status(status)
    log_in(page, ana.email, next_url="/me/")
    page.goto("/me/")
    rewrite_description(ana, "recommendations")
    switch(page, "recommendations").click()
    page.wait_for_load_state()

    assert "changed while you were reading" in page.locator("main").inner_text()
    assert page.locator("header.site-header").is_visible()
    assert state(ana, "recommendations") == Decision.REFUSED


def test_without_javascript_confirming_under_the_new_terms_is_a_plain_form(
    open_page, ana, material_change
):
    watched = open_page(java_script_enabled=False)
    page = watched.page
    log_in(page, ana.email, next_url="/me/")
    page.goto("/me/")
    page.locator("#reconfirm-recommendations").click()
    page.wait_for_url("**/me/#purpose-recommendations")

    assert not page.locator("#purpose-recommendations .reconsent").count()
    assert not page.locator("#policy-banner", has_text=DECIDE_AGAIN).count()
    assert switch(page, "recommendations").get_attribute("aria-checked") == "true"
    assert state(ana, "recommendations") == Decision.GRANTED


def test_without_javascript_withdraw_all_turns_everything_off(open_page, ana):
    watched = open_page(java_script_enabled=False)
    page = watched.page
    log_in(page, ana.email, next_url="/me/")
    page.goto("/me/")
    page.locator("form.withdraw-all button").click()
    page.wait_for_url("**/me/")

    assert "All optional purposes are off" in page.locator(".messages").inner_text()
    assert state(ana, "newsletter") == Decision.WITHDRAWN
