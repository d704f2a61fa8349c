"""The policy-update email, one per notice (policies/notices.py; house style:
one function per email; templates under templates/emails/)."""

from __future__ import annotations

from django.conf import settings
from django.core import mail, signing
from django.urls import reverse
from django.utils import formats, translation

from consents import emails as consent_emails
from policies.notices import Notice
from portal.mail import render_email

NOTICE_SALT = "policies.notice"
ACKNOWLEDGE_SALT = "policies.acknowledge"
# One one-click stop for every optional email: newsletter emails use it too.
UNSUBSCRIBE_SALT = consent_emails.ONE_CLICK_STOP_SALT


def token(notice_id: int, salt: str) -> str:
    """The signed name of a notice (its outbox row's id) in the email's links."""
    return signing.dumps({"n": notice_id}, salt=salt)


def links(notification: Notice) -> dict[str, str]:
    site = settings.SITE_URL
    return {
        "notice_url": site
        + reverse("policies:notice", kwargs={"token": token(notification.pk, NOTICE_SALT)}),
        "acknowledge_url": site
        + reverse(
            "policies:acknowledge_link",
            kwargs={"token": token(notification.pk, ACKNOWLEDGE_SALT)},
        ),
        "unsubscribe_url": site
        + reverse(
            "policies:unsubscribe", kwargs={"token": token(notification.pk, UNSUBSCRIBE_SALT)}
        ),
        "panel_url": site + reverse("me_policies"),
    }


def policy_update(notification: Notice, *, connection=None) -> mail.EmailMultiAlternatives:
    version = notification.version
    urls = links(notification)
    with translation.override(notification.language):
        context = {
            "version": version,
            "policy_title": version.policy.display_title,
            "summary": version.localized("summary"),
            "effective_date": formats.date_format(version.effective_date, "DATE_FORMAT"),
            "link_days": settings.POLICY_LINK_DAYS,
            **urls,
        }
    subject, text, html = render_email(
        "emails/policy_update", context, language=notification.language
    )
    message = mail.EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.email],
        connection=connection,
        headers={
            "Message-ID": notification.message_id,
            # RFC 8058: one-click unsubscribe from optional emails.
            **consent_emails.one_click_stop_headers(urls["unsubscribe_url"]),
        },
    )
    message.attach_alternative(html, "text/html")
    return message
