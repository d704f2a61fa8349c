"""API keys, created and revoked by staff (each with its audit row), and the
log of the calls made with them."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from consents.models import ConsentEvent, Decision, Method, Purpose, PurposeNotice
from consents.services import ConsentError, RequestFacts, consent_record
from integrations.api import selectors
from integrations.api.problems import ApiProblem
from integrations.models import ApiCall, ApiCallPurge, ApiKey, ApiScope
from rights import audit
from rights.models import AuditAction

SECRET_PREFIX = "clz_"  # noqa: S105 (not a secret: what every key starts with)


class ApiKeyError(ValueError):
    """A key that cannot be made or changed; its message is for staff."""


def secret_hash(secret: str) -> str:
    """What is stored of a secret: 32 random bytes need no slow hash."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    secret: str  # shown once, to the staff member who made it; never stored


def api_key_create(
    *, name: str, scopes: list[str], expires_at: datetime | None = None, acting_user
) -> NewKey:
    name = (name or "").strip()
    if not name:
        raise ApiKeyError(_("Name the system that will use the key."))
    unknown = set(scopes) - set(ApiScope.values)
    if unknown or not scopes:
        raise ApiKeyError(_("Choose at least one scope among those offered."))
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiKeyError(_("The expiry must be in the future."))
    # The prefix names the key in lists and logs; the rest is 256 random bits.
    prefix = SECRET_PREFIX + secrets.token_hex(4)
    secret = f"{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        key = ApiKey.objects.create(
            name=name[:120],
            prefix=prefix,
            secret_hash=secret_hash(secret),
            scopes=sorted(set(scopes)),
            expires_at=expires_at,
            created_by=acting_user,
        )
        audit.record(
            acting_user=acting_user,
            action=AuditAction.API_KEY_CREATE,
            target=audit.target_of(key),
            details={"prefix": prefix, "scopes": key.scopes, "expires_at": _iso(expires_at)},
        )
    return NewKey(key=key, secret=secret)


def api_key_revoke(*, key: ApiKey, acting_user) -> bool:
    """Revoke at once; False when it already was (nothing written)."""
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().get(pk=key.pk)
        if key.revoked_at is not None:
            return False
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit.record(
            acting_user=acting_user,
            action=AuditAction.API_KEY_REVOKE,
            target=audit.target_of(key),
            details={"prefix": key.prefix},
        )
    return True


def api_call_record(
    *,
    key_id: int,
    operation: str,
    method: str,
    status: int,
    subject_id: uuid.UUID | None = None,
    purpose: str = "",
) -> None:
    """One row per call, written after the answer.

    On PostgreSQL, outside any transaction, the row is one round trip whose
    COMMIT does not wait for the WAL flush (synchronous_commit off for that
    transaction only): the flush was half the cost of a read through the API
    (bench/README.md). A crash of the database server may lose the last
    fraction of a second of call rows (wal_writer_delay, 200 ms by default),
    never a decision: the ledger's transactions wait for their flush as always."""
    values = {
        "at": timezone.now(),
        "key_id": key_id,
        "operation": operation[:64],
        "method": method[:8],
        "status": status,
        "subject_id": subject_id,
        # Only a validated key gets here; still, a NUL would fail the INSERT.
        "purpose": purpose.replace("\x00", "")[:50],
    }
    connection = transaction.get_connection()
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        ApiCall.objects.create(**values)
        return
    table = ApiCall._meta.db_table
    columns = ", ".join(values)
    with connection.cursor() as cursor:
        # Several statements in one message: Django's psycopg cursor binds on
        # the client (no server-side parameters), so this is one round trip.
        cursor.execute(
            f"BEGIN; SET LOCAL synchronous_commit TO OFF; "  # noqa: S608 (names are ours)
            f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(values))}); "
            f"COMMIT",
            list(values.values()),
        )


# Retention of the call log ----------------------------------------------------------

# The database refuses to delete a call younger than this (0005_api_call_retention).
CALLS_FLOOR = timedelta(days=30)


def calls_kept() -> timedelta:
    return timedelta(days=settings.API_CALLS_KEPT_DAYS)


def _calls_cutoff(now: datetime) -> datetime:
    # A `now` in the future never reaches a call the trigger keeps.
    return min(now - calls_kept(), timezone.now() - CALLS_FLOOR)


def calls_expired(now: datetime) -> models.QuerySet:
    """Calls past API_CALLS_KEPT_DAYS at `now` (and past the floor by the real clock)."""
    return ApiCall.objects.filter(at__lt=_calls_cutoff(now))


def calls_purge(rows: models.QuerySet, now: datetime) -> int:
    """Delete `rows` (a batch of calls_expired), inside the batch's
    transaction: state the cutoff to the trigger, delete, and remove the
    cutoff again before the transaction commits (as rights.audit.purge)."""
    if not connection.in_atomic_block:
        raise RuntimeError("the API call log is purged inside a transaction")
    cutoff = _calls_cutoff(now)
    stated = ApiCallPurge.objects.create(cutoff=cutoff)
    try:
        count, _details = rows.filter(at__lt=cutoff).delete()
    finally:
        ApiCallPurge.objects.filter(pk=stated.pk).delete()
    return count


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


# Decisions made in another channel -------------------------------------------------

# The collection methods another system may record (consents.models.Method).
CHANNELS = (Method.CHECKOUT, Method.CALL_CENTRE, Method.IN_STORE)


@dataclass(frozen=True)
class Recorded:
    event: ConsentEvent | None  # None: it repeated the standing decision
    notice: PurposeNotice


def decision_record(
    *, subject_id: uuid.UUID, purpose_key: str, decision: str, notice_version: int, method: str
) -> Recorded:
    """A decision the person made in another channel, against the notice
    version shown there, through the panel's own service (consent_record):
    it checks the notice, the purpose and the legal basis under the person's
    lock, and a refusal records nothing."""
    if method not in CHANNELS:
        raise ApiProblem("validation", f"Unknown channel “{method}”.")
    purpose = Purpose.objects.filter(key=purpose_key).first()
    if purpose is None:
        raise ApiProblem("unknown-purpose", f"There is no purpose “{purpose_key}”.")
    if not selectors.subject_known(subject_id):
        raise ApiProblem("unknown-subject", "The portal knows no one with this subject id.")
    notice = PurposeNotice.objects.filter(purpose=purpose, version=notice_version).first()
    current = purpose.notices.order_by("-version").values_list("version", flat=True).first()
    if notice is None:
        raise ApiProblem(
            "notice-stale",
            f"Version {notice_version} of this purpose's notice does not exist.",
            current_notice_version=current,
        )
    try:
        event = consent_record(
            subject_id=subject_id,
            purpose=purpose,
            decision=decision,
            method=method,
            notice=notice,
            facts=RequestFacts(),
            # A grant given again under a changed notice is a new event while asked.
            reconfirm=decision == Decision.GRANTED,
        )
    except ConsentError as error:
        code = {
            "notice_changed": "notice-stale",
            "retired": "purpose-retired",
            "no_notice": "no-notice",
            "not_optional": "not-on-consent",
        }.get(error.code, "validation")
        extra = {"current_notice_version": current} if code == "notice-stale" else {}
        raise ApiProblem(code, str(error), **extra) from None
    return Recorded(event=event, notice=notice)
