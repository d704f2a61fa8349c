"""Browser tests: Playwright for Python driving Debian's Chromium against Django's
live server. One browser for the whole run; a context (a fresh profile) per test
or per kind of visitor; people log in once by posting the real login form.

Chromium comes from Debian (`apt-get install chromium`; `make test` and .ci/run
install it), never from `playwright install`. Without it these tests skip locally
and say how to install it; CI fails on any skip."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)

from tests.conftest import PASSWORD, flush_database, make_user

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NEEDS_CHROMIUM = (
    f"needs Debian's Chromium at {CHROMIUM}: `apt-get install chromium` as root "
    "(`make test` does it when run as root); never `playwright install`"
)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
TOTP_PERIOD = 30  # allauth's MFA_TOTP_PERIOD, not overridden in settings

# Every CSP violation, as a console error that names the directive (Chromium also
# prints its own "Refused to ..." line; this one works whatever the wording).
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(
    `CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`
    + ` (${event.sourceFile || location.href}:${event.lineNumber})`
  );
});
"""


def pytest_collection_modifyitems(items):
    """Mark the browser tests, and run them last (in pytest-django's order among
    themselves). While Playwright runs, its event loop runs in this thread, and
    Django's check against ORM calls from async code must be switched off (see
    `browser`): no other test should run in that state."""
    browser_tests = [item for item in items if "tests/browser/" in item.nodeid]
    for item in browser_tests:
        item.add_marker(pytest.mark.browser)
    others = [item for item in items if "tests/browser/" not in item.nodeid]
    items[:] = others + browser_tests


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(NEEDS_CHROMIUM)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop running in this thread, so Django
    # would take every ORM call the tests make here for a call from async code and
    # refuse it. The calls are plain sequential ones between browser steps; Django
    # documents this switch for exactly that case.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@dataclass
class Watched:
    """A page with what it reported: console errors (CSP violations among them)
    and uncaught exceptions."""

    page: object
    errors: list[str] = field(default_factory=list)
    expected_statuses: set[int] = field(default_factory=set)

    def clear(self) -> None:
        self.errors.clear()

    def expect_status(self, status: int) -> None:
        """An error path answers 4xx on purpose; Chromium logs every such response."""
        self.expected_statuses.add(status)

    def problems(self) -> list[str]:
        allowed = tuple(
            f"Failed to load resource: the server responded with a status of {status} "
            for status in self.expected_statuses
        )
        return [error for error in self.errors if not error.startswith(allowed)]


def watch(page) -> Watched:
    watched = Watched(page)
    page.add_init_script(CSP_LISTENER)

    def on_console(message) -> None:
        if message.type == "error":
            location = message.location or {}
            watched.errors.append(f"{message.text} [{location.get('url', '')}]")

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.errors.append(f"uncaught: {error}"))
    return watched


def new_context(browser, base_url: str, *, viewport=DESKTOP, language: str = "en", **options):
    """A fresh profile; `language` is what the browser asks for (a visitor's)."""
    context = browser.new_context(
        base_url=base_url,
        viewport=viewport,
        locale="pt-BR" if language == "pt-br" else "en-GB",
        **options,
    )
    context.set_default_timeout(10_000)
    return context


@pytest.fixture
def flushable_db(transactional_db) -> Iterator[None]:
    """The live server sees only committed data: a transactional test database,
    flushed afterwards."""
    yield
    flush_database()  # before pytest-django's own flush, which then finds nothing


@pytest.fixture
def no_eager_tasks():
    """Tasks go to a queue nobody consumes (purged afterwards): a build runs
    where the test says (or never), so that a page can be seen while it waits."""
    from portal.celery import app as celery_app
    from tests.worker_support import default_queue, new_queue_name

    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        with default_queue(new_queue_name()):
            yield
    finally:
        celery_app.conf.task_always_eager = previous


@pytest.fixture
def open_page(browser, live_server, flushable_db) -> Iterator:
    """open_page(**context options) -> Watched, in a context closed after the test.
    Every page fails the test if it logged a console error or broke the CSP."""
    contexts = []
    pages: list[Watched] = []

    def opener(*, viewport=DESKTOP, language="en", **options) -> Watched:
        context = new_context(
            browser, live_server.url, viewport=viewport, language=language, **options
        )
        contexts.append(context)
        watched = watch(context.new_page())
        pages.append(watched)
        return watched

    yield opener
    for context in contexts:
        context.close()
    problems = [error for watched in pages for error in watched.problems()]
    assert not problems, "the browser reported errors:\n" + "\n".join(problems)


# People ------------------------------------------------------------------------------


def totp_code(secret: str) -> str:
    """The authenticator app's current code, computed with allauth's own helpers.
    The window has no tolerance: wait for a fresh period rather than hand over a
    code that expires before the server checks it."""
    left = TOTP_PERIOD - time.time() % TOTP_PERIOD
    if left < 3:
        time.sleep(left + 0.05)
    return format_hotp_value(hotp_value(secret, int(time.time()) // TOTP_PERIOD))


def make_staff(email: str, *, language: str = "en"):
    """A superuser with an authenticator app (TOTP) set up; returns (user, secret)."""
    from allauth.mfa.models import Authenticator
    from allauth.mfa.utils import decrypt

    user = make_user(email, language=language, staff=True)
    existing = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    if existing is not None:  # make_user gives staff one where the admin requires it
        return user, decrypt(existing.data["secret"])
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return user, secret


def log_in(page, email: str, *, totp_secret: str | None = None, next_url: str = "/") -> None:
    """Log in through allauth's form (and its second step when there is one)."""
    page.goto(f"/accounts/login/?next={next_url}")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form:has(input[name=password]) [type=submit]").click()
    if totp_secret is not None:
        page.wait_for_url("**/accounts/2fa/authenticate/**")
        page.fill("input[name=code]", totp_code(totp_secret))
        page.locator("form:has(input[name=code]) [type=submit]").click()
    page.wait_for_url(lambda url: "/accounts/" not in url)


def focus_is_visible(page) -> bool:
    """The focused element draws a focus indicator: an outline or a box-shadow."""
    return page.evaluate(
        """() => {
          const el = document.activeElement;
          if (!el || el === document.body) return false;
          const style = getComputedStyle(el);
          const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
          return outline || (style.boxShadow && style.boxShadow !== "none");
        }"""
    )


# Data, built through the project's services --------------------------------------------


def seed_shop() -> dict:
    """The demo shop: inventory, catalogue, and the privacy policy (v1 published,
    the material v2 waiting as a draft). Returns the purposes by key."""
    from consents.demo import seed_inventory
    from policies.demo import seed_policies
    from shop.demo import seed_catalogue

    purposes = {p.key: p for p in seed_inventory()}
    seed_catalogue()
    seed_policies()
    return purposes


def make_customer(
    email: str,
    *,
    language: str = "en",
    first_name: str = "",
    granted: frozenset[str] = frozenset(),
    interests: tuple[str, ...] = (),
):
    """A verified customer whose sign-up recorded `granted` (all other optional
    purposes refused), with the interests picked."""
    from consents.demo import seed_customer_history

    user = make_user(email, language=language)
    if first_name:
        from consents.personal_data import personal_data_update

        personal_data_update(user=user, field_key="first_name", value=first_name)
    seed_customer_history(subject_id=user.subject_id, granted=set(granted))
    if interests:
        from shop.demo import seed_interests

        seed_interests(user=user, keys=list(interests))
    return user
