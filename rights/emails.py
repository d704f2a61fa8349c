"""The rights app's emails, one function each (house style), through the
outbox: each is written in the transaction of the decision it announces."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import formats, timezone, translation

from portal.mail import outbound_email_queue, render_email
from rights import waiting
from rights.models import RightsRequest


def _recipient(request: RightsRequest) -> tuple[str, str]:
    """The address and language to answer in: the account's when there is one."""
    if request.user_id and request.user is not None:
        return request.user.email, request.user.language or request.language
    return request.email, request.language


def _queue(request: RightsRequest, template_prefix: str, context: dict) -> None:
    to, language = _recipient(request)
    if not to:
        return  # staff answer a letter with no address by post
    with translation.override(language):
        context = {
            "kind": request.get_kind_display(),
            "received": formats.date_format(timezone.localtime(request.received_at), "DATE_FORMAT"),
            "due": formats.date_format(timezone.localtime(request.due_at), "DATE_FORMAT"),
            "purposes": [p.display_name for p in request.purposes.all()],
            "requests_url": settings.SITE_URL + reverse("me_requests") if request.user_id else "",
            **context,
        }
    subject, text, html = render_email(template_prefix, context, language=language)
    outbound_email_queue(
        to=to,
        subject=subject,
        body_text=text,
        body_html=html,
        template=template_prefix,
        subject_id=request.subject_id,
    )


def request_extended(*, request: RightsRequest) -> None:
    """GDPR Art. 12(3): the new date and why, inside the first month."""
    _queue(request, "emails/rights_request_extended", {"reason": request.extension_reason})


def request_refused(*, request: RightsRequest) -> None:
    """Why, and the right to complain (GDPR Art. 12(4))."""
    _queue(request, "emails/rights_request_refused", {"reason": request.refusal_reason})


def request_done(*, request: RightsRequest) -> None:
    _queue(
        request,
        "emails/rights_request_done",
        {"answer": request.answer, "restriction": request.kind == "restriction"},
    )


def requests_due(*, requests: list[RightsRequest], now) -> None:
    """To the DPO: the open requests overdue or due soon, earliest first."""
    language = settings.LANGUAGE_CODE
    systems = waiting.waiting_on_many(r.pk for r in requests)
    with translation.override(language):
        rows = [
            {
                "kind": r.get_kind_display(),
                "status": r.get_status_display(),
                "jurisdiction": r.get_jurisdiction_display(),
                "due": formats.date_format(timezone.localtime(r.due_at), "DATETIME_FORMAT"),
                "overdue": r.due_at <= now,
                "waiting": ", ".join(systems.get(r.pk, [])),
                "url": settings.SITE_URL
                + reverse("admin:rights_rightsrequest_change", args=[r.pk]),
            }
            for r in requests
        ]
    context = {
        "rows": rows,
        "overdue": sum(1 for row in rows if row["overdue"]),
        "due_soon": sum(1 for row in rows if not row["overdue"]),
        "days": settings.RIGHTS_DUE_SOON_DAYS,
        "queue_url": settings.SITE_URL + reverse("admin:rights_rightsrequest_changelist"),
    }
    subject, text, html = render_email("emails/rights_requests_due", context, language=language)
    outbound_email_queue(
        to=settings.DPO_EMAIL,
        subject=subject,
        body_text=text,
        body_html=html,
        template="emails/rights_requests_due",
    )


ERASURE_CANCEL_SALT = "rights.erasure.cancel"


def erasure_cancel_token(request: RightsRequest) -> str:
    return signing.dumps({"r": str(request.uuid)}, salt=ERASURE_CANCEL_SALT)


def erasure_from_token(token: str) -> RightsRequest | None:
    """The erasure a cancel link names, or None when the link was altered or
    is older than a grace period (and a day) can be."""
    max_age = (settings.RIGHTS_ERASURE_GRACE_DAYS + 1) * 24 * 3600
    try:
        data = signing.loads(token, salt=ERASURE_CANCEL_SALT, max_age=max_age)
        return RightsRequest.objects.filter(uuid=uuid.UUID(data["r"]), kind="erasure").first()
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None


def erasure_scheduled(*, request: RightsRequest) -> None:
    """The account is closed (or the subscription's erasure asked for): the date
    the data goes, what stays and why, and how to cancel until then."""
    with translation.override(_recipient(request)[1]):
        erase_on = formats.date_format(timezone.localtime(request.erase_after), "DATETIME_FORMAT")
    _queue(
        request,
        "emails/rights_erasure_scheduled",
        {
            "erase_on": erase_on,
            "has_account": request.user_id is not None,
            "cancel_url": settings.SITE_URL
            + reverse("rights:erasure_cancel", kwargs={"token": erasure_cancel_token(request)}),
        },
    )
