"""Newsletter-only subscribers (no account): a one-click stop in every email
(RFC 8058 headers and a visible link, the same endpoint and signing as the
policy emails), a way back through double opt-in, and signed receipts of their
decisions reachable from signed links."""

from __future__ import annotations

import re
import time

import pytest
from django.conf import settings
from django.core import mail, signing
from django.test import Client

from consents import emails, selectors
from consents.models import ConsentEvent, ConsentState, Decision, Method, NewsletterSignup
from consents.receipts import receipt_verify
from tests.consents.test_newsletter import (
    EMAIL,
    INVALID_LINK,
    confirmation_path,
    notice_hashes,
)

STOP_LINK = re.compile(r"https?://[^/\s\"<>]+(/policies/unsubscribe/[^/\s\"<>]+/)")
RECEIPTS_LINK = re.compile(r"https?://[^/\s\"<>]+(/newsletter/receipts/[^/\s\"<>]+/)")
STOPPED = "Optional emails are off"
ONE_CLICK = "List-Unsubscribe=One-Click"


@pytest.fixture
def subscribe(client, purposes, django_capture_on_commit_callbacks):
    def subscribe(purposes=("newsletter",), email=EMAIL):
        hashes = notice_hashes(client.get("/newsletter/").content.decode())
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/newsletter/", {"email": email, "purposes": list(purposes), **hashes}
            )
        assert response.status_code == 302
        return mail.outbox[-1]

    return subscribe


@pytest.fixture
def confirm(django_capture_on_commit_callbacks):
    def confirm(message):
        with django_capture_on_commit_callbacks(execute=True):
            response = Client().post(confirmation_path(message), follow=True)
        assert response.status_code == 200
        return response.content.decode()

    return confirm


def link(pattern: re.Pattern, text: str) -> str:
    match = pattern.search(text)
    assert match, text
    return match.group(1)


def html_of(message) -> str:
    (html, mimetype), *_rest = message.alternatives
    assert mimetype == "text/html"
    return html


def one_click_post(path: str):
    """What a mail client does (RFC 8058): a POST without cookie or CSRF token."""
    return Client(enforce_csrf_checks=True).post(
        path, ONE_CLICK, content_type="application/x-www-form-urlencoded"
    )


def granted(subject_id) -> set[str]:
    return set(
        ConsentState.objects.filter(subject_id=subject_id, decision=Decision.GRANTED).values_list(
            "purpose__key", flat=True
        )
    )


def signed_in_the_past(subject_id, salt: str, seconds_ago: int) -> str:
    class PastSigner(signing.TimestampSigner):
        def timestamp(self):
            return signing.b62_encode(int(time.time()) - seconds_ago)

    return PastSigner(salt=salt).sign_object({"s": str(subject_id)})


# Every newsletter email offers the stop


def test_every_newsletter_email_has_the_one_click_headers_and_a_visible_stop_link(
    subscribe, confirm
):
    confirmation = subscribe()
    confirm(confirmation)
    signup = NewsletterSignup.objects.get()
    receipt_email = mail.outbox[-1]
    assert receipt_email is not confirmation and receipt_email.to == [EMAIL]
    assert receipt_email.subject == "Your subscription to Loja Clareza Demo Ltda. is confirmed"

    for message in (confirmation, receipt_email):
        stop = link(STOP_LINK, message.body)
        assert message.extra_headers["List-Unsubscribe"] == f"<{settings.SITE_URL}{stop}>"
        assert message.extra_headers["List-Unsubscribe-Post"] == ONE_CLICK
        assert f'href="{settings.SITE_URL}{stop}"' in html_of(message)
        # The policy emails' signing and endpoint, naming the subscriber.
        token = stop.rstrip("/").rsplit("/", 1)[1]
        assert signing.loads(token, salt=emails.ONE_CLICK_STOP_SALT) == {
            "s": str(signup.subject_id)
        }
        receipts = link(RECEIPTS_LINK, message.body)
        assert f'href="{settings.SITE_URL}{receipts}"' in html_of(message)


