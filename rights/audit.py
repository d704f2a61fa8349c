"""The staff audit trail: who at the company looked at one person's data or
changed something, when, and why (GDPR Art. 5(2) and 32, LGPD Art. 37 and 46).

- Writes: every staff service takes a keyword-only `acting_user` and calls
  `record()` inside its own transaction, after its change (as Zulip's actions
  write RealmAuditLog): the row and the change commit or roll back together.
- Reads: an admin page that shows one person's data (rights.admin's
  AuditedPersonAdmin) asks `why()` first: an open request of that person, or a
  reason the staff member stated for this person in this session; without one
  it asks for a reason before it shows anything. Then `record_read()` writes
  the row, and only then is the page built.
- The rows name the person by their opaque subject id, never an email; staff
  by a snapshot of their address and name (the account may go later).
- `accesses(subject_id)` is the person's view of it, for their copy.
- Rows are kept AUDIT_KEPT_DAYS, then deleted by the retention task (the
  "audit-trail" rule below, the only DELETE the database lets through).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from rights.models import (
    OPEN_STATUSES,
    READ_ACTIONS,
    AuditAction,
    AuditEntry,
    AuditPurge,
    RightsRequest,
)

REASON_MAX = 1000
_SESSION_KEY = "audit_reasons"


class AuditError(ValueError):
    """An audit row that cannot be written; its message is for staff."""


def _staff(acting_user) -> None:
    if acting_user is None or not getattr(acting_user, "is_staff", False):
        raise AuditError(_("Only staff actions are audited; this one has no staff member."))


def record(
    *,
    acting_user,
    action: str,
    subject_id: uuid.UUID | None = None,
    request: RightsRequest | None = None,
    reason: str = "",
    target: str = "",
    details: dict | None = None,
) -> AuditEntry:
    """Append one row. Services call it inside their transaction, after the
    change it records; a refused row (a database error) rolls the change back."""
    _staff(acting_user)
    if action not in AuditAction.values:
        raise AuditError(f"unknown audit action {action!r}")
    if request is not None and subject_id is None:
        subject_id = request.subject_id
    reason = (reason or "").strip()
    if action in READ_ACTIONS and subject_id is not None and request is None and not reason:
        raise AuditError(_("Say why you need to see this person's data."))
    name = f"{acting_user.first_name} {acting_user.last_name}".strip()
    return AuditEntry.objects.create(
        at=timezone.now(),
        actor=acting_user,
        actor_email=acting_user.email,
        actor_name=name[:300],
        action=action,
        subject_id=subject_id,
        request_uuid=request.uuid if request is not None else None,
        request_kind=request.kind if request is not None else "",
        reason=reason[:REASON_MAX],
        target=target[:200],
        details=details or {},
    )


def target_of(obj: models.Model) -> str:
    """ "consents.purpose:newsletter": what a row is about, kept as text so that
    it stays meaningful after the object is gone. Never a person's email: an
    account is named by its subject id elsewhere, so only its pk goes here."""
    label = obj._meta.label_lower
    key = (
        getattr(obj, "key", None)
        or getattr(obj, "slug", None)
        or getattr(obj, "uuid", None)
        or obj.pk
    )
    return f"{label}:{key}"


# Why a person's data is opened ---------------------------------------------------------


@dataclass(frozen=True)
class Why:
    """The request a look served, or the reason the staff member stated."""

    request: RightsRequest | None = None
    reason: str = ""


def open_request_of(subject_id: uuid.UUID) -> RightsRequest | None:
    """The person's open request that is due first: what a look at their data serves."""
    return (
        RightsRequest.objects.filter(subject_id=subject_id, status__in=OPEN_STATUSES)
        .order_by("due_at", "pk")
        .first()
    )


def why(http_request, *, subject_id: uuid.UUID) -> Why | None:
    """An open request of the person, else the reason this staff member gave
    for them in this session within AUDIT_REASON_MINUTES; None: ask for one."""
    served = open_request_of(subject_id)
    if served is not None:
        return Why(request=served)
    stated = http_request.session.get(_SESSION_KEY, {}).get(str(subject_id))
    if not stated:
        return None
    until = parse_datetime(stated.get("until", ""))
    if until is None or until <= timezone.now():
        return None
    return Why(reason=stated.get("reason", ""))


