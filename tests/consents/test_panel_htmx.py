"""The panel's htmx answers, and the same actions without JavaScript: errors
come back in place (the row, a 4xx status the page is configured to swap, the
message), a stale tab is told, focus has a place to stay, and the parts of the
page that depend on a switch are refreshed out of band."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest

from consents.models import Decision
from consents.services import purpose_notice_refresh
from shop.demo import seed_catalogue
from tests.conftest import switch_form
from tests.consents.test_panel import (
    HTMX,
    decide,
    messages_on,
    oob_elements,
    panel_events,
    parse,
    snapshot,
    state_of,
    top_level_elements,
)

STALE = "changed while you were reading it. Please read it again and confirm your choice."


def the_row(response, key: str):
    (row,) = top_level_elements(response)
    assert (row.tag, row.attrs["id"]) == ("li", f"purpose-{key}")
    assert "<html" not in response.content.decode()
    return row


def rewrite(purpose, description: str) -> None:
    purpose.description = description
    purpose.save()
    purpose_notice_refresh(purpose=purpose)


# The page tells htmx which error answers to swap ------------------------------------------


def htmx_config(client) -> dict:
    page = parse(client.get("/me/"))
    (meta,) = page.find_all("meta", {"name": "htmx-config"})
    return json.loads(meta.attrs["content"])


def swaps(config: dict, status: int) -> bool:
    """What htmx 2 does with a status: the first rule whose code matches it."""
    for rule in config["responseHandling"]:
        if re.search(rule["code"], str(status)):
            return rule["swap"]
    return False


def test_the_page_has_htmx_swap_the_error_answers_that_carry_their_row(client, customer):
    client.force_login(customer)
    config = htmx_config(client)
    assert config["allowEval"] is False
    for status in (200, 409, 422):
        assert swaps(config, status), status
    # A whole error page must never land inside a row: those go to the alert region.
    for status in (204, 400, 403, 404, 405, 429, 500, 502):
        assert not swaps(config, status), status


def test_the_panel_loads_its_script_and_an_alert_region_for_other_failures(client, customer):
    client.force_login(customer)
    page = parse(client.get("/me/data/"))
    scripts = [s.attrs.get("src") for s in page.find_all("script")]
    assert "/static/js/panel.js" in scripts
    region = page.by_id("panel-alert")
    assert region.attrs["role"] == "alert"
    for kind in ("stale", "gone", "busy", "failed", "offline", "reload"):
        assert region.attrs[f"data-{kind}"].strip(), kind


# A switch from a stale tab --------------------------------------------------------------


def test_with_htmx_a_grant_of_a_description_that_changed_answers_409_with_the_new_text(
    client, customer, purposes
):
    client.force_login(customer)
    seen = switch_form("newsletter", Decision.GRANTED)
    rewrite(purposes["newsletter"], "Two emails a week, with recipes.")
    before = snapshot()

    response = client.post("/me/consents/newsletter/", seen, headers=HTMX)

    assert response.status_code == 409
    assert snapshot() == before
    row = the_row(response, "newsletter")
    alert = row.find(attrs={"role": "alert"})
    assert "“Newsletter”" in alert.text and STALE in alert.text
    assert "Two emails a week, with recipes." in row.text  # the text to read again
    assert row.find("button", {"role": "switch"}).attrs["aria-checked"] == "false"
    fresh = switch_form("newsletter", Decision.GRANTED)["notice"]
    assert row.find("input", {"name": "notice"}).attrs["value"] == fresh != seen["notice"]

    # Confirming what is now shown works.
    response = client.post("/me/consents/newsletter/", switch_form("newsletter", "granted"))
    assert state_of(customer, "newsletter") == Decision.GRANTED


def test_without_javascript_a_grant_of_a_description_that_changed_says_so_on_the_page(
    client, customer, purposes
):
    client.force_login(customer)
    seen = switch_form("newsletter", Decision.GRANTED)
    rewrite(purposes["newsletter"], "Two emails a week, with recipes.")
    before = snapshot()
    response = client.post("/me/consents/newsletter/", seen)
    assert response.status_code == 302
    assert response["Location"] == "/me/#purpose-newsletter"
    assert snapshot() == before
    (message,) = messages_on(parse(client.get(response["Location"])))
    assert STALE in message


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_a_grant_without_the_description_hash_is_refused(client, customer, purposes, headers):
    client.force_login(customer)
    before = snapshot()
    for data in ({"decision": "granted"}, {"decision": "granted", "notice": "0" * 64}):
        response = client.post("/me/consents/newsletter/", data, headers=headers)
        assert response.status_code == (409 if headers else 302)
    assert snapshot() == before


def test_withdrawing_never_waits_on_the_description(client, customer, purposes):
    decide(customer, purposes["newsletter"])
    client.force_login(customer)
    seen = switch_form("newsletter", Decision.WITHDRAWN)
    rewrite(purposes["newsletter"], "Two emails a week, with recipes.")
    response = client.post("/me/consents/newsletter/", seen, headers=HTMX)
    assert response.status_code == 200
    assert state_of(customer, "newsletter") == Decision.WITHDRAWN


@pytest.mark.parametrize("data", [{}, {"decision": "maybe"}, {"decision": "refused"}])
def test_with_htmx_a_tampered_switch_answers_422_with_its_row_and_the_message(
    client, customer, purposes, data
):
    decide(customer, purposes["newsletter"])
    client.force_login(customer)
    before = snapshot()
    response = client.post("/me/consents/newsletter/", data, headers=HTMX)
    assert response.status_code == 422
    assert snapshot() == before
    row = the_row(response, "newsletter")
    assert row.find(attrs={"role": "alert"}).text == "Choose to turn it on or off."
    assert row.find("button", {"role": "switch"}).attrs["aria-checked"] == "true"


def test_with_htmx_a_retired_purpose_answers_404_without_a_page_to_swap(client, customer, purposes):
    from consents.services import purpose_retire

    client.force_login(customer)
    form = switch_form("newsletter", Decision.GRANTED)
    purpose_retire(purpose=purposes["newsletter"])
    response = client.post("/me/consents/newsletter/", form, headers=HTMX)
    assert response.status_code == 404  # not swapped: panel.js says it in the alert region
    assert not panel_events(customer).exists()


# A tab whose session ended --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "data"),
    [
        ("post", "/me/consents/newsletter/", {"decision": "withdrawn"}),
        ("get", "/me/data/first_name/edit/", {}),
        ("post", "/me/data/first_name/", {"first_name-value": "Ana"}),
    ],
)
def test_with_htmx_an_ended_session_sends_the_whole_tab_to_log_in_with_a_message(
    client, customer, purposes, method, url, data
):
    before = snapshot()
    headers = {**HTMX, "HX-Current-URL": "http://testserver/me/data/?edit=first_name"}
    response = getattr(client, method)(url, data, headers=headers)
    assert response.status_code == 200
    login = f"/accounts/login/?next={quote('/me/data/?edit=first_name', safe='')}"
    assert response["HX-Redirect"] == login
    assert response.content == b""
    assert snapshot() == before
    page = parse(client.get(login))
    assert "Your session has ended. Log in again to continue." in messages_on(page)


def test_an_ended_session_never_sends_htmx_to_another_site(client, customer, purposes):
    headers = {**HTMX, "HX-Current-URL": "https://evil.example/steal"}
    response = client.post("/me/consents/newsletter/", {"decision": "withdrawn"}, headers=headers)
    assert response["HX-Redirect"] == "/accounts/login/?next=%2Fme%2F"


# What depends on a switch ---------------------------------------------------------------


def test_with_htmx_a_grant_refreshes_the_benefits_and_withdraw_all(client, customer, purposes):
    seed_catalogue()
    client.force_login(customer)
    response = client.post(
        "/me/consents/tailored-offers/",
        switch_form("tailored-offers", Decision.GRANTED),
        headers=HTMX,
    )
    parts = oob_elements(response)
    assert set(parts) == {"benefits-region", "withdraw-all", "policy-banner"}
    assert all(p.attrs["hx-swap-oob"] == "true" for p in parts.values())
    assert "CLAREZA-" in parts["benefits-region"].find("code").text
    assert parts["withdraw-all"].find("form").attrs["action"] == "/me/consents/withdraw-all/"

    response = client.post(
        "/me/consents/tailored-offers/", {"decision": Decision.WITHDRAWN}, headers=HTMX
    )
    parts = oob_elements(response)
    assert not parts["benefits-region"].find_all("section")
    assert not parts["withdraw-all"].find_all("form")


def test_the_full_page_has_every_part_a_switch_refreshes(client, customer, purposes):
    client.force_login(customer)
    page = parse(client.get("/me/"))
    for part in ("benefits-region", "withdraw-all", "policy-banner"):
        assert page.by_id(part) is not None, part
        assert "hx-swap-oob" not in page.by_id(part).attrs


# Focus ----------------------------------------------------------------------------------


def test_with_htmx_the_switch_comes_back_focused_under_the_same_id(client, customer, purposes):
    client.force_login(customer)
    page = parse(client.get("/me/"))
    before = page.by_id("switch-newsletter")
    assert "autofocus" not in before.attrs  # the page itself does not steal focus
    response = client.post(
        "/me/consents/newsletter/", switch_form("newsletter", "granted"), headers=HTMX
    )
    switch = the_row(response, "newsletter").find("button", {"role": "switch"})
    assert switch.attrs["id"] == "switch-newsletter"
    assert "autofocus" in switch.attrs and "data-refocus" in switch.attrs
    assert switch.attrs["aria-describedby"] == "purpose-newsletter-status"


def test_with_htmx_edit_save_and_error_each_put_focus_on_the_next_control(
    client, customer, purposes
):
    client.force_login(customer)
    form_row = parse(client.get("/me/data/last_name/edit/", headers=HTMX))
    assert "autofocus" in form_row.find("input", {"name": "last_name-value"}).attrs

    saved = parse(client.post("/me/data/last_name/", {"last_name-value": "Souza"}, headers=HTMX))
    edit = saved.by_id("edit-last_name")
    assert "autofocus" in edit.attrs and "data-refocus" in edit.attrs

    response = client.post("/me/data/last_name/", {"last_name-value": "x" * 151}, headers=HTMX)
    assert response.status_code == 422
    (row,) = top_level_elements(response)
    assert row.find(attrs={"role": "alert"}).text == "Not saved: correct Last name below."
    assert "autofocus" in row.find("input", {"name": "last_name-value"}).attrs
