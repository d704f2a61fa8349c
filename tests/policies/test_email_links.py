"""The policy email itself, and its signed links: the notice, the one-click
acknowledgement and the RFC 8058 one-click unsubscribe."""

from __future__ import annotations

import re
import time

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail, signing
from django.test import Client
from django.utils import formats, translation

from consents.models import ConsentEvent, ConsentState, Decision, Method
from policies import emails, notices
from policies.models import Acknowledgement
from portal.models import OutboxItem
from tests.conftest import make_user
from tests.policies.conftest import (
    LINK,
    draft,
    grant,
    link,
    message_to,
    notice,
    publish,
    seeded_draft,
    statuses,
)

SALTS = {
    "notice": emails.NOTICE_SALT,
    "acknowledge": emails.ACKNOWLEDGE_SALT,
    "unsubscribe": emails.UNSUBSCRIBE_SALT,
}
INVALID = "This link is not valid any more"
UNSUBSCRIBE_HEADER = re.compile(r"^<https?://[^/>]+/policies/unsubscribe/[^/>]+/>$")


@pytest.fixture
def published(privacy, django_capture_on_commit_callbacks):
    """Two customers, one reading Portuguese; the material v2 published and emailed."""
    make_user("ana@example.com", language="pt-br")
    make_user("bob@example.com")
    return publish(seeded_draft(privacy), django_capture_on_commit_callbacks).version


def signed_at(notification: OutboxItem, salt: str, seconds_ago: int) -> str:
    """A link token exactly like the emailed one, but signed in the past."""

    class PastSigner(signing.TimestampSigner):
        def timestamp(self):
            return signing.b62_encode(int(time.time()) - seconds_ago)

    return PastSigner(salt=salt).sign_object({"n": notification.pk})


def html_of(message) -> str:
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


# The email


@pytest.mark.parametrize(
    ("email", "language", "subject", "summary_field", "words"),
    [
        (
            "ana@example.com",
            "pt-br",
            "Importante: mudanças em “Política de privacidade”",
            "summary_pt",
            "Veja exatamente o que mudou",
        ),
        (
            "bob@example.com",
            "en",
            "Important: our Privacy policy is changing",
            "summary",
            "See exactly what changed",
        ),
    ],
)
def test_the_email_speaks_the_recipients_language_and_carries_everything_needed(
    published, email, language, subject, summary_field, words
):
    message = message_to(email)
    notification = notice(published, email)
    with translation.override(language):
        effective = formats.date_format(published.effective_date, "DATE_FORMAT")
    assert message.subject == subject
    for body in (message.body, html_of(message)):
        assert getattr(published, summary_field) in body
        assert words in body
        assert effective in body
        for kind, salt in SALTS.items():
            match = re.search(LINK.format(kind=kind), body)
            assert match, kind
            token = match.group(1).rstrip("/").rsplit("/", 1)[1]
            assert signing.loads(token, salt=salt) == {"n": notification.pk}
        assert f"{settings.SITE_URL}/me/policies/" in body
        for contact in ("CONTROLLER_NAME", "CONTROLLER_EMAIL", "DPO_NAME", "DPO_EMAIL"):
            assert getattr(settings, contact) in body
    other = "See exactly what changed" if language == "pt-br" else "Veja exatamente o que mudou"
    assert other not in message.body


def test_the_email_headers_identify_it_and_offer_one_click_unsubscribe(published):
    message = message_to("bob@example.com")
    notification = notice(published, "bob@example.com")
    assert message.extra_headers["Message-ID"] == notification.message_id
    assert message.message()["Message-ID"] == notification.message_id
    assert UNSUBSCRIBE_HEADER.match(message.extra_headers["List-Unsubscribe"])
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert set(statuses(published).values()) == {OutboxItem.Status.SENT}


def test_the_message_id_follows_from_the_version_and_the_recipient(published):
    def message_id(version_id: int, email: str) -> str:
        return notices.message_id(version_id, email)

    assert message_id(published.pk, "bob@example.com") == message_id(
        published.pk, "Bob@Example.com"
    )
    assert message_id(published.pk, "bob@example.com") != message_id(
        published.pk, "ana@example.com"
    )
    assert message_id(published.pk, "bob@example.com") != message_id(
        published.pk + 1, "bob@example.com"
    )
    ids = {m.extra_headers["Message-ID"] for m in mail.outbox}
    assert len(ids) == len(mail.outbox) == 2


# The notice and the acknowledgement, without logging in


def test_the_notice_link_shows_the_summary_and_the_differences_without_login(published):
    response = Client().get(link(message_to("bob@example.com"), "notice"))
    assert response.status_code == 200
    html = response.content.decode()
    assert published.summary in html
    assert "<ins>" in html
    assert "Personalised recommendations now also use" in html
    assert "I have read it" in html


