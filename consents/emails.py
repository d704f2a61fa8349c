"""The consents app's emails, one function each (house style)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import formats, translation

from consents.models import ConsentEvent, NewsletterSignup
from portal.mail import outbound_email_queue, render_email

NEWSLETTER_SALT = "consents.newsletter.confirm"
# The one-click stop (RFC 8058) of every optional email, policy emails included
# (policies.emails.UNSUBSCRIBE_SALT is this): one endpoint, /policies/unsubscribe/,
# whose token names a notification or, in newsletter emails, the subscriber.
ONE_CLICK_STOP_SALT = "policies.unsubscribe"
RECEIPTS_SALT = "consents.newsletter.receipts"
# The subscriber's link to have their subscription and data erased, served by
# the rights app (/rights/erase/<token>/): a name in a URL, no import of it.
ERASURE_SALT = "rights.erasure.newsletter"


def newsletter_token(signup: NewsletterSignup) -> str:
    # The creation time is signed too: a new sign-up for the same address voids older links.
    return signing.dumps(
        {"s": str(signup.subject_id), "t": signup.created_at.isoformat()}, salt=NEWSLETTER_SALT
    )


def subject_token(subject_id: uuid.UUID, *, salt: str) -> str:
    """A link for the person behind a ledger subject id, who may have no account."""
    return signing.dumps({"s": str(subject_id)}, salt=salt)


def subject_from_token(token: str, *, salt: str) -> uuid.UUID | None:
    """The subject a link names, or None when it was altered or is older than
    the links of policy emails may be (POLICY_LINK_DAYS)."""
    try:
        data = signing.loads(token, salt=salt, max_age=settings.POLICY_LINK_DAYS * 24 * 3600)
        return uuid.UUID(data["s"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None


def newsletter_links(subject_id: uuid.UUID) -> dict[str, str]:
    """Paths of the subscriber's one-click stop, receipts and erasure pages."""
    return {
        "stop_path": reverse(
            "policies:unsubscribe",
            kwargs={"token": subject_token(subject_id, salt=ONE_CLICK_STOP_SALT)},
        ),
        "receipts_path": reverse(
            "consents:newsletter_receipts",
            kwargs={"token": subject_token(subject_id, salt=RECEIPTS_SALT)},
        ),
        "erase_path": reverse(
            "rights:newsletter_erase",
            kwargs={"token": subject_token(subject_id, salt=ERASURE_SALT)},
        ),
    }


def one_click_stop_headers(stop_url: str) -> dict[str, str]:
    """RFC 8058: the mail client offers the stop and POSTs it without a cookie."""
    return {
        "List-Unsubscribe": f"<{stop_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def _queue(signup: NewsletterSignup, template_prefix: str, context: dict) -> None:
    links = {
        name.replace("_path", "_url"): settings.SITE_URL + path
        for name, path in newsletter_links(signup.subject_id).items()
    }
    subject, text, html = render_email(
        template_prefix, {"signup": signup, **links, **context}, language=signup.language
    )
    outbound_email_queue(
        to=signup.email,
        subject=subject,
        body_text=text,
        body_html=html,
        headers=one_click_stop_headers(links["stop_url"]),
        template=template_prefix,
    )


def newsletter_confirmation(*, signup: NewsletterSignup, request=None) -> None:
    from consents.services import NEWSLETTER_CONFIRMATION_DAYS

    url = settings.SITE_URL + reverse(
        "consents:newsletter_confirm", kwargs={"token": newsletter_token(signup)}
    )
    _queue(
        signup,
        "emails/newsletter_confirm",
        {"confirm_url": url, "days": NEWSLETTER_CONFIRMATION_DAYS},
    )


def newsletter_confirmed(*, signup: NewsletterSignup, granted: list[ConsentEvent]) -> None:
    """The receipt of a confirmation: what is now on, a link to the signed
    receipts, and the stop."""
    _queue(
        signup,
        "emails/newsletter_confirmed",
        {"granted": granted, "link_days": settings.POLICY_LINK_DAYS},
    )


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
    outbound_email_queue(
        to=email,
        subject=subject,
        body_text=text,
        body_html=html,
        template="emails/reconsent_request",
    )


def ledger_checkpoint(*, checkpoint) -> None:
    """To the DPO: a signed checkpoint of the ledger, to keep outside the portal
    (verify_ledger names any rollback, wipe or rewrite before it)."""
    from consents.checkpoints import checkpoint_time

    context = {
        "size": checkpoint.size,
        "root": checkpoint.root,
        "time": checkpoint_time(checkpoint.created_at),
        "token": checkpoint.token,
        "list_url": settings.SITE_URL + reverse("consents:ledger_checkpoints"),
        "jwks_url": settings.SITE_URL + reverse("consents:jwks"),
    }
    subject, text, html = render_email(
        "emails/ledger_checkpoint", context, language=settings.LANGUAGE_CODE
    )
    outbound_email_queue(
        to=settings.DPO_EMAIL,
        subject=subject,
        body_text=text,
        body_html=html,
        template="emails/ledger_checkpoint",
    )
