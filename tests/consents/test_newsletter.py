"""The newsletter form without an account: double opt-in, nothing in the ledger
until the emailed link is confirmed with a POST, and the weekly clean-up."""

from __future__ import annotations

import re
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail, signing
from django.urls import reverse
from django.utils import timezone

from consents import emails, services
from consents.models import ConsentEvent, ConsentState, Decision, Method, NewsletterSignup
from consents.tasks import purge_unconfirmed_newsletter_signups
from portal.mail import EMAIL as EMAIL_KIND
from portal.models import OutboxItem
from tests.conftest import make_user
from tests.consents.conftest import inputs

NEWSLETTER = "/newsletter/"
EMAIL = "reader@example.com"
OFFERED = ["newsletter", "tailored-offers"]
CONFIRM_LINK = re.compile(r"https?://[^/\s\"]+(/newsletter/confirm/[^/\s\"]+/)")
CHECK_INBOX = "Check your inbox"
INVALID_LINK = "This link is not valid any more"


def offered_keys(html: str) -> list[str]:
    return [
        i["value"]
        for i in inputs(html)
        if i.get("type") == "checkbox" and i.get("name") == "purposes"
    ]


def notice_hashes(html: str) -> dict[str, str]:
    return dict(re.findall(r'name="(notice_[\w-]+)" value="(\w*)"', html))


def subscribe(client, capture, *, email=EMAIL, purposes=("newsletter",)):
    hashes = notice_hashes(client.get(NEWSLETTER).content.decode())
    with capture(execute=True):
        return client.post(NEWSLETTER, {"email": email, "purposes": list(purposes), **hashes})


def confirmation_path(message) -> str:
    match = CONFIRM_LINK.search(message.body)
    assert match, message.body
    return match.group(1)


def ledger_is_empty() -> bool:
    return not ConsentEvent.objects.exists() and not ConsentState.objects.exists()


def token_signed_at(signup: NewsletterSignup, seconds_ago: int) -> str:
    """A confirmation token exactly like the emailed one, but signed in the past."""

    class PastSigner(signing.TimestampSigner):
        def timestamp(self):
            return signing.b62_encode(int(time.time()) - seconds_ago)

    payload = {"s": str(signup.subject_id), "t": signup.created_at.isoformat()}
    return PastSigner(salt=emails.NEWSLETTER_SALT).sign_object(payload)


def start_signup(purposes, email: str, *, confirm: bool = False) -> NewsletterSignup:
    offered = [purposes[k] for k in OFFERED]
    signup = services.newsletter_signup_start(
        email=email,
        choices={p: p.key == "newsletter" for p in offered},
        notices=services.current_notices(offered),
        language="en",
    )
    if confirm:
        services.newsletter_signup_confirm(signup=signup)
    return signup


# The form


def test_the_form_offers_only_the_purposes_offered_in_the_newsletter(client, purposes):
    response = client.get(NEWSLETTER)
    assert response.status_code == 200
    html = response.content.decode()
    assert offered_keys(html) == OFFERED
    assert sorted(notice_hashes(html)) == [f"notice_{k}" for k in OFFERED]
    assert "Allergy-safe suggestions" not in html
    assert {k for k, p in purposes.items() if p.offered_in_newsletter} == set(OFFERED)


def test_subscribing_sends_one_confirmation_email_and_records_nothing(
    client, purposes, django_capture_on_commit_callbacks
):
    response = subscribe(client, django_capture_on_commit_callbacks)
    assert response.status_code == 302
    assert response["Location"] == reverse("consents:newsletter_sent")
    assert CHECK_INBOX in client.get(response["Location"]).content.decode()

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [EMAIL]
    assert message.subject == "Confirm your subscription to Loja Clareza Demo Ltda."
    path = confirmation_path(message)
    (html, mimetype), *_others = message.alternatives
    assert mimetype == "text/html"
    assert f"{settings.SITE_URL}{path}" in message.body
    assert f'href="{settings.SITE_URL}{path}"' in html
    assert ledger_is_empty()
    signup = NewsletterSignup.objects.get(email=EMAIL)
    assert signup.status == NewsletterSignup.Status.PENDING
    assert [c["purpose"] for c in signup.pending_choices] == OFFERED