def test_the_acknowledge_link_records_only_on_post_and_only_once(published):
    bob = notice(published, "bob@example.com")
    path = link(message_to("bob@example.com"), "acknowledge")
    client = Client()
    response = client.get(path)
    assert response.status_code == 200
    assert re.search(r'<form method="post">.*I have read it</button>', response.content.decode())
    assert not Acknowledgement.objects.exists()
    for _twice in range(2):
        response = client.post(path)
        assert response.status_code == 200
        assert "You have acknowledged this version" in response.content.decode()
    ack = Acknowledgement.objects.get()
    assert (ack.subject_id, ack.version, ack.method, ack.user) == (
        bob.subject_id,
        published,
        "email_link",
        get_user_model().objects.get(email="bob@example.com"),
    )


@pytest.mark.parametrize("kind", ["notice", "acknowledge", "unsubscribe"])
def test_a_tampered_link_is_refused_and_changes_nothing(published, purposes, kind):
    bob = notice(published, "bob@example.com")
    grant(get_user_model().objects.get(email=bob.recipient), "newsletter")
    path = link(message_to("bob@example.com"), kind)
    token = path.rstrip("/").rsplit("/", 1)[1]
    tampered = path.replace(token, token[:-1] + ("A" if token[-1] != "A" else "B"))
    events = ConsentEvent.objects.count()
    for method in ("get",) if kind == "notice" else ("get", "post"):
        response = getattr(Client(), method)(tampered)
        assert response.status_code == 400
        assert INVALID in response.content.decode()
    assert not Acknowledgement.objects.exists()
    assert ConsentEvent.objects.count() == events


def test_a_link_signed_for_another_purpose_is_refused(published):
    bob = notice(published, "bob@example.com")
    notice_token = emails.token(bob.pk, emails.NOTICE_SALT)
    response = Client().post(f"/policies/acknowledge/{notice_token}/")
    assert response.status_code == 400
    assert not Acknowledgement.objects.exists()


def test_an_expired_link_is_refused_and_records_nothing(published):
    bob = notice(published, "bob@example.com")
    max_age = settings.POLICY_LINK_DAYS * 24 * 3600
    fresh = signed_at(bob, emails.ACKNOWLEDGE_SALT, max_age - 3600)
    assert Client().get(f"/policies/acknowledge/{fresh}/").status_code == 200
    expired = signed_at(bob, emails.ACKNOWLEDGE_SALT, max_age + 60)
    response = Client().post(f"/policies/acknowledge/{expired}/")
    assert response.status_code == 400
    assert INVALID in response.content.decode()
    expired_notice = signed_at(bob, emails.NOTICE_SALT, max_age + 60)
    assert Client().get(f"/policies/notice/{expired_notice}/").status_code == 400
    assert not Acknowledgement.objects.exists()


# RFC 8058 one-click unsubscribe


def granted(user) -> set[str]:
    return set(
        ConsentState.objects.filter(
            subject_id=user.subject_id, decision=Decision.GRANTED
        ).values_list("purpose__key", flat=True)
    )


def test_one_click_unsubscribe_withdraws_the_emailed_consents_and_only_those(
    privacy, django_capture_on_commit_callbacks
):
    bob = make_user("bob@example.com")
    grant(bob, "newsletter", "tailored-offers", "recommendations")
    grant(make_user("keen@example.com"), "newsletter")
    publish(seeded_draft(privacy), django_capture_on_commit_callbacks)
    path = link(message_to("bob@example.com"), "unsubscribe")
    events = ConsentEvent.objects.count()

    assert Client().get(path).status_code == 200  # a link checker, or a person reading
    assert granted(bob) == {"newsletter", "tailored-offers", "recommendations"}
    assert ConsentEvent.objects.count() == events

    response = Client(enforce_csrf_checks=True).post(
        path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    assert "Optional emails are off" in response.content.decode()
    assert granted(bob) == {"recommendations"}
    new = ConsentEvent.objects.filter(subject_id=bob.subject_id).order_by("id")[3:]
    assert sorted((e.purpose.key, e.decision, e.method) for e in new) == [
        ("newsletter", Decision.WITHDRAWN, Method.EMAIL_LINK),
        ("tailored-offers", Decision.WITHDRAWN, Method.EMAIL_LINK),
    ]

    mail.outbox.clear()
    minor = publish(draft(privacy), django_capture_on_commit_callbacks).version
    assert sorted(statuses(minor)) == ["keen@example.com"]
    major = draft(privacy, material=True, body="A fourth text.")
    major = publish(major, django_capture_on_commit_callbacks).version
    assert sorted(statuses(major)) == ["bob@example.com", "keen@example.com"]
