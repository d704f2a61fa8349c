"""Email: render in the recipient's language, write an outbox row, let Celery send it.

Every one-off email of the portal goes through outbound_email_queue(): an
outbox row (portal/outbox.py, kind "email") written in the transaction that
caused the email, sent by a task queued once that transaction commits, or by
the periodic sweep should that task be lost. Fan-outs (policy notices) have a
kind of their own and send through emails_send() as well: one SMTP connection
per claimed batch.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable

from django.conf import settings
from django.core import mail
from django.template import Context, TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from django.utils import translation

from portal import outbox
from portal.models import OutboxItem

# The outbox kind of one-off emails (account, newsletter, re-consent, the DPO's).
EMAIL = "email"
# The mail server went away: the rest of the batch waits, not only this message.
CONNECTION_ERRORS = (smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError)


def plain_text(rendered: str) -> str:
    """A template's output as a plain str. render_to_string() marks everything
    it returns safe for HTML, even a .txt template rendered without autoescaping,
    whose text is exactly what a person typed: shown inside a page (the admin's
    publish preview) it would be markup. A plain str is escaped wherever it goes."""
    return str.__str__(rendered)


def _render_plain_text(template_name: str, context: dict) -> str:
    """A .txt template rendered without autoescaping: plain text is never HTML-escaped
    ("Terms & Conditions", not "Terms &amp; Conditions"). The result is a plain
    `str`, never a string marked safe (as `str()` of one would be), so that an HTML page
    that shows it, such as the admin's preview, escapes it."""
    template = get_template(template_name).template  # the Django engine's own Template
    return plain_text(template.render(Context(context, autoescape=False)))


def render_email(template_prefix: str, context: dict, *, language: str) -> tuple[str, str, str]:
    """Render templates/<prefix>_subject.txt, _message.txt and (if present) _message.html.

    The subject and the plain-text body are plain text (not escaped); the HTML
    body is escaped as any HTML page, and carries the recipient's language."""
    with translation.override(language):
        context = {
            "CONTROLLER_NAME": settings.CONTROLLER_NAME,
            "CONTROLLER_EMAIL": settings.CONTROLLER_EMAIL,
            "DPO_NAME": settings.DPO_NAME,
            "DPO_EMAIL": settings.DPO_EMAIL,
            "SITE_URL": settings.SITE_URL,
            # There is no request (and so no i18n context processor) here.
            "LANGUAGE_CODE": translation.get_language(),
            **context,
        }
        subject = _render_plain_text(f"{template_prefix}_subject.txt", context)
        subject = " ".join(subject.split())
        text = _render_plain_text(f"{template_prefix}_message.txt", context)
        try:
            html = render_to_string(f"{template_prefix}_message.html", context)
        except TemplateDoesNotExist:
            html = ""  # a text-only email
    return subject, text, html


def outbound_email_queue(
    *,
    to: str,
    subject: str,
    body_text: str,
    body_html: str = "",
    headers: dict | None = None,
    template: str = "",
    subject_id=None,
) -> OutboxItem:
    """Write the email to the outbox in the caller's transaction; it leaves once
    that commits. template names the email (its template prefix): it stays, as
    the row's topic, once the body is cleared."""
    return outbox.outbox_queue(
        kind=EMAIL,
        topic=template,
        recipient=to,
        title=subject,
        subject_id=subject_id,
        payload={"body_text": body_text, "body_html": body_html, "headers": headers or {}},
    )


def outbound_message(item: OutboxItem, *, connection) -> mail.EmailMultiAlternatives:
    """The message of a row of kind "email", as it was written."""
    message = mail.EmailMultiAlternatives(
        subject=item.title,
        body=item.payload.get("body_text", ""),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[item.recipient],
        connection=connection,
        headers={"Message-ID": item.message_id, **item.payload.get("headers", {})},
    )
    if item.payload.get("body_html"):
        message.attach_alternative(item.payload["body_html"], "text/html")
    return message


def emails_send(batch: outbox.Batch, build: Callable[..., mail.EmailMessage]) -> None:
    """Send a claimed batch over one SMTP connection, each row marked sent as
    soon as the server accepts its message. A refused address or a message
    that cannot be built backs off alone; a lost connection stops the batch
    (the outbox releases the rest for a later try)."""
    connection = mail.get_connection(fail_silently=False)
    try:
        connection.open()
        for item in batch:
            try:
                build(item, connection=connection).send()
            except CONNECTION_ERRORS as exc:
                raise outbox.DeliveryInterrupted(f"{type(exc).__name__}: {exc}") from exc
            except Exception as exc:
                batch.failed(item, exc)
                continue
            batch.sent(item)
    finally:
        connection.close()


def send_outbound_emails(batch: outbox.Batch) -> None:
    """The handler of kind "email"."""
    emails_send(batch, outbound_message)
