"""Every page a visitor, a customer and a staff member reach, in English and in
Portuguese, on a desktop (1280 px) and on a phone (360 px): no accessibility
violation (axe-core), no sideways scrolling, no console error and no CSP
violation.

The site is built once for the module (through the services, as the demo is) and
served by one live server; each kind of person logs in once, and one page per
(person, language, width) is reused. Adding a page is one line in PAGES."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from axe_playwright_python.base import AxeResults
from axe_playwright_python.sync_playwright import Axe
from django.test.utils import override_settings
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    Watched,
    flush_database,
    log_in,
    make_customer,
    make_staff,
    new_context,
    seed_shop,
    watch,
)
from tests.conftest import QUICK_HASHER

# (who, path[, expected status]). {names} come from Site.names, built below.
PAGES = [
    ("visitor", "/"),
    ("visitor", "/privacy/"),
    ("visitor", "/newsletter/"),
    ("visitor", "/newsletter/sent/"),
    ("visitor", "/newsletter/confirm/{newsletter_token}/"),
    ("visitor", "/newsletter/confirm/not-a-token/", 400),
    ("visitor", "{subscriber_receipts_path}"),
    ("visitor", "{subscriber_erase_path}"),
    ("visitor", "/rights/erase/not-a-token/", 400),
    ("visitor", "/rights/erasure/cancel/not-a-token/", 400),
    ("visitor", "/policies/"),
    ("visitor", "/policies/privacy/"),
    ("visitor", "/policies/privacy/history/"),
    ("visitor", "/policies/privacy/v1/"),
    ("visitor", "/policies/privacy/v2/"),
    ("visitor", "/policies/privacy/diff/1/2/"),
    ("visitor", "/policies/notice/{notice_token}/"),
    ("visitor", "/policies/acknowledge/{acknowledge_token}/"),
    ("visitor", "/policies/unsubscribe/{unsubscribe_token}/"),
    ("visitor", "/policies/notice/not-a-token/", 400),
    ("visitor", "/accounts/login/"),
    ("visitor", "/accounts/signup/"),
    ("visitor", "/accounts/password/reset/"),
    ("visitor", "/accounts/password/reset/done/"),
    ("visitor", "/accounts/confirm-email/"),
    ("visitor", "/admin/"),
    ("visitor", "/api/docs/"),
    ("visitor", "/no-such-page/", 404),
    ("customer", "/"),
    ("customer", "/me/"),
    ("customer", "/me/data/"),
    ("customer", "/me/data/?edit=first_name"),
    ("customer", "/me/history/"),
    ("customer", "/me/policies/"),
    ("customer", "/me/security/"),
    ("customer", "/privacy/"),
    ("customer", "/policies/privacy/"),
    ("customer", "/policies/privacy/diff/1/2/"),
    ("customer", "/accounts/email/"),
    ("customer", "/accounts/password/change/"),
    ("customer", "/accounts/2fa/"),
    ("customer", "/accounts/2fa/totp/activate/"),
    ("customer", "/accounts/sessions/"),
    ("customer", "/accounts/logout/"),
    ("staff", "/admin/"),
    ("staff", "/admin/portal/user/"),
    # Ana has no open request: staff are first asked why they open her account.
    ("staff", "/admin/portal/user/{customer_id}/change/"),
    ("staff", "/admin/portal/user/{customer_id}/delete/"),
    ("staff", "/admin/portal/outboxitem/"),
    ("staff", "/admin/portal/outboxitem/{email_id}/change/"),
    ("staff", "/admin/consents/datacategory/"),
    ("staff", "/admin/consents/datacategory/{category_id}/change/"),
    ("staff", "/admin/consents/purpose/"),
    ("staff", "/admin/consents/purpose/{purpose_id}/change/"),
    ("staff", "/admin/policies/policy/"),
    ("staff", "/admin/policies/policy/{policy_id}/change/"),
    ("staff", "/admin/policies/policyversion/"),
    ("staff", "/admin/policies/policyversion/add/"),
    ("staff", "/admin/policies/policyversion/{published_id}/change/"),
    ("staff", "/admin/policies/policyversion/{draft_id}/change/"),
    ("staff", "/admin/policies/policyversion/{draft_id}/publish/"),
    ("staff", "/admin/mfa/authenticator/"),
    ("staff", "/admin/account/emailaddress/"),
    ("staff", "/admin/rights/auditentry/"),
    ("staff", "/admin/insight/tally/"),
    ("staff", "/admin/insight/tally/?period=week"),
    ("staff", "/admin/insight/evidenceexport/"),
    # Ready: its SHA-256 (64 characters) must fit a phone.
    ("staff", "/admin/insight/evidenceexport/{evidence_uuid}/"),
    ("staff", "/admin/insight/release/"),
    ("staff", "/admin/insight/release/{release_id}/change/"),
    ("staff", "/admin/insight/privacybudget/"),
    ("staff", "/admin/insight/privacybudget/add/"),
    ("staff", "/admin/rights/rightsrequest/{request_id}/change/"),
    ("staff", "/admin/integrations/connectedsystem/"),
    ("staff", "/admin/integrations/connectedsystem/{system_id}/change/"),
    ("staff", "/admin/integrations/systemtask/?progress=waiting"),
    # A manual task: its addresses, and the forms to record it or report a failure.
    ("staff", "/admin/integrations/systemtask/{task_id}/change/"),
]
LANGUAGES = ["en", "pt-br"]
WIDTHS = {"1280": DESKTOP, "360": PHONE}
PEOPLE = {
    # who: their email, by language (staff log in with an authenticator app)
    "customer": {"en": "ana@example.com", "pt-br": "joao@example.com"},
    "staff": {"en": "sofia@example.com", "pt-br": "tiago@example.com"},
}


def _case(entry: tuple) -> tuple[str, str, int]:
    who, path, *status = entry
    return who, path, status[0] if status else 200


def _cases() -> list:
    cases = []
    for entry in PAGES:
        who, path, status = _case(entry)
        for language in LANGUAGES:
            cases.append(pytest.param(who, path, status, language, id=f"{who}-{language}-{path}"))
    return cases


@dataclass
class Site:
    server: LiveServer
    names: dict[str, object]
    states: dict[tuple[str, str], dict] = field(default_factory=dict)
    pages: dict[tuple[str, str], Watched] = field(default_factory=dict)
    contexts: list = field(default_factory=list)

    def page(self, browser, who: str, language: str) -> Watched:
        key = (who, language)
        if key not in self.pages:
            options = {}
            if who != "visitor":
                options["storage_state"] = self.states[(who, language)]
            context = new_context(browser, self.server.url, language=language, **options)
            if who == "visitor":
                context.add_cookies(
                    [{"name": "django_language", "value": language, "url": self.server.url}]
                )
            self.contexts.append(context)
            self.pages[key] = watch(context.new_page())
        return self.pages[key]


def build_site() -> tuple[dict[str, object], dict[str, str]]:
    """The demo shop with a published material v2 (so customers see the banner
    and the differences), a v3 draft to preview, and one person of each kind in
    each language."""
    from consents import services as consent_services
    from consents.emails import newsletter_links, newsletter_token
    from consents.models import DataCategory, Purpose
    from policies import emails, services
    from policies.models import Policy, PolicyVersion
    from policies.notices import notices_of
    from portal.mail import EMAIL
    from portal.models import OutboxItem

    purposes = seed_shop()
    granted = frozenset({"newsletter", "recommendations", "tailored-offers"})
    ana = make_customer(
        "ana@example.com", first_name="Ana", granted=granted, interests=("bakery", "books")
    )
    make_customer(
        "joao@example.com",
        language="pt-br",
        first_name="João",
        granted=granted,
        interests=("coffee-tea",),
    )
    secrets = {
        email: make_staff(email, language=language)[1]
        for language, email in PEOPLE["staff"].items()
    }
    policy = Policy.objects.get(slug="privacy")
    v2 = policy.versions.get(status=PolicyVersion.Status.DRAFT)
    services.policy_version_publish(version=v2)
    v3 = services.policy_version_draft_save(
        version=PolicyVersion(
            policy=policy,
            body=v2.body + "\n\n## Wish lists\n\nWe also keep your wish list.",
            body_pt=v2.body_pt + "\n\n## Listas de desejos\n\nTambém guardamos sua lista.",
            summary="We now keep your wish list.",
            summary_pt="Agora guardamos sua lista de desejos.",
            material=False,
            effective_date=services.earliest_effective_date(material=False),
        )
    )
    notification = notices_of(v2).get(recipient=ana.email)
    offered = list(Purpose.objects.filter(offered_in_newsletter=True))
    signup = consent_services.newsletter_signup_start(
        email="reader@example.com",
        choices={p: p.key == "newsletter" for p in offered},
        notices=consent_services.current_notices(offered),
        language="en",
    )
    from django.contrib.auth import get_user_model

    from insight.services import release_make

    sofia = get_user_model().objects.get(email=PEOPLE["staff"]["en"])
    release = release_make(period="month", epsilon="1", acting_user=sofia)
    from insight import evidence
    from insight.services import evidence_request
    from integrations.systems import seed_demo_systems
    from portal import outbox
    from rights import services as rights_services

    _shop, crm = seed_demo_systems()
    copy = rights_services.request_create(user=ana, kind="access")
    today = timezone.localdate()
    export = evidence_request(acting_user=sofia, date_from=today, date_to=today)
    outbox.outbox_send(kind=evidence.EVIDENCE_KIND)
    export.refresh_from_db()
    assert export.status == "ready", export.last_error
    names = {
        "release_id": release.pk,
        "evidence_uuid": export.uuid,
        "newsletter_token": newsletter_token(signup),
        "subscriber_receipts_path": newsletter_links(signup.subject_id)["receipts_path"],
        "subscriber_erase_path": newsletter_links(signup.subject_id)["erase_path"],
        "notice_token": emails.token(notification.pk, emails.NOTICE_SALT),
        "acknowledge_token": emails.token(notification.pk, emails.ACKNOWLEDGE_SALT),
        "unsubscribe_token": emails.token(notification.pk, emails.UNSUBSCRIBE_SALT),
        "customer_id": ana.pk,
        "email_id": OutboxItem.objects.filter(kind=EMAIL).order_by("pk").first().pk,
        "category_id": DataCategory.objects.get(key="dietary-health").pk,
        "purpose_id": purposes["recommendations"].pk,
        "policy_id": policy.pk,
        "published_id": v2.pk,
        "draft_id": v3.pk,
        "request_id": copy.pk,
        "system_id": crm.pk,
        "task_id": crm.tasks.get(request=copy).pk,
    }
    return names, secrets


@pytest.fixture(scope="module")
def site(browser, django_db_setup, django_db_blocker) -> Iterator[Site]:
    """Built once and committed, served once; the database is flushed when the
    module ends, as after a transactional test. Each test itself runs in a
    transaction that is rolled back (`django_db`), which also tells pytest-django
    to set up the test database."""
    from portal.celery import app as celery_app

    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True  # the v2 emails leave inside build_site
    with django_db_blocker.unblock(), override_settings(PASSWORD_HASHERS=QUICK_HASHER):
        try:
            names, secrets = build_site()
            site = Site(server=LiveServer("localhost:0"), names=names)
            site.server._live_server_modified_settings.enable()  # its host is allowed
            try:
                for who, emails in PEOPLE.items():
                    for language, email in emails.items():
                        context = new_context(browser, site.server.url, language=language)
                        page = context.new_page()
                        log_in(page, email, totp_secret=secrets.get(email))
                        site.states[(who, language)] = context.storage_state()
                        context.close()
                yield site
            finally:
                for context in site.contexts:
                    context.close()
                site.server.stop()
                site.server._live_server_modified_settings.disable()
        finally:
            celery_app.conf.task_always_eager = eager
            flush_database()


AXE = Axe()


def axe_violations(page) -> AxeResults:
    """axe-core's default rules (WCAG 2.x A and AA, and best practices).

    The script is evaluated through the DevTools protocol, which the page's CSP
    does not govern, so the page keeps its real CSP and needs no bypass_csp.
    `preload: false`: axe would otherwise copy the stylesheets into inline
    <style> elements (for its one CSSOM rule, css-orientation-lock), which the
    CSP rightly refuses and reports as violations that are axe's, not the page's."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.axe_script)
    return AxeResults(page.evaluate("axe.run({resultTypes: ['violations'], preload: false})"))


def fits(page) -> tuple[int, int]:
    return page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("who", "path", "status", "language"), _cases())
def test_the_page_is_accessible_fits_the_screen_and_reports_no_error(
    browser, site, who, path, status, language
):
    """At 1280 px, then the same page narrowed to 360 px (media queries apply
    again; one load serves both widths)."""
    watched = site.page(browser, who, language)
    page = watched.page
    url = path.format(**site.names)
    page.set_viewport_size(DESKTOP)
    watched.clear()
    watched.expected_statuses = {status} - {200}  # its own status is logged as an error
    response = page.goto(url)
    assert response.status == status, f"{url} answered {response.status}"
    assert page.evaluate("document.documentElement.lang").lower() == language
    problems = []
    for width, viewport in WIDTHS.items():
        page.set_viewport_size(viewport)
        scroll_width, client_width = fits(page)
        if scroll_width > client_width:
            problems.append(f"at {width} px it is {scroll_width} px wide: it scrolls sideways")
        results = axe_violations(page)
        if results.violations_count:
            problems.append(f"at {width} px, axe: {results.generate_report()}")

    problems += watched.problems()
    assert not problems, f"{url}:\n" + "\n".join(problems)
