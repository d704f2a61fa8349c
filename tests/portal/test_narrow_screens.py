"""Nothing widens the page past a 360 px phone: wide tables scroll in their own
box, and the footer's language form wraps. (The browser suite measures the
page widths; these check the markup and rules that keep them narrow.)"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

from tests.consents.test_panel import parse

STYLESHEET = Path(settings.BASE_DIR, "static", "css", "clareza.css").read_text()


def rule(selector: str) -> str:
    match = re.search(rf"(?m)^{re.escape(selector)} \{{([^}}]*)\}}", STYLESHEET)
    assert match, f"no rule for {selector}"
    return match.group(1)


def test_the_sessions_table_scrolls_inside_a_focusable_region(client, customer):
    client.force_login(customer)
    page = parse(client.get("/accounts/sessions/"))
    table = page.find("table")
    box = table.parent
    assert "table-scroll" in box.attrs["class"].split()
    # Keyboard users can scroll it, and screen readers hear what it is.
    assert (box.attrs["tabindex"], box.attrs["role"]) == ("0", "region")
    assert box.attrs["aria-label"]
    assert "overflow-x: auto" in rule(".table-scroll")


def test_the_language_form_wraps_instead_of_widening_the_footer():
    assert "flex-wrap: wrap" in rule(".language-form")
    assert "min-width: 0" in rule(".language-form select")


def test_a_receipts_hash_and_number_break_to_fit_a_phone(client, customer):
    from consents.demo import seed_inventory
    from consents.models import Decision, Method
    from consents.services import consent_record

    newsletter = next(p for p in seed_inventory() if p.key == "newsletter")
    event = consent_record(
        subject_id=customer.subject_id,
        purpose=newsletter,
        decision=Decision.GRANTED,
        method=Method.PANEL,
    )
    client.force_login(customer)
    claims = parse(client.get(f"/me/receipts/{event.uuid}/")).find("dl", cls="receipt-claims")
    assert event.hash in [code.text for code in claims.find_all("code")]
    assert "overflow-wrap: anywhere" in rule(".receipt-claims code")
