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
from django.template.loader import render_to_string
from django.utils import timezone, translation

from portal.models import OutboundEmail


def render_email(template_prefix: str, context: dict, *, language: str) -> tuple[str, str, str]:
    """Render templates/<prefix>_subject.txt, _message.txt and (if present) _message.html."""
    with translation.override(language):
        subject = render_to_string(f"{template_prefix}_subject.txt", context)
        subject = " ".join(subject.split())
        text = render_to_string(f"{template_prefix}_message.txt", context)
        try:
            html = render_to_string(f"{template_prefix}_message.html", context)
        except Exception as exc:  # TemplateDoesNotExist, without importing the loader's class
            if type(exc).__name__ != "TemplateDoesNotExist":
                raise
            html = ""
    return subject, text, html


def outbound_email_queue(
    *, to: str, subject: str, body_text: str, body_html: str = "", headers: dict | None = None
) -> OutboundEmail:
    from portal.tasks import deliver_outbound_email

    email = OutboundEmail.objects.create(
        to=to, subject=subject, body_text=body_text, body_html=body_html, headers=headers or {}
    )
    transaction.on_commit(lambda: deliver_outbound_email.delay(email.pk))
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
    OutboundEmail.objects.filter(pk=email.pk).update(
        status=OutboundEmail.Status.SENT, sent_at=timezone.now(), lease_until=None, last_error=""
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
    """Rows that should be sent now: pending or with an expired lease."""
    now = timezone.now()
    return list(
        OutboundEmail.objects.filter(
            status__in=[OutboundEmail.Status.PENDING, OutboundEmail.Status.SENDING]
        )
        .exclude(lease_until__gt=now)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
