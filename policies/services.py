"""Publishing policy versions, telling people, and hearing back from them."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from consents import selectors as consent_selectors
from consents.models import LegalBasis, NewsletterSignup
from consents.services import RequestFacts, optional_email_stop, reconsent_request_create
from policies import notices
from policies.models import Acknowledgement, Policy, PolicyVersion
from policies.selectors import version_content_hash
from portal import events, outbox

log = logging.getLogger(__name__)

BULK_SIZE = outbox.BULK_SIZE


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


def _audit(acting_user, action: str, obj, **details) -> None:
    """A staff write's audit row, in the write's transaction (rights/audit.py).
    No acting_user: a command, the demo or a task did it, not a staff member."""
    if acting_user is None:
        return
    from rights import audit

    audit.record(
        acting_user=acting_user, action=action, target=audit.target_of(obj), details=details
    )


def policy_save(*, policy: Policy, acting_user) -> Policy:
    """Create or rename a policy (its versions are what customers read)."""
    with transaction.atomic():
        created = policy.pk is None
        policy.save()
        _audit(acting_user, "policy_save", policy, created=created)
    return policy


def policy_delete(*, policy: Policy, acting_user) -> None:
    """Delete a policy that has no version yet."""
    with transaction.atomic():
        policy = Policy.objects.select_for_update().get(pk=policy.pk)
        if policy.versions.exists():
            raise PolicyError(
                _("A policy with versions cannot be deleted: its versions are the record.")
            )
        _audit(acting_user, "policy_delete", policy, title=policy.title)
        policy.delete()


def policy_version_draft_save(*, version: PolicyVersion, acting_user=None) -> PolicyVersion:
    """Create or edit a draft (the admin form's save)."""
    with transaction.atomic():
        created = version.pk is None
        if not created:
            stored = PolicyVersion.objects.select_for_update().get(pk=version.pk)
            if stored.is_published:
                raise PolicyError(
                    _("A published version cannot be changed; publish a new version.")
                )
        version.status = PolicyVersion.Status.DRAFT
        version.save()
        _audit(acting_user, "policy_draft_save", version, created=created)
    return version


def policy_version_draft_delete(*, version: PolicyVersion, acting_user) -> None:
    """Delete a draft; a published version is never deleted."""
    with transaction.atomic():
        version = PolicyVersion.objects.select_for_update().get(pk=version.pk)
        if version.is_published:
            raise PolicyError(_("A published version cannot be deleted; publish a new version."))
        _audit(acting_user, "policy_draft_delete", version, policy=version.policy.slug)
        version.delete()


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


def policy_version_publish(*, version: PolicyVersion, acting_user=None) -> Published:
    """Publish a draft and, in the same transaction, write one notice per
    recipient to the outbox. The emails leave once it commits (the outbox's
    senders, and its periodic sweep should they be lost)."""
    with transaction.atomic():
        Policy.objects.select_for_update().get(pk=version.policy_id)
        version = PolicyVersion.objects.select_for_update().get(pk=version.pk)
        policy_version_check(version=version)
        last = version.policy.versions.aggregate(n=Max("number"))["n"] or 0
        version.number = last + 1
        version.status = PolicyVersion.Status.PUBLISHED
        version.published_at = timezone.now()
        version.published_by = acting_user
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
                acting_user=acting_user,
            )
        count = 0
        if last:  # the first version of a policy changes nothing: nobody to tell
            count = notifications_create(version=version)
        events.publish(
            events.POLICY_VERSION_PUBLISHED,
            {
                "policy": version.policy.slug,
                "version": version.number,
                "material": version.material,
                "effective_date": version.effective_date.isoformat(),
                "published_at": version.published_at.isoformat(),
            },
            at=version.published_at,
        )
        _audit(
            acting_user,
            "policy_publish",
            version,
            number=version.number,
            material=version.material,
            notifications=count,
        )
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
    """One outbox row per recipient, in bulk; their senders start once the
    transaction commits. Running it again adds nobody twice (the rows' dedupe
    key is the version and the address)."""
    items = (
        notices.notice_item(
            version_id=version.pk,
            email=email,
            language=language or settings.LANGUAGE_CODE,
            subject_id=subject_id,
            user_id=user_id,
        )
        for email, language, subject_id, user_id in _recipients(version)
    )
    return outbox.outbox_queue_many(
        kind=notices.NOTICE, topic=notices.topic(version.pk), items=items
    )


def notifications_retry_failed(*, version: PolicyVersion, acting_user=None) -> int:
    """Staff retry: a version's failed notices go back to pending with a fresh
    count, and their senders start once the transaction commits."""
    with transaction.atomic():
        count = outbox.outbox_retry_failed(kind=notices.NOTICE, topic=notices.topic(version.pk))
        _audit(acting_user, "outbox_retry", version, kind=notices.NOTICE, retried=count)
    return count


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
