"""A copy built while a connected system has not answered yet, seen on a 360 px
phone in Portuguese: ready to download, and saying plainly that it holds only
the portal's part and that a complete one follows. The page never scrolls
sideways."""

from __future__ import annotations

import pytest

from integrations import systems
from integrations.models import TaskKind
from portal import outbox
from rights import exports
from tests.browser.conftest import PHONE, log_in, make_customer, seed_shop
from tests.conftest import make_user


@pytest.fixture
def ana(live_server, flushable_db):
    seed_shop()
    return make_customer("ana@example.com", language="pt-br", first_name="Ana")


def test_a_copy_that_waits_for_a_system_says_so_on_a_phone(open_page, ana):
    staff = make_user("sofia@example.com", staff=True)
    systems.system_save(name="CRM", key="crm", kinds=[TaskKind.COPY], acting_user=staff)
    exports.export_request(user=ana)
    outbox.outbox_send(kind=exports.EXPORT_KIND)

    page = open_page(viewport=PHONE, language="pt-br").page
    log_in(page, ana.email, next_url="/me/requests/")
    status = page.locator("#copy-status")
    assert page.locator("#copy-download").is_visible()
    note = page.locator("#copy-incomplete")
    assert note.is_visible()
    assert "só o que este portal guarda" in note.inner_text()
    assert "ready" not in status.inner_text().lower()  # no English left
    scroll, client = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert scroll <= client, f"the page is {scroll} px wide in {client} px"
