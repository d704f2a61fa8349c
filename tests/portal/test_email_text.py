"""Plain text is not HTML-escaped, HTML is: the subject and the text body of
every kind of email show "&" and "'" as they are, the HTML body escapes them.
The rendered text is a plain str, so an HTML page that shows it escapes it."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from consents import services as consent_services
from consents.demo import seed_inventory
from consents.models import Purpose
from policies import services as policy_services
from policies.models import Policy, PolicyVersion
from portal.mail import render_email
from tests.conftest import make_user

CONTROLLER = "Terms & Conditions D'Ávila Ltda."
ESCAPED = "Terms &amp; Conditions D&#x27;Ávila Ltda."


@pytest.fixture(autouse=True)
def _controller(settings):
    settings.CONTROLLER_NAME = CONTROLLER


def only_email_to(address: str) -> mail.EmailMultiAlternatives:
    sent = [message for message in mail.outbox if message.to == [address]]
    assert len(sent) == 1, [(m.to, m.subject) for m in mail.outbox]
    return sent[0]


def html_of(message) -> str:
    return dict((mimetype, content) for content, mimetype in message.alternatives)["text/html"]


def test_the_renderer_returns_plain_strings_not_escaped_text():
    subject, text, html = render_email(
        "emails/newsletter_confirm", {"confirm_url": "https://x/", "days": 7}, language="en"
    )
    assert type(subject) is str and type(text) is str  # not SafeString
    assert subject == f"Confirm your subscription to {CONTROLLER}"
    assert CONTROLLER in text
    assert "&amp;" not in text and "&#x27;" not in text
    assert ESCAPED in html


def test_a_password_reset_email_shows_the_controller_as_written(
    db, customer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post("/accounts/password/reset/", {"email": customer.email})
    assert response.status_code == 302
    message = only_email_to(customer.email)
    assert message.body.startswith(f"Hello from {CONTROLLER}!")
    assert "&amp;" not in message.body + message.subject
    assert "&#x27;" not in message.body


def test_a_newsletter_confirmation_shows_the_controller_as_written(
    db, django_capture_on_commit_callbacks
):
    seed_inventory()
    offered = list(Purpose.objects.filter(offered_in_newsletter=True))
    with django_capture_on_commit_callbacks(execute=True):
        consent_services.newsletter_signup_start(
            email="reader@example.com",
            choices={p: p.key == "newsletter" for p in offered},
            notices=consent_services.current_notices(offered),
            language="en",
        )
    message = only_email_to("reader@example.com")
    assert message.subject == f"Confirm your subscription to {CONTROLLER}"
    assert f"receive emails from {CONTROLLER} at this address" in message.body
    assert "&amp;" not in message.body and "&#x27;" not in message.body
    html = html_of(message)
    assert f"receive emails from {ESCAPED} at this address" in html
    assert CONTROLLER not in html


def test_a_policy_update_shows_its_title_and_summary_as_written(
    db, django_capture_on_commit_callbacks
):
    seed_inventory()
    customer = make_user("dona@example.com")
    policy = Policy.objects.create(slug="terms", title="Terms & Conditions")
    for material, summary in ((False, "First."), (True, "D'Ávila & Filhos deliver <b>faster</b>.")):
        version = policy_services.policy_version_draft_save(
            version=PolicyVersion(
                policy=policy,
                body="## Terms",
                summary=summary,
                material=material,  # a material change is told to everyone
                effective_date=policy_services.earliest_effective_date(material=material),
            )
        )
        with django_capture_on_commit_callbacks(execute=True):
            policy_services.policy_version_publish(version=version)
    message = only_email_to(customer.email)
    assert message.subject == "Important: our Terms & Conditions is changing"
    assert f"{CONTROLLER} is changing its Terms & Conditions." in message.body
    assert "D'Ávila & Filhos deliver <b>faster</b>." in message.body
    assert "&amp;" not in message.body and "&#x27;" not in message.body
    html = html_of(message)
    assert f"{ESCAPED} is changing its Terms &amp; Conditions." in html
    assert "D&#x27;Ávila &amp; Filhos deliver &lt;b&gt;faster&lt;/b&gt;." in html
    assert "<b>faster" not in html


def test_the_admin_preview_escapes_the_plain_text_it_shows(db, client, staff):
    """The text body is plain text, not markup: inside the admin's HTML it is escaped."""
    seed_inventory()
    policy = Policy.objects.create(slug="terms", title="Terms & Conditions")
    for summary in ("First.", '</pre><form action="/admin/">D\'Ávila</form>'):
        version = policy_services.policy_version_draft_save(
            version=PolicyVersion(
                policy=policy,
                body="## Terms",
                summary=summary,
                effective_date=policy_services.earliest_effective_date(material=False),
            )
        )
    policy_services.policy_version_publish(version=policy.versions.get(summary="First."))
    client.force_login(staff)
    url = reverse("admin:policies_version_publish", args=[version.pk])
    html = client.get(url).content.decode()
    assert "&lt;/pre&gt;&lt;form action=&quot;/admin/&quot;&gt;D&#x27;Ávila&lt;/form&gt;" in html
    assert '<form action="/admin/">' not in html
