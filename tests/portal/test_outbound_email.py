"""The outbox keeps an email's body, which holds working password-reset and
verification links, only while the email may still leave: a sent email keeps
its metadata and loses its body; an unsent one loses it once its links expire."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from allauth.account import app_settings as allauth_settings
from django.conf import settings
from django.core import mail
from django.utils import timezone

from consents.services import NEWSLETTER_CONFIRMATION_DAYS
from portal import outbox, tasks
from portal.mail import EMAIL, outbound_email_queue
from portal.models import OutboxItem
from tests.migration_support import migrate, migrate_to_the_end

RESET_LINK = "/accounts/password/reset/key/"


def reset_requested(client, email: str, capture, *, execute: bool) -> OutboxItem:
    with capture(execute=execute):
        response = client.post("/accounts/password/reset/", {"email": email})
    assert response.status_code == 302
    return OutboxItem.objects.get(kind=EMAIL, recipient=email)


def send_emails() -> int:
    """What the task queued on commit, or by the sweep, does: claim and send a batch."""
    return outbox.outbox_send(kind=EMAIL, topic="account/email/password_reset_key")


@pytest.mark.django_db
def test_a_sent_password_reset_keeps_its_metadata_and_loses_its_body(
    client, customer, django_capture_on_commit_callbacks
):
    row = reset_requested(client, customer.email, django_capture_on_commit_callbacks, execute=True)

    [message] = mail.outbox
    assert RESET_LINK in message.body  # the person got the link
    assert row.status == OutboxItem.Status.SENT
    assert row.payload == {}  # no body, no headers
    assert row.recipient == customer.email
    assert row.title == message.subject
    assert row.topic == "account/email/password_reset_key"
    assert row.sent_at is not None and row.created_at <= row.sent_at
    assert message.extra_headers["Message-ID"] == row.message_id


@pytest.mark.django_db
def test_an_email_not_yet_sent_keeps_its_body_until_it_leaves(
    client, customer, django_capture_on_commit_callbacks
):
    # Its task has not run (a broker outage, say): the sweep will send it later.
    row = reset_requested(client, customer.email, django_capture_on_commit_callbacks, execute=False)
    assert row.status == OutboxItem.Status.PENDING
    assert RESET_LINK in row.payload["body_text"]

    assert send_emails() == 1

    row.refresh_from_db()
    assert RESET_LINK in mail.outbox[0].body
    assert (row.status, row.payload) == (OutboxItem.Status.SENT, {})


def queued(kind: str, *, age: timedelta, status=OutboxItem.Status.PENDING) -> OutboxItem:
    email = outbound_email_queue(
        to=f"{kind}@example.com",
        subject=kind,
        body_text=f"{kind}: {RESET_LINK}abc/",
        body_html=f"<a href='{RESET_LINK}abc/'>{kind}</a>",
        headers={"List-Unsubscribe": "<https://example.com/u/abc/>"},
        template=kind,
    )
    OutboxItem.objects.filter(pk=email.pk).update(created_at=timezone.now() - age, status=status)
    return email


@pytest.mark.django_db
def test_unsent_emails_lose_their_bodies_once_their_links_have_expired():
    kept = settings.OUTBOX_UNSENT_KEPT
    old = kept + timedelta(hours=1)
    young = kept - timedelta(hours=1)
    old_failed = queued("old-failed", age=old, status=OutboxItem.Status.FAILED)
    old_pending = queued("old-pending", age=old)
    young_failed = queued("young-failed", age=young, status=OutboxItem.Status.FAILED)
    young_pending = queued("young-pending", age=young)

    assert tasks.outbox_expire_private_payloads.delay().get() == 2

    for row in (old_failed, old_pending, young_failed, young_pending):
        row.refresh_from_db()
    for row in (old_failed, old_pending):
        assert row.payload == {}  # no body, no headers
        assert row.status == OutboxItem.Status.FAILED  # an abandoned one is not sent later
        assert (row.recipient, row.title, row.topic) == (
            row.topic + "@example.com",
            row.topic,
            row.topic,
        )
    assert "Abandoned" in old_pending.last_error
    for row in (young_failed, young_pending):
        assert RESET_LINK in row.payload["body_text"]
    assert young_pending.status == OutboxItem.Status.PENDING
    assert outbox.outbox_send(kind=EMAIL, topic="old-pending") == 0


def test_unsent_bodies_are_kept_as_long_as_the_longest_link_works_and_no_longer():
    lifetimes = [
        timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT),
        timedelta(days=allauth_settings.EMAIL_CONFIRMATION_EXPIRE_DAYS),
        timedelta(days=NEWSLETTER_CONFIRMATION_DAYS),
    ]
    assert max(lifetimes) == settings.OUTBOX_UNSENT_KEPT


@pytest.mark.django_db
def test_the_admin_shows_an_emails_metadata_and_never_its_body(client, staff):
    email = queued("account/email/password_reset_key", age=timedelta(minutes=5))
    client.force_login(staff)

    listing = client.get("/admin/portal/outboxitem/")
    page = client.get(f"/admin/portal/outboxitem/{email.pk}/change/")

    for response in (listing, page):
        assert response.status_code == 200
        html = response.content.decode()
        assert email.recipient in html
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
    executor = migrate(before)
    Email = executor.loader.project_state(before).apps.get_model("portal", "OutboundEmail")
    sent = Email.objects.create(
        to="a@example.com", subject="Reset", body_text=RESET_LINK, status="sent", kind="k"
    )
    pending = Email.objects.create(to="b@example.com", subject="Reset", body_text=RESET_LINK)

    executor = migrate(after)

    Email = executor.loader.project_state(after).apps.get_model("portal", "OutboundEmail")
    sent = Email.objects.get(pk=sent.pk)
    assert (sent.body_text, sent.subject, sent.to, sent.kind) == ("", "Reset", "a@example.com", "k")
    assert Email.objects.get(pk=pending.pk).body_text == RESET_LINK
    migrate_to_the_end()
    # And in the one outbox, the sent one still without its body, the other with it.
    rows = OutboxItem.objects.filter(kind=EMAIL)
    assert rows.get(recipient="a@example.com").payload == {}
    assert rows.get(recipient="b@example.com").payload["body_text"] == RESET_LINK


@pytest.mark.django_db(transaction=True)
def test_the_two_old_outboxes_move_into_the_one_and_back_losing_nothing(flushed_after):
    """Policy notifications keep their ids (the signed links in emails already
    sent name them), account emails keep their uuid (their Message-ID); sent
    ones have no body; new rows take ids after the moved ones."""
    from policies import emails
    from policies.notices import message_id, notice_get, notices_of

    before = [("portal", "0004_outboxitem"), ("policies", "0003_published_versions_hashed")]
    executor = migrate(before)
    old = executor.loader.project_state(before).apps
    Email = old.get_model("portal", "OutboundEmail")
    Notification = old.get_model("policies", "Notification")
    policy = old.get_model("policies", "Policy").objects.create(slug="privacy", title="Privacy")
    version = old.get_model("policies", "PolicyVersion").objects.create(
        policy=policy, number=1, status="published", body="B", summary="S",
        effective_date=timezone.localdate(),
    )  # fmt: skip
    later = timezone.now() + timedelta(minutes=5)
    notified = [
        Notification.objects.create(
            pk=pk,
            version=version,
            email=email,
            language=language,
            subject_id=uuid.uuid4(),
            status=status,
            attempts=attempts,
            lease_until=lease,
            last_error=error,
        )
        for pk, email, language, status, attempts, lease, error in [
            (7, "ana@example.com", "pt-br", "sent", 1, None, ""),
            (8, "bob@example.com", "en", "pending", 2, later, "550 refused"),
            (9, "cy@example.com", "en", "sending", 1, later, ""),
            (10, "di@example.com", "en", "failed", 8, None, "550 no such user"),
        ]
    ]
    sent = Email.objects.create(to="a@example.com", subject="Done", status="sent", kind="k")
    waiting = Email.objects.create(
        to="b@example.com", subject="Reset", body_text=RESET_LINK, body_html="<p>h</p>",
        headers={"X-H": "1"}, kind="account/email/password_reset_key",
    )  # fmt: skip

    migrate_to_the_end()

    rows = notices_of(version.pk)
    assert sorted(rows.values_list("pk", flat=True)) == [7, 8, 9, 10]
    for n in notified:
        row = rows.get(pk=n.pk)
        assert (row.recipient, row.subject_id, row.payload["language"]) == (
            n.email, n.subject_id, n.language,
        )  # fmt: skip
        assert (row.status, row.attempts, row.last_error) == (n.status, n.attempts, n.last_error)
        assert row.message_id == message_id(version.pk, n.email)
        assert row.dedupe_key == f"{version.pk}:{n.email}"
    assert rows.get(pk=8).next_attempt_at == later  # backing off
    assert rows.get(pk=9).leased_until == later  # a worker holds it
    # A link emailed before the move still finds its notice.
    assert notice_get(signing_loads(emails.token(7, emails.NOTICE_SALT))).email == "ana@example.com"
    emails_moved = OutboxItem.objects.filter(kind=EMAIL)
    assert emails_moved.get(uuid=sent.uuid).payload == {}
    moved = emails_moved.get(uuid=waiting.uuid)
    assert (moved.recipient, moved.title, moved.topic, moved.status) == (
        "b@example.com", "Reset", "account/email/password_reset_key", "pending",
    )  # fmt: skip
    assert moved.payload == {
        "body_text": RESET_LINK,
        "body_html": "<p>h</p>",
        "headers": {"X-H": "1"},
    }
    assert min(emails_moved.values_list("pk", flat=True)) > 10
    # Written directly: queueing it would send the waiting one too (eager tasks).
    new = OutboxItem.objects.create(kind=EMAIL, recipient="c@example.com")
    assert new.pk > max(emails_moved.exclude(pk=new.pk).values_list("pk", flat=True))

    executor = migrate(before)  # and back
    old = executor.loader.project_state(before).apps
    Notification = old.get_model("policies", "Notification")
    assert sorted(Notification.objects.values_list("pk", "email", "status")) == [
        (n.pk, n.email, n.status) for n in notified
    ]
    Email = old.get_model("portal", "OutboundEmail")
    assert Email.objects.get(uuid=waiting.uuid).body_text == RESET_LINK
    assert Email.objects.count() == 3
    migrate_to_the_end()


def signing_loads(token: str):
    from django.core import signing

    from policies import emails

    return signing.loads(token, salt=emails.NOTICE_SALT)["n"]