def clean_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise AuditError(_("Say why you need to see this person's data."))
    if len(reason) > REASON_MAX:
        raise AuditError(_("Keep it under %(limit)s characters.") % {"limit": REASON_MAX})
    return reason


def reason_state(http_request, *, subject_id: uuid.UUID, reason: str) -> None:
    """Remember the reason staff gave to open this person's data, for this
    session and AUDIT_REASON_MINUTES. Writes no row: each look does."""
    reason = clean_reason(reason)
    until = timezone.now() + timedelta(minutes=settings.AUDIT_REASON_MINUTES)
    stated = dict(http_request.session.get(_SESSION_KEY, {}))
    stated = {  # drop expired ones, so the session does not grow
        key: value
        for key, value in stated.items()
        if (parse_datetime(value.get("until", "")) or until) > timezone.now()
    }
    stated[str(subject_id)] = {"reason": reason, "until": until.isoformat()}
    http_request.session[_SESSION_KEY] = stated


def record_read(
    *,
    acting_user,
    action: str,
    subject_id: uuid.UUID,
    reason: Why,
    target: str = "",
    details: dict | None = None,
) -> AuditEntry:
    """The row for a look at one person's data; write it before showing anything."""
    if action not in READ_ACTIONS:
        raise AuditError(f"{action!r} is not a read")
    with transaction.atomic():
        return record(
            acting_user=acting_user,
            action=action,
            subject_id=subject_id,
            request=reason.request,
            reason=reason.reason,
            target=target,
            details=details,
        )


# The person's view ---------------------------------------------------------------------


def accesses(subject_id: uuid.UUID) -> Iterator[dict]:
    """Who at the company looked at or acted on this person's data, when and
    why, oldest first, as plain values (`at` a datetime), read in chunks: the
    "Who looked at your data" section of their copy. Labels are in the active
    language. Staff are named as the company discloses them: their name when
    the account has one, and their work address."""
    rows = AuditEntry.objects.filter(subject_id=subject_id).order_by("at", "pk")
    kinds = dict(RightsRequest._meta.get_field("kind").choices)
    for entry in rows.iterator(chunk_size=500):
        yield {
            "at": entry.at,
            "staff": entry.actor_name or entry.actor_email,
            "staff_email": entry.actor_email,
            "action": entry.action,
            "action_label": str(entry.get_action_display()),
            "looked": entry.action in READ_ACTIONS,
            "request": str(entry.request_uuid) if entry.request_uuid else None,
            "request_kind": str(kinds.get(entry.request_kind, "")) if entry.request_kind else "",
            "reason": entry.reason,
        }


# Retention -----------------------------------------------------------------------------


def kept() -> timedelta:
    return timedelta(days=settings.AUDIT_KEPT_DAYS)


# The database refuses to delete a row younger than this (0004_audit's floor).
FLOOR = timedelta(days=365)


def expired(now: datetime) -> models.QuerySet:
    """Rows past AUDIT_KEPT_DAYS at `now`, and past the database's floor by the
    real clock (a `now` in the future never reaches a row the trigger keeps)."""
    cutoff = min(now - kept(), timezone.now() - FLOOR)
    return AuditEntry.objects.filter(at__lt=cutoff)


def purge(rows: models.QuerySet, now: datetime) -> int:
    """Delete `rows` (a batch of `expired`), inside the batch's transaction:
    state the cutoff to the trigger, delete, and remove the cutoff again before
    the transaction commits."""
    if not connection.in_atomic_block:
        raise AuditError("the audit trail is purged inside a transaction")
    cutoff = min(now - kept(), timezone.now() - FLOOR)
    stated = AuditPurge.objects.create(cutoff=cutoff)
    try:
        count, _details = rows.filter(at__lt=cutoff).delete()
    finally:
        AuditPurge.objects.filter(pk=stated.pk).delete()
    return count


LABEL = gettext_lazy("Record of staff access to your data (who looked at it, when and why)")
STATEMENT = gettext_lazy("kept %(days)s days, then deleted")
