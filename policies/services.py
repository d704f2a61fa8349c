"""Publishing policy versions, telling people, and hearing back from them."""

from __future__ import annotations

import logging
import smtplib
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from consents import selectors as consent_selectors
from consents.models import LegalBasis, NewsletterSignup
from consents.services import RequestFacts, optional_email_stop, reconsent_request_create
from policies import emails
from policies.models import Acknowledgement, Notification, Policy, PolicyVersion
from policies.selectors import version_content_hash

log = logging.getLogger(__name__)

BULK_SIZE = 1000


class PolicyError(ValueError):
    """A change that cannot be made; its message is for staff."""


def policy_version_update(*, version: PolicyVersion, **fields) -> PolicyVersion:
    """Edit a draft. A published version is never edited: publish a new one."""
    with transaction.atomic():
        locked = PolicyVersion.objects.select_for_update().get(pk=version.pk)
        if locked.is_published:
            raise PolicyError(
                _("Version %(number)s is published and cannot be changed; publish a new version.")
                % {"number": locked.number}
            )
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save(update_fields=list(fields))
    return locked


def policy_version_draft_save(*, version: PolicyVersion) -> PolicyVersion:
    """Create or edit a draft (the admin form's save)."""
    with transaction.atomic():
        if version.pk is not None:
            stored = PolicyVersion.objects.select_for_update().get(pk=version.pk)
            if stored.is_published:
                raise PolicyError(
                    _("A published version cannot be changed; publish a new version.")
                )
        version.status = PolicyVersion.Status.DRAFT
        version.save()
    return version


def earliest_effective_date(*, material: bool):
    today = timezone.localdate()
    return today + timedelta(days=settings.POLICY_MATERIAL_NOTICE_DAYS) if material else today


def policy_version_check(*, version: PolicyVersion) -> None:
    if version.is_published:
        raise PolicyError(_("This version is already published."))
    if not version.body.strip() or not version.summary.strip():
        raise PolicyError(_("A version needs its text and a summary of what changed."))
    earliest = earliest_effective_date(material=version.material)
    if version.effective_date < earliest:
        if version.material:
            raise PolicyError(
                _(
                    "A material change takes effect at least %(days)s days after it is "
                    "published, so that people can decide before it applies: choose "
                    "%(date)s or later."
                )
                % {"days": settings.POLICY_MATERIAL_NOTICE_DAYS, "date": earliest.isoformat()}
            )
        raise PolicyError(_("The effective date cannot be in the past."))


@dataclass(frozen=True)
class Published:
    version: PolicyVersion
    notifications: int


def policy_version_publish(*, version: PolicyVersion, by=None) -> Published:
    """Publish a draft and, in the same transaction, write one notification per
    recipient. The emails leave once it commits (a Celery task, and the
    periodic sweep should that task be lost)."""
    from policies.tasks import dispatch_notifications

    with transaction.atomic():
        Policy.objects.select_for_update().get(pk=version.policy_id)
        version = PolicyVersion.objects.select_for_update().get(pk=version.pk)
        policy_version_check(version=version)
        last = version.policy.versions.aggregate(n=Max("number"))["n"] or 0
        version.number = last + 1
        version.status = PolicyVersion.Status.PUBLISHED
        version.published_at = timezone.now()
        version.published_by = by
        version.content_hash = version_content_hash(version)
        version.save(
            update_fields=["number", "status", "published_at", "published_by", "content_hash"]
        )
        # Deciding again on the purposes it changes is asked apart from reading the
        # text: acknowledging the version answers the one, not the other.
        for purpose in version.changed_purposes.filter(legal_basis=LegalBasis.CONSENT):
            reconsent_request_create(
                purpose=purpose,
                policy_version_id=version.pk,
                asked_at=version.published_at,
                effective_date=version.effective_date,
                acting_user=by,
            )
        count = 0
        if last:  # the first version of a policy changes nothing: nobody to tell
            count = notifications_create(version=version)
            transaction.on_commit(lambda: dispatch_notifications.delay(version.pk), robust=True)
    return Published(version=version, notifications=count)


def recipients_count(*, version: PolicyVersion) -> int:
    return sum(1 for _row in _recipients(version))


