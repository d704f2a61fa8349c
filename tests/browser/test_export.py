"""A copy of one's data in a real browser, on a 360 px phone: asked for with
the keyboard, seen being prepared (htmx polling, or a plain link without
JavaScript) while a build runs beside it, then ready, and downloaded after
typing the password again. The page never scrolls sideways."""

from __future__ import annotations

import hashlib
import threading
import zipfile

import pytest
from django.db import connection

from portal import outbox
from rights import export_sections, exports
from rights.models import DataExport, ExportStatus
from tests.browser.conftest import PHONE, focus_is_visible, log_in, make_customer, seed_shop
from tests.conftest import PASSWORD


@pytest.fixture
def ana(live_server, flushable_db):
    seed_shop()
    return make_customer("ana@example.com", first_name="Ana", granted=frozenset({"newsletter"}))


@pytest.fixture
def held_build(monkeypatch):
    """A build that pauses after its first section until `release` is set."""
    started, release = threading.Event(), threading.Event()

    def rows(person):
        started.set()
        assert release.wait(30), "the test never let the build go on"
        return iter(())

    monkeypatch.setattr(export_sections, "_sections", export_sections.sections())
    export_sections.register(
        export_sections.Section("pause", "Pause", "A pause for the test.", (), rows),
        after="account",
    )

    def run() -> threading.Thread:
        def work():
            try:
                outbox.outbox_send(kind=exports.EXPORT_KIND)
            finally:
                connection.close()

        thread = threading.Thread(target=work)
        thread.start()
        assert started.wait(30), "the build never started"
        return thread

    return run, release


def no_sideways_scroll(page) -> None:
    scroll, client = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert scroll <= client, f"the page is {scroll} px wide in {client} px: it scrolls sideways"


def tab_until(page, selector: str, *, limit: int = 80) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            assert focus_is_visible(page), f"no visible focus on {selector}"
            return
    raise AssertionError(f"Tab never reached {selector}")


def says_how_it_updates(page, javascript: bool) -> None:
    """ "This page updates by itself" only while htmx polls (static/js/polling.js
    shows it); otherwise how to see progress by hand."""
    updates = page.get_by_text("This page updates by itself.")
    by_hand = page.get_by_text("Reload this page, or use Check again, to see whether it is ready.")
    shown, hidden = (updates, by_hand) if javascript else (by_hand, updates)
    shown.wait_for()
    assert hidden.is_hidden()


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_a_copy_is_asked_for_watched_and_downloaded_with_the_keyboard_on_a_phone(
    open_page, ana, no_eager_tasks, held_build, javascript, tmp_path
):
    run_build, release = held_build
    watched = open_page(viewport=PHONE, java_script_enabled=javascript, accept_downloads=True)
    page = watched.page
    log_in(page, ana.email, next_url="/me/requests/")
    page.goto("/me/requests/")
    no_sideways_scroll(page)

    tab_until(page, "#copy button[type=submit]")
    page.keyboard.press("Enter")
    page.get_by_text("Your copy is waiting to be prepared.").wait_for()
    assert DataExport.objects.get().status == ExportStatus.QUEUED
    says_how_it_updates(page, javascript)
    no_sideways_scroll(page)

    thread = run_build()
    preparing = page.locator("#copy-status").get_by_text("We are preparing your copy.")
    if javascript:  # htmx asks every 2 s (on a busy machine, give it a few turns)
        preparing.wait_for(timeout=20_000)
    else:  # a plain link
        page.get_by_role("link", name="Check again").click()
        preparing.wait_for()
    assert 0 <= int(page.locator("#copy-progress").get_attribute("value")) < 100
    says_how_it_updates(page, javascript)  # in the part htmx swapped in
    page.reload()
    says_how_it_updates(page, javascript)  # and in the page as served
    no_sideways_scroll(page)

    release.set()
    thread.join(30)
    if not javascript:
        page.get_by_role("link", name="Check again").click()
    download_link = page.locator("#copy-download")
    download_link.wait_for(timeout=20_000)
    no_sideways_scroll(page)
    export = DataExport.objects.get()
    assert export.status == ExportStatus.READY

    tab_until(page, "#copy-download")
    page.keyboard.press("Enter")
    page.wait_for_url("**/accounts/reauthenticate/**")
    no_sideways_scroll(page)
    tab_until(page, "input[name=password]")
    page.keyboard.type(PASSWORD)
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    saved = tmp_path / "copy.zip"
    info.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == export.sha256
    with zipfile.ZipFile(saved) as archive:
        assert "summary.html" in archive.namelist()
    export.refresh_from_db()
    assert export.downloaded_at is not None
