"""Outbound email: render in the recipient's language, write a row, let Celery send it.

Every email of the portal goes through outbound_email_queue(): the row is part
of the transaction that caused the email, and the task is queued only once
that transaction commits. A lost task is picked up again by the periodic sweep.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core import mail
from django.db import transaction
from django.db.models import Q
from django.template import Context, TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from django.utils import timezone, translation

from portal.models import OutboundEmail

CLEARED_BODY = {"body_text": "", "body_html": "", "headers": {}}


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
    kind: str = "",
) -> OutboundEmail:
    """kind names the email (its template prefix): it stays once the body is cleared."""
    from portal.tasks import deliver_outbound_email

    email = OutboundEmail.objects.create(
        to=to,
        subject=subject,
        kind=kind,
        body_text=body_text,
        body_html=body_html,
        headers=headers or {},
    )
    # robust: a broker outage must not turn a committed change into an error
    # page. The row is safe in the database and the sweep sends it later.
    transaction.on_commit(lambda: deliver_outbound_email.delay(email.pk), robust=True)
    return email


def outbound_email_claim(*, email_id: int) -> OutboundEmail | None:
    """Lease one row to this worker. None when another worker has it or it is done."""
    now = timezone.now()
    lease_until = now + settings.OUTBOUND_EMAIL_LEASE
    with transaction.atomic():
        email = (
            OutboundEmail.objects.select_for_update(skip_locked=True)
            .filter(
                pk=email_id, status__in=[OutboundEmail.Status.PENDING, OutboundEmail.Status.SENDING]
            )
            .first()
        )
        if email is None:
            return None
        if (
            email.status == OutboundEmail.Status.SENDING
            and email.lease_until
            and email.lease_until > now
        ):
            return None  # another worker holds a live lease
        email.status = OutboundEmail.Status.SENDING
        email.lease_until = lease_until
        email.attempts += 1
        email.save(update_fields=["status", "lease_until", "attempts"])
    return email


def outbound_email_send(*, email_id: int) -> bool:
    """Send one row if it can be claimed. Returns True when it left."""
    email = outbound_email_claim(email_id=email_id)
    if email is None:
        return False
    message = mail.EmailMultiAlternatives(
        subject=email.subject,
        body=email.body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email.to],
        headers={"Message-ID": email.message_id, **email.headers},
    )
    if email.body_html:
        message.attach_alternative(email.body_html, "text/html")
    try:
        message.send()
    except Exception as exc:
        outbound_email_fail(email_id=email.pk, error=f"{type(exc).__name__}: {exc}")
        raise
    # The body leaves the database with the email: it holds working links
    # (password reset, verification) that nobody may read back from here.
    OutboundEmail.objects.filter(pk=email.pk).update(
        status=OutboundEmail.Status.SENT,
        sent_at=timezone.now(),
        lease_until=None,
        last_error="",
        **CLEARED_BODY,
    )
    return True


def outbound_email_fail(*, email_id: int, error: str) -> None:
    """Release the lease after a failed attempt; give up after the last one."""
    email = OutboundEmail.objects.get(pk=email_id)
    final = email.attempts >= settings.OUTBOUND_EMAIL_MAX_ATTEMPTS
    OutboundEmail.objects.filter(pk=email_id).update(
        status=OutboundEmail.Status.FAILED if final else OutboundEmail.Status.PENDING,
        # The sweep waits for this before trying again: backoff doubles per attempt.
        lease_until=None if final else timezone.now() + timedelta(seconds=30 * 2**email.attempts),
        last_error=error[:2000],
    )


def outbound_email_due_ids(*, limit: int = 500) -> list[int]:
    """Rows whose task was lost or whose backoff is over: pending for longer than
    the grace period (their task should have run by then), or with an expired
    lease. Fresh rows are left to the task queued when they were written."""
    now = timezone.now()
    unsent = [OutboundEmail.Status.PENDING, OutboundEmail.Status.SENDING]
    lost = Q(
        status=OutboundEmail.Status.PENDING,
        lease_until__isnull=True,
        created_at__lt=now - settings.OUTBOUND_EMAIL_GRACE,
    )
    lease_over = Q(lease_until__lte=now)
    return list(
        OutboundEmail.objects.filter(Q(status__in=unsent) & (lost | lease_over))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def outbound_email_bodies_expire(*, now=None) -> int:
    """Clear the bodies of emails that never left once their links have expired
    (OUTBOUND_EMAIL_UNSENT_KEPT): failed rows, and pending rows, which are given
    up as failed, since an email whose links no longer work is not worth
    sending. A row a worker is sending right now is left to the next run.
    Returns how many rows were cleared."""
    now = now or timezone.now()
    expired = OutboundEmail.objects.exclude(body_text="").filter(
        created_at__lt=now - settings.OUTBOUND_EMAIL_UNSENT_KEPT
    )
    with transaction.atomic():
        abandoned = expired.filter(
            Q(status=OutboundEmail.Status.PENDING)
            | Q(status=OutboundEmail.Status.SENDING, lease_until__lte=now)
        ).update(
            status=OutboundEmail.Status.FAILED,
            lease_until=None,
            last_error="Abandoned unsent: its links had expired.",
            **CLEARED_BODY,
        )
        failed = expired.filter(status=OutboundEmail.Status.FAILED).update(**CLEARED_BODY)
    return abandoned + failed