def _recipients(version: PolicyVersion):
    """(email, language, subject_id, user_id) of everyone to tell: every active
    customer with a verified address and every confirmed newsletter subscriber.
    A change that is not material is optional email: only those who still
    accept optional emails get it."""
    users = get_user_model().objects.filter(
        is_active=True,
        is_staff=False,
        emailaddress__primary=True,
        emailaddress__verified=True,
    )
    subscribers = NewsletterSignup.objects.filter(status=NewsletterSignup.Status.CONFIRMED)
    if not version.material:
        emailable = consent_selectors.subjects_accepting_optional_email()
        users = users.filter(subject_id__in=emailable)
        subscribers = subscribers.filter(subject_id__in=emailable)
    for email, language, subject_id, user_id in users.values_list(
        "emailaddress__email", "language", "subject_id", "pk"
    ).iterator(chunk_size=BULK_SIZE):
        yield email, language, subject_id, user_id
    for email, language, subject_id in subscribers.values_list(
        "email", "language", "subject_id"
    ).iterator(chunk_size=BULK_SIZE):
        yield email, language, subject_id, None


def notifications_create(*, version: PolicyVersion) -> int:
    """One row per recipient, in bulk. Running it again adds nobody twice."""
    before = Notification.objects.filter(version=version).count()
    batch: list[Notification] = []
    now = timezone.now()
    for email, language, subject_id, user_id in _recipients(version):
        batch.append(
            Notification(
                version=version,
                email=email.lower(),
                language=language or settings.LANGUAGE_CODE,
                subject_id=subject_id,
                user_id=user_id,
                created_at=now,
            )
        )
        if len(batch) >= BULK_SIZE:
            Notification.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    if batch:
        Notification.objects.bulk_create(batch, ignore_conflicts=True)
    return Notification.objects.filter(version=version).count() - before


# Sending ------------------------------------------------------------------------


def _claimable(version_id: int | None, now):
    due = Q(status=Notification.Status.PENDING, lease_until__isnull=True) | Q(
        status__in=[Notification.Status.PENDING, Notification.Status.SENDING],
        lease_until__lte=now,
    )
    # A row that used up its attempts (say, its worker died each time) is not
    # claimed again: the sweep marks it failed.
    query = Notification.objects.filter(due, attempts__lt=settings.POLICY_NOTIFICATION_MAX_ATTEMPTS)
    return query if version_id is None else query.filter(version_id=version_id)