def test_following_the_link_with_get_shows_a_button_and_records_nothing(
    client, purposes, django_capture_on_commit_callbacks
):
    subscribe(client, django_capture_on_commit_callbacks)
    response = client.get(confirmation_path(mail.outbox[0]))
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'<form method="post">.*<button type="submit">Confirm my subscription', html)
    assert ledger_is_empty()
    assert NewsletterSignup.objects.get().status == NewsletterSignup.Status.PENDING


def test_confirming_with_post_records_the_choices_for_the_signup_subject_once(
    client, purposes, django_capture_on_commit_callbacks
):
    make_user("someone@example.com")
    subscribe(client, django_capture_on_commit_callbacks, purposes=["newsletter"])
    path = confirmation_path(mail.outbox[0])

    response = client.post(path)
    assert response.status_code == 302 and response["Location"] == path
    signup = NewsletterSignup.objects.get()
    events = list(ConsentEvent.objects.select_related("purpose").order_by("id"))
    assert {e.purpose.key: e.decision for e in events} == {
        "newsletter": Decision.GRANTED,
        "tailored-offers": Decision.REFUSED,
    }
    assert {e.method for e in events} == {Method.NEWSLETTER}
    assert {e.subject_id for e in events} == {signup.subject_id}
    users = set(get_user_model().objects.values_list("subject_id", flat=True))
    assert users and signup.subject_id not in users
    assert signup.status == NewsletterSignup.Status.CONFIRMED
    assert "You are subscribed" in client.get(path).content.decode()

    again = client.post(path)
    assert again.status_code == 200
    assert ConsentEvent.objects.count() == 2


def test_a_tampered_token_is_refused_with_the_invalid_link_page(
    client, purposes, django_capture_on_commit_callbacks
):
    subscribe(client, django_capture_on_commit_callbacks)
    path = confirmation_path(mail.outbox[0])
    token = path.split("/")[-2]
    tampered = path.replace(token, ("B" if token[0] == "A" else "A") + token[1:])
    for method in (client.get, client.post):
        response = method(tampered)
        assert response.status_code == 400
        assert INVALID_LINK in response.content.decode()
    assert ledger_is_empty()
    assert NewsletterSignup.objects.get().status == NewsletterSignup.Status.PENDING


def test_a_token_older_than_seven_days_is_refused_and_a_younger_one_accepted(client, purposes):
    signup = start_signup(purposes, EMAIL)
    url = reverse("consents:newsletter_confirm", kwargs={"token": token_signed_at(signup, 0)})
    # The forged-in-the-past tokens are built exactly like the real one.
    assert client.get(url).status_code == 200

    old = token_signed_at(signup, 7 * 24 * 3600 + 60)
    response = client.post(reverse("consents:newsletter_confirm", kwargs={"token": old}))
    assert response.status_code == 400
    assert INVALID_LINK in response.content.decode()
    assert ledger_is_empty()

    younger = token_signed_at(signup, 6 * 24 * 3600)
    response = client.post(reverse("consents:newsletter_confirm", kwargs={"token": younger}))
    assert response.status_code == 302
    assert ConsentEvent.objects.filter(subject_id=signup.subject_id).count() == 2


def test_a_link_from_an_earlier_request_for_the_same_address_is_refused(
    client, purposes, django_capture_on_commit_callbacks
):
    subscribe(client, django_capture_on_commit_callbacks)
    # One confirmation at a time: a new one leaves only once the first has expired.
    NewsletterSignup.objects.update(created_at=timezone.now() - timedelta(days=8))
    subscribe(client, django_capture_on_commit_callbacks)
    first, second = (confirmation_path(m) for m in mail.outbox)
    assert first != second
    assert client.post(first).status_code == 400
    assert ledger_is_empty()
    assert client.post(second).status_code == 302
    assert ConsentEvent.objects.count() == 2


