"""The outbox keeps an email's body, which holds working password-reset and
verification links, only while the email may still leave: a sent email keeps
its metadata and loses its body; an unsent one loses it once its links expire."""

from __future__ import annotations

from datetime import timedelta

import pytest
from allauth.account import app_settings as allauth_settings
from django.conf import settings
from django.core import mail
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from consents.services import NEWSLETTER_CONFIRMATION_DAYS
from portal import tasks
from portal.mail import outbound_email_queue, outbound_email_send
from portal.models import OutboundEmail

RESET_LINK = "/accounts/password/reset/key/"


def reset_requested(client, email: str, capture, *, execute: bool) -> OutboundEmail:
    with capture(execute=execute):
        response = client.post("/accounts/password/reset/", {"email": email})
    assert response.status_code == 302
    return OutboundEmail.objects.get(to=email)


@pytest.mark.django_db
def test_a_sent_password_reset_keeps_its_metadata_and_loses_its_body(
    client, customer, django_capture_on_commit_callbacks
):
    row = reset_requested(client, customer.email, django_capture_on_commit_callbacks, execute=True)

    [message] = mail.outbox
    assert RESET_LINK in message.body  # the person got the link
    assert row.status == OutboundEmail.Status.SENT
    assert (row.body_text, row.body_html, row.headers) == ("", "", {})
    assert row.to == customer.email
    assert row.subject == message.subject
    assert row.kind == "account/email/password_reset_key"
    assert row.sent_at is not None and row.created_at <= row.sent_at
    assert message.extra_headers["Message-ID"] == row.message_id


@pytest.mark.django_db
def test_an_email_not_yet_sent_keeps_its_body_until_it_leaves(
    client, customer, django_capture_on_commit_callbacks
):
    # Its task has not run (a broker outage, say): the sweep will send it later.
    row = reset_requested(client, customer.email, django_capture_on_commit_callbacks, execute=False)
    assert row.status == OutboundEmail.Status.PENDING
    assert RESET_LINK in row.body_text

    assert outbound_email_send(email_id=row.pk) is True

    row.refresh_from_db()
    assert RESET_LINK in mail.outbox[0].body
    assert (row.status, row.body_text) == (OutboundEmail.Status.SENT, "")


def queued(kind: str, *, age: timedelta, status=OutboundEmail.Status.PENDING) -> OutboundEmail:
    email = outbound_email_queue(
        to=f"{kind}@example.com",
        subject=kind,
        body_text=f"{kind}: {RESET_LINK}abc/",
        body_html=f"<a href='{RESET_LINK}abc/'>{kind}</a>",
        headers={"List-Unsubscribe": "<https://example.com/u/abc/>"},
        kind=kind,
    )
    OutboundEmail.objects.filter(pk=email.pk).update(created_at=timezone.now() - age, status=status)
    return email


@pytest.mark.django_db
def test_unsent_emails_lose_their_bodies_once_their_links_have_expired():
    kept = settings.OUTBOUND_EMAIL_UNSENT_KEPT
    old = kept + timedelta(hours=1)
    young = kept - timedelta(hours=1)
    old_failed = queued("old-failed", age=old, status=OutboundEmail.Status.FAILED)
    old_pending = queued("old-pending", age=old)
    young_failed = queued("young-failed", age=young, status=OutboundEmail.Status.FAILED)
    young_pending = queued("young-pending", age=young)

    assert tasks.expire_outbound_email_bodies.delay().get() == 2

    for row in (old_failed, old_pending, young_failed, young_pending):
        row.refresh_from_db()
    for row in (old_failed, old_pending):
        assert (row.body_text, row.body_html, row.headers) == ("", "", {})
        assert row.status == OutboundEmail.Status.FAILED  # an abandoned one is not sent later
        assert (row.to, row.subject, row.kind) == (row.kind + "@example.com", row.kind, row.kind)
    assert "Abandoned" in old_pending.last_error
    for row in (young_failed, young_pending):
        assert RESET_LINK in row.body_text
    assert young_pending.status == OutboundEmail.Status.PENDING
    assert outbound_email_send(email_id=old_pending.pk) is False


def test_unsent_bodies_are_kept_as_long_as_the_longest_link_works_and_no_longer():
    lifetimes = [
        timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT),
        timedelta(days=allauth_settings.EMAIL_CONFIRMATION_EXPIRE_DAYS),
        timedelta(days=NEWSLETTER_CONFIRMATION_DAYS),
    ]
    assert max(lifetimes) == settings.OUTBOUND_EMAIL_UNSENT_KEPT


@pytest.mark.django_db
def test_the_admin_shows_an_emails_metadata_and_never_its_body(client, staff):
    email = queued("account/email/password_reset_key", age=timedelta(minutes=5))
    client.force_login(staff)

    listing = client.get("/admin/portal/outboundemail/")
    page = client.get(f"/admin/portal/outboundemail/{email.pk}/change/")

    for response in (listing, page):
        assert response.status_code == 200
        html = response.content.decode()
        assert email.to in html
        assert "account/email/password_reset_key" in html
        assert RESET_LINK not in html
        assert "List-Unsubscribe" not in html
    html = page.content.decode()
    assert str(email.uuid) in html
    assert "Pending" in html
    assert email.message_id.replace("<", "&lt;").replace(">", "&gt;") in html


@pytest.mark.django_db(transaction=True)
def test_the_migration_clears_the_bodies_of_emails_already_sent():
    before, after = (
        [("portal", "0002_outboundemail_kind")],
        [("portal", "0003_clear_sent_email_bodies")],
    )
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    Email = executor.loader.project_state(before).apps.get_model("portal", "OutboundEmail")
    sent = Email.objects.create(
        to="a@example.com", subject="Reset", body_text=RESET_LINK, status="sent", kind="k"
    )
    pending = Email.objects.create(to="b@example.com", subject="Reset", body_text=RESET_LINK)

    executor = MigrationExecutor(connection)
    executor.migrate(after)

    sent = OutboundEmail.objects.get(pk=sent.pk)
    assert (sent.body_text, sent.subject, sent.to, sent.kind) == ("", "Reset", "a@example.com", "k")
    assert OutboundEmail.objects.get(pk=pending.pk).body_text == RESET_LINK
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # as the other tests expect