def notifications_claim(*, version_id: int, limit: int) -> list[Notification]:
    """Lease up to `limit` rows to this worker. Rows another worker holds are
    skipped, not waited for (SELECT ... FOR UPDATE SKIP LOCKED)."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            _claimable(version_id, now)
            .order_by("id")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        Notification.objects.filter(id__in=ids).update(
            status=Notification.Status.SENDING,
            lease_until=now + settings.POLICY_NOTIFICATION_LEASE,
            attempts=F("attempts") + 1,
        )
    return list(Notification.objects.filter(id__in=ids).select_related("version__policy"))


def _release(row: Notification, error: str) -> None:
    final = row.attempts >= settings.POLICY_NOTIFICATION_MAX_ATTEMPTS
    Notification.objects.filter(pk=row.pk, status=Notification.Status.SENDING).update(
        status=Notification.Status.FAILED if final else Notification.Status.PENDING,
        lease_until=None if final else timezone.now() + timedelta(seconds=30 * 2**row.attempts),
        last_error=error[:2000],
    )


def _renew_lease(rows: list[Notification]) -> list[Notification]:
    """Extend the lease of the rows still ours; return those. A row whose lease
    ran out and was claimed by another worker is left to it, not sent twice."""
    lease_until = timezone.now() + settings.POLICY_NOTIFICATION_LEASE
    kept = []
    for row in rows:
        if Notification.objects.filter(
            pk=row.pk, status=Notification.Status.SENDING, lease_until=row.lease_until
        ).update(lease_until=lease_until):
            row.lease_until = lease_until
            kept.append(row)
    return kept


class DeliveryInterrupted(Exception):
    """The mail server went away mid-batch; the rest of the batch was released."""


def notification_batch_send(*, version_id: int, limit: int | None = None) -> int:
    """Claim a batch, send it over one SMTP connection, mark each row sent as
    soon as its message is accepted. Returns how many were sent."""
    rows = notifications_claim(
        version_id=version_id, limit=limit or settings.POLICY_NOTIFICATION_BATCH
    )
    if not rows:
        return 0
    sent = 0
    renew_every = settings.POLICY_NOTIFICATION_LEASE.total_seconds() / 3
    renewed_at = time.monotonic()
    connection = mail.get_connection(fail_silently=False)
    try:
        connection.open()
        while rows:
            if time.monotonic() - renewed_at > renew_every:
                rows, renewed_at = _renew_lease(rows), time.monotonic()
                if not rows:
                    break
            row = rows.pop(0)
            try:
                message = emails.policy_update(row, connection=connection)
                message.send()
            except (smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError) as exc:
                for pending in [row, *rows]:
                    _release(pending, f"{type(exc).__name__}: {exc}")
                raise DeliveryInterrupted(str(exc)) from exc
            except Exception as exc:
                # This recipient only (refused address, a message that cannot be
                # built): back off, and after the last attempt, fail with the error.
                log.warning("notification %s not sent: %s", row.pk, exc)
                _release(row, f"{type(exc).__name__}: {exc}")
                continue
            Notification.objects.filter(
                pk=row.pk, status=Notification.Status.SENDING, lease_until=row.lease_until
            ).update(
                status=Notification.Status.SENT,
                sent_at=timezone.now(),
                lease_until=None,
                last_error="",
            )
            sent += 1
    except OSError as exc:
        # Could not connect at all: give every row back for a later try.
        for row in rows:
            _release(row, f"{type(exc).__name__}: {exc}")
        raise DeliveryInterrupted(str(exc)) from exc
    finally:
        connection.close()
    return sent


def notifications_pending(*, version_id: int | None = None) -> bool:
    return _claimable(version_id, timezone.now()).exists()


def notifications_due_versions() -> list[int]:
    """Versions with rows a lost task or a dead worker left behind, or whose
    backoff is over, and that no sender is working on now (a live lease)."""
    now = timezone.now()
    Notification.objects.filter(
        status__in=[Notification.Status.PENDING, Notification.Status.SENDING],
        attempts__gte=settings.POLICY_NOTIFICATION_MAX_ATTEMPTS,
        lease_until__lte=now,
    ).update(
        status=Notification.Status.FAILED,
        lease_until=None,
        last_error=_("Gave up: every attempt ended without an answer from the mail server."),
    )
    stale = Q(status=Notification.Status.PENDING, lease_until__isnull=True) & Q(
        created_at__lt=now - settings.POLICY_NOTIFICATION_GRACE
    )
    expired = Q(
        status__in=[Notification.Status.PENDING, Notification.Status.SENDING],
        lease_until__lte=now,
    )
    busy = Notification.objects.filter(
        status=Notification.Status.SENDING, lease_until__gt=now
    ).values("version_id")
    return list(
        Notification.objects.filter(stale | expired)
        .exclude(version_id__in=busy)
        .values_list("version_id", flat=True)
        .distinct()
        .order_by("version_id")
    )


def notifications_retry_failed(*, version: PolicyVersion) -> int:
    """Staff retry: failed rows go back to pending with a fresh count."""
    return Notification.objects.filter(version=version, status=Notification.Status.FAILED).update(
        status=Notification.Status.PENDING, attempts=0, lease_until=None
    )


# Hearing back ---------------------------------------------------------------------


def policy_acknowledge(
    *, subject_id, version: PolicyVersion, method: str, user=None
) -> Acknowledgement:
    """Record that someone read a version. Acknowledging twice keeps the first."""
    ack, _created = Acknowledgement.objects.get_or_create(
        subject_id=subject_id, version=version, defaults={"method": method, "user": user}
    )
    return ack


def optional_email_unsubscribe(*, subject_id: uuid.UUID, facts: RequestFacts | None = None) -> list:
    """RFC 8058 one-click: the recipient's optional emails stop (their emailed
    consents are withdrawn, method "email link"). Material policy changes are
    still announced, as the law requires."""
    return optional_email_stop(subject_id=subject_id, facts=facts)