def test_subscribing_without_choosing_a_purpose_is_refused_with_a_clear_error(
    client, purposes, django_capture_on_commit_callbacks
):
    response = subscribe(client, django_capture_on_commit_callbacks, purposes=[])
    assert response.status_code == 400
    assert "Choose at least one thing to subscribe to" in response.content.decode()
    assert not mail.outbox and not NewsletterSignup.objects.exists() and ledger_is_empty()


def test_subscribing_with_an_invalid_email_is_refused_with_an_error(
    client, purposes, django_capture_on_commit_callbacks
):
    response = subscribe(client, django_capture_on_commit_callbacks, email="not-an-address")
    assert response.status_code == 400
    assert "Enter a valid email address." in response.content.decode()
    assert not mail.outbox and not NewsletterSignup.objects.exists() and ledger_is_empty()


def test_subscribing_again_with_a_confirmed_address_looks_the_same_and_changes_nothing_yet(
    client, purposes, django_capture_on_commit_callbacks
):
    signup = start_signup(purposes, EMAIL, confirm=True)
    events = ConsentEvent.objects.count()
    assert events == 2
    # Test set-up: the first confirmation left long ago (its task never ran
    # here, and the next email's sender would take it along).
    OutboxItem.objects.update(status=OutboxItem.Status.SENT, payload={})

    response = subscribe(
        client, django_capture_on_commit_callbacks, email=EMAIL.upper(), purposes=OFFERED
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("consents:newsletter_sent")
    assert CHECK_INBOX in client.get(response["Location"]).content.decode()
    # A new double opt-in: nothing changes until the new link is followed.
    assert [m.to for m in mail.outbox] == [[EMAIL]]
    assert ConsentEvent.objects.count() == events
    signup.refresh_from_db()
    assert signup.status == NewsletterSignup.Status.CONFIRMED
    assert [c["purpose"] for c in signup.pending_choices] == OFFERED


def test_the_purge_task_deletes_only_pending_signups_older_than_seven_days(purposes):
    old_pending = start_signup(purposes, "old-pending@example.com")
    recent_pending = start_signup(purposes, "recent-pending@example.com")
    old_confirmed = start_signup(purposes, "old-confirmed@example.com", confirm=True)
    long_ago = timezone.now() - timedelta(days=8)
    NewsletterSignup.objects.filter(pk__in=[old_pending.pk, old_confirmed.pk]).update(
        created_at=long_ago
    )
    NewsletterSignup.objects.filter(pk=recent_pending.pk).update(
        created_at=timezone.now() - timedelta(days=6)
    )

    assert purge_unconfirmed_newsletter_signups.delay().get() == 1
    assert set(NewsletterSignup.objects.values_list("email", flat=True)) == {
        "recent-pending@example.com",
        "old-confirmed@example.com",
    }


def test_a_grant_whose_text_changed_before_confirming_is_not_carried_over_and_is_named(
    client, purposes, django_capture_on_commit_callbacks
):
    subscribe(client, django_capture_on_commit_callbacks, purposes=["newsletter"])
    path = confirmation_path(mail.outbox[0])
    newsletter = purposes["newsletter"]
    newsletter.description = "Two emails a week now."
    newsletter.save(update_fields=["description"])
    services.purpose_notice_refresh(purpose=newsletter)

    page = client.post(path, follow=True).content.decode()

    assert "did not switch it on" in page and "“Newsletter”" in page
    decisions = dict(ConsentEvent.objects.values_list("purpose__key", "decision").order_by("id"))
    assert decisions == {"tailored-offers": Decision.REFUSED}
    # No "your subscription is confirmed" email: nothing was switched on.
    assert list(OutboxItem.objects.filter(kind=EMAIL_KIND).values_list("title", flat=True)) == [
        "Confirm your subscription to Loja Clareza Demo Ltda."
    ]