def test_the_stop_salt_is_the_policy_emails_salt():
    from policies import emails as policy_emails

    assert policy_emails.UNSUBSCRIBE_SALT == emails.ONE_CLICK_STOP_SALT


# Stop


def test_a_cookieless_one_click_post_stops_the_newsletter_in_the_ledger(subscribe, confirm):
    confirmation = subscribe(purposes=["newsletter", "tailored-offers"])
    confirm(confirmation)
    signup = NewsletterSignup.objects.get()
    assert granted(signup.subject_id) == {"newsletter", "tailored-offers"}

    response = one_click_post(link(STOP_LINK, confirmation.body))

    assert response.status_code == 200
    assert STOPPED in response.content.decode()
    assert granted(signup.subject_id) == set()
    withdrawals = ConsentEvent.objects.filter(
        subject_id=signup.subject_id, decision=Decision.WITHDRAWN
    )
    assert sorted(withdrawals.values_list("purpose__key", "method")) == [
        ("newsletter", Method.EMAIL_LINK),
        ("tailored-offers", Method.EMAIL_LINK),
    ]
    assert signup.subject_id not in set(selectors.subjects_accepting_optional_email())
    # Twice is once.
    assert one_click_post(link(STOP_LINK, confirmation.body)).status_code == 200
    assert withdrawals.count() == 2


def test_get_on_the_stop_link_shows_a_button_and_changes_nothing(subscribe, confirm):
    confirmation = subscribe()
    confirm(confirmation)
    events = ConsentEvent.objects.count()

    response = Client().get(link(STOP_LINK, confirmation.body))

    assert response.status_code == 200
    assert re.search(
        r'<form method="post">.*<button type="submit">Stop optional emails</button>',
        response.content.decode(),
    )
    assert ConsentEvent.objects.count() == events
    assert granted(NewsletterSignup.objects.get().subject_id) == {"newsletter"}


def test_stopping_before_confirming_voids_the_request(subscribe):
    confirmation = subscribe()

    assert one_click_post(link(STOP_LINK, confirmation.body)).status_code == 200

    assert not NewsletterSignup.objects.exists()
    response = Client().post(confirmation_path(confirmation))
    assert response.status_code == 400
    assert not ConsentEvent.objects.exists()


def test_the_stop_page_offers_the_receipt_and_a_way_back(subscribe, confirm):
    confirmation = subscribe()
    confirm(confirmation)

    html = one_click_post(link(STOP_LINK, confirmation.body)).content.decode()

    assert re.search(r'href="/newsletter/receipts/[^"/]+/"', html)
    assert 'href="/newsletter/"' in html


def test_the_stop_link_refuses_other_methods(subscribe):
    confirmation = subscribe()
    assert Client().put(link(STOP_LINK, confirmation.body)).status_code == 405


# The way back


def test_subscribing_again_after_stopping_goes_through_double_opt_in(
    subscribe, confirm, django_capture_on_commit_callbacks
):
    first = subscribe()
    confirm(first)
    one_click_post(link(STOP_LINK, first.body))
    subject_id = NewsletterSignup.objects.get().subject_id
    events = ConsentEvent.objects.count()
    mail.outbox.clear()

    again = subscribe()

    assert again.to == [EMAIL] and "/newsletter/confirm/" in again.body
    assert ConsentEvent.objects.count() == events  # nothing until confirmed
    assert granted(subject_id) == set()
    page = confirm(again)
    assert "You are subscribed" in page
    assert granted(subject_id) == {"newsletter"}
    latest = ConsentEvent.objects.filter(subject_id=subject_id).latest("id")
    assert (latest.purpose.key, latest.decision, latest.method) == (
        "newsletter",
        Decision.GRANTED,
        Method.NEWSLETTER,
    )
    assert NewsletterSignup.objects.get().subject_id == subject_id


# Receipts


