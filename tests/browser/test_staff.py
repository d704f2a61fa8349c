"""A staff member in a real browser: logs in with a second factor, previews a
policy version and publishes it, and watches the delivery bar fill while a real
Celery worker sends the emails (as in production: nothing is sent inside the
request), to an SMTP server that takes its time with each message."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django.utils import timezone

from insight import services as insight_services
from policies.models import Policy, PolicyVersion
from policies.notices import notices_of
from tests.browser.conftest import PHONE, log_in, make_staff, seed_shop, totp_code
from tests.conftest import PASSWORD, make_user
from tests.worker_support import (
    NEEDS_REDIS,
    default_queue,
    new_queue_name,
    skip_unless_postgresql,
    start_worker,
)

RECIPIENTS = 300
BATCH = 20  # a batch per claim: the bar moves batch by batch
SMTP_DELAY = 0.02  # seconds an SMTP server takes to accept a message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlowSink:
    """An SMTP server (outside the project) that accepts every message after a
    short delay, as a real one over a network does."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        await asyncio.sleep(SMTP_DELAY)
        self.received.extend(envelope.rcpt_tos)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_url() -> Iterator[tuple[SlowSink, str]]:
    sink = SlowSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield sink, f"smtp://127.0.0.1:{controller.port}"
    finally:
        controller.stop()


@pytest.fixture
def staff_member(live_server, flushable_db):
    seed_shop()
    return make_staff("sofia@example.com")


def test_the_admin_asks_staff_for_their_second_factor(open_page, staff_member):
    """/admin/ goes through the portal's login (allauth), whose second step asks
    for the authenticator's code before the admin opens."""
    user, secret = staff_member
    page = open_page().page
    page.goto("/admin/")
    assert "/accounts/login/" in page.url, f"/admin/ led to {page.url}"
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form:has(input[name=password]) [type=submit]").click()
    page.wait_for_url("**/accounts/2fa/authenticate/**")
    page.fill("input[name=code]", totp_code(secret))
    page.locator("form:has(input[name=code]) [type=submit]").click()
    page.wait_for_url(re.compile(r"/admin/$"))
    assert page.locator("#site-name").is_visible()


def test_a_new_api_key_is_shown_whole_on_a_phone(open_page, staff_member):
    """The key is shown once, in a field that fits a 360 px screen."""
    user, secret = staff_member
    page = open_page(viewport=PHONE).page
    log_in(page, user.email, totp_secret=secret, next_url="/admin/integrations/apikey/add/")
    page.fill("input[name=name]", "Shop checkout")
    page.locator("input[name=scopes][value='consents:read']").check()
    page.locator("input[name=_save]").click()
    field = page.locator("#api-secret")
    assert field.input_value().startswith("clz_")
    width, client_width = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width <= client_width, f"the page is {width} px wide on a {client_width} px screen"


@pytest.mark.worker
@pytest.mark.skipif(not settings.REDIS_URL, reason=NEEDS_REDIS)
def test_staff_preview_publish_and_watch_the_delivery_bar_move(
    open_page, staff_member, smtp_url, tmp_path
):
    skip_unless_postgresql()
    user, secret = staff_member
    sink, smtp = smtp_url
    for i in range(RECIPIENTS):
        make_user(f"person{i}@example.com")
    draft = Policy.objects.get(slug="privacy").versions.get(status=PolicyVersion.Status.DRAFT)

    with default_queue(new_queue_name()) as queue:
        worker = start_worker(
            queue=queue,
            log=tmp_path / "worker.log",
            env={
                "EMAIL_URL": smtp,
                "OUTBOX_BATCH": str(BATCH),
                "OUTBOX_PARALLEL_SENDERS": "1",
            },
        )
        try:
            page = open_page().page
            log_in(page, user.email, totp_secret=secret, next_url="/admin/")

            page.get_by_role("link", name="Policy versions").first.click()
            page.get_by_role("link", name=str(draft)).click()
            page.get_by_role("link", name="Preview and publish").click()
            preview = page.locator("#content")
            assert f"{RECIPIENTS} people will be told by email" in preview.inner_text()
            assert page.locator(".email-preview").is_visible()
            assert not notices_of(draft).exists()

            page.evaluate("window.notReloaded = true")  # lost if the page reloads
            page.get_by_role("button", name="Publish and notify").click()
            page.wait_for_selector("#delivery progress")
            page.evaluate("window.notReloaded = true")

            seen = watch_the_bar(page, timeout=90)
        finally:
            worker.stop()

    assert seen[-1] == RECIPIENTS, f"the bar stopped at {seen}"
    moving = [value for value in seen if 0 < value < RECIPIENTS]
    assert len(set(moving)) >= 2, f"the bar jumped instead of moving: {seen}"
    assert seen == sorted(seen), f"the bar went backwards: {seen}"
    assert page.evaluate("window.notReloaded === true"), "the page reloaded to update"
    assert "finished" in page.locator("#delivery").inner_text()
    assert sorted(sink.received) == sorted(f"person{i}@example.com" for i in range(RECIPIENTS))


def watch_the_bar(page, *, timeout: float) -> list[int]:
    """The <progress> value, read every quarter second until it is full."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bar = page.locator("#delivery progress")
        value = int(float(bar.get_attribute("value") or 0))
        if not seen or value != seen[-1]:
            seen.append(value)
        if value >= int(bar.get_attribute("max")):
            return seen
        page.wait_for_timeout(250)
    raise AssertionError(f"the delivery bar never filled: {seen}")


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_the_evidence_page_says_it_updates_by_itself_only_while_htmx_polls(
    open_page, staff_member, no_eager_tasks, javascript
):
    """An export waiting for a worker: with JavaScript htmx polls and the page
    says so (static/js/polling.js); without it, how to see progress by hand."""
    user, secret = staff_member
    yesterday = timezone.localdate() - timedelta(days=1)
    export = insight_services.evidence_request(
        acting_user=user, date_from=yesterday, date_to=yesterday
    )
    page = open_page(java_script_enabled=javascript).page
    status = f"/admin/insight/evidenceexport/{export.uuid}/"
    log_in(page, user.email, totp_secret=secret, next_url=status)
    page.goto(status)
    page.get_by_text("This export is waiting for a worker.").wait_for()
    updates = page.get_by_text("This page updates by itself.")
    by_hand = page.get_by_text("Reload this page, or use Check again, to see whether it is ready.")
    shown, hidden = (updates, by_hand) if javascript else (by_hand, updates)
    shown.wait_for()
    assert hidden.is_hidden()
