"""The consents app's emails, one function each (house style)."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

from consents.models import NewsletterSignup
from portal.mail import outbound_email_queue, render_email

NEWSLETTER_SALT = "consents.newsletter.confirm"


def newsletter_token(signup: NewsletterSignup) -> str:
    # The creation time is signed too: a new sign-up for the same address voids older links.
    return signing.dumps(
        {"s": str(signup.subject_id), "t": signup.created_at.isoformat()}, salt=NEWSLETTER_SALT
    )


def newsletter_confirmation(*, signup: NewsletterSignup, request=None) -> None:
    from consents.services import NEWSLETTER_CONFIRMATION_DAYS

    url = settings.SITE_URL + reverse(
        "consents:newsletter_confirm", kwargs={"token": newsletter_token(signup)}
    )
    context = {"confirm_url": url, "days": NEWSLETTER_CONFIRMATION_DAYS, "signup": signup}
    subject, text, html = render_email(
        "emails/newsletter_confirm", context, language=signup.language
    )
    outbound_email_queue(
        to=signup.email,
        subject=subject,
        body_text=text,
        body_html=html,
        kind="emails/newsletter_confirm",
    )