def test_the_receipts_link_on_the_confirmed_page_lists_decisions_that_verify(
    subscribe, confirm, django_assert_max_num_queries
):
    confirmation = subscribe(purposes=["newsletter"])
    page = confirm(confirmation)
    assert "You are subscribed" in page
    receipts_path = link(re.compile(r'href="(/newsletter/receipts/[^"/]+/)"'), page)
    one_click_post(link(STOP_LINK, confirmation.body))
    subject_id = NewsletterSignup.objects.get().subject_id

    with django_assert_max_num_queries(1):  # the events, their purposes and notices
        response = Client().get(receipts_path)

    assert response.status_code == 200
    html = response.content.decode()
    downloads = re.findall(r'href="(/newsletter/receipts/[^"]+\.jws)"', html)
    events = list(ConsentEvent.objects.filter(subject_id=subject_id).order_by("-id"))
    assert len(downloads) == len(events) == 3  # granted, refused, then withdrawn
    jwks = Client().get("/.well-known/jwks.json").json()
    for path, event in zip(downloads, events, strict=True):
        answer = Client().get(path)
        assert answer.status_code == 200
        assert answer["Content-Type"] == "application/jose"
        payload = receipt_verify(answer.content.decode(), jwks)
        assert payload["consentReceiptID"] == str(event.uuid)
        assert payload["piiPrincipalId"] == str(subject_id)
        assert payload["decision"] == event.decision
    assert payload["decision"] == Decision.GRANTED
    first = receipt_verify(Client().get(downloads[0]).content.decode(), jwks)
    assert (first["decision"], first["collectionMethod"]) == ("withdrawn", "email link")


def test_a_receipts_link_serves_only_its_own_subjects_receipts(subscribe, confirm):
    confirm(subscribe(email="one@example.com"))
    mine = link(RECEIPTS_LINK, mail.outbox[-1].body)
    confirm(subscribe(email="two@example.com"))
    theirs = ConsentEvent.objects.filter(
        subject_id=NewsletterSignup.objects.get(email="two@example.com").subject_id
    ).first()

    assert Client().get(f"{mine}{theirs.uuid}.jws").status_code == 404
    assert Client().post(mine).status_code == 405


def test_tampered_or_expired_links_are_refused_with_a_clear_page_and_change_nothing(
    subscribe, confirm
):
    confirmation = subscribe()
    confirm(confirmation)
    subject_id = NewsletterSignup.objects.get().subject_id
    stop = link(STOP_LINK, confirmation.body)
    receipts = link(RECEIPTS_LINK, confirmation.body)
    days = settings.POLICY_LINK_DAYS * 24 * 3600
    expired_stop = signed_in_the_past(subject_id, emails.ONE_CLICK_STOP_SALT, days + 60)
    expired_receipts = signed_in_the_past(subject_id, emails.RECEIPTS_SALT, days + 60)
    fresh_receipts = signed_in_the_past(subject_id, emails.RECEIPTS_SALT, days - 3600)
    events = ConsentEvent.objects.count()

    def tampered(path):
        token = path.rstrip("/").rsplit("/", 1)[1]
        return path.replace(token, token[:-1] + ("A" if token[-1] != "A" else "B"))

    for path in (tampered(stop), f"/policies/unsubscribe/{expired_stop}/"):
        for request in (Client().get, one_click_post):
            response = request(path)
            assert response.status_code == 400
            assert INVALID_LINK in response.content.decode()
    for path in (tampered(receipts), f"/newsletter/receipts/{expired_receipts}/"):
        response = Client().get(path)
        assert response.status_code == 400
        html = response.content.decode()
        assert INVALID_LINK in html and "Nothing was changed" in html
    assert ConsentEvent.objects.count() == events
    assert granted(subject_id) == {"newsletter"}
    # The forged-in-the-past tokens are built like the real ones: a younger one works.
    assert Client().get(f"/newsletter/receipts/{fresh_receipts}/").status_code == 200
