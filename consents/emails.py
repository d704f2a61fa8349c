"""The consents app's emails, one function each (house style)."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import formats, translation

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
    outbound_email_queue(to=signup.email, subject=subject, body_text=text, body_html=html)


RECONSENT_SALT = "consents.reconsent"


def reconsent_token(*, request_id: int, subject_id) -> str:
    return signing.dumps({"r": request_id, "s": str(subject_id)}, salt=RECONSENT_SALT)


def reconsent_request(*, request, email: str, language: str, subject_id, has_account: bool) -> None:
    """A purpose someone granted now does more with their data: say what, by
    when their grant lapses, and how to keep it or withdraw it (one click, or
    in their account)."""
    from consents import changes

    token = reconsent_token(request_id=request.pk, subject_id=subject_id)
    with translation.override(language):
        content = request.notice.text(language) if request.notice else {}
        context = {
            "purpose_name": content.get("name") or request.purpose.display_name,
            "changes": changes.describe(request.differences, language),
            "effective_date": formats.date_format(request.effective_date, "DATE_FORMAT"),
            "decide_url": settings.SITE_URL
            + reverse("consents:reconsent_link", kwargs={"token": token}),
            "panel_url": settings.SITE_URL + reverse("me") + f"#purpose-{request.purpose.key}"
            if has_account
            else "",
        }
    subject, text, html = render_email("emails/reconsent_request", context, language=language)
    outbound_email_queue(to=email, subject=subject, body_text=text, body_html=html)
