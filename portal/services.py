"""Writes to the account as a whole. Staff writes on accounts and on the
outbox write their audit row in the same transaction (rights/audit.py): the
admin calls these, never .save()."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from portal import outbox
from portal.models import OutboxItem


def user_language_set(*, user, language: str) -> bool:
    """Store the language the person chose, for the portal and their emails.
    Returns False, changing nothing, for a language the portal does not ship."""
    if language not in dict(settings.LANGUAGES):
        return False
    if user.language != language:
        user.language = language
        user.save(update_fields=["language"])
    return True


def account_save(*, user, acting_user, changed: list[str] = (), why=None):
    """Create an account or save the fields staff changed in the admin. The
    audit row names the fields, never their values; `why` is the reason the
    change page was opened with (rights.audit.Why), when there is one."""
    from rights import audit

    with transaction.atomic():
        created = user.pk is None
        user.save()
        audit.record(
            acting_user=acting_user,
            action="account_create" if created else "account_change",
            subject_id=user.subject_id,
            request=why.request if why is not None else None,
            reason=why.reason if why is not None else "",
            target=audit.target_of(user),
            details={"fields": sorted(changed)},
        )
    return user


def account_password_set(*, user, password: str, acting_user, why=None):
    """Staff set a person's password (the admin's password form)."""
    from rights import audit

    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        audit.record(
            acting_user=acting_user,
            action="account_password",
            subject_id=user.subject_id,
            request=why.request if why is not None else None,
            reason=why.reason if why is not None else "",
            target=audit.target_of(user),
        )
    return user


def outbox_items_retry(*, items: QuerySet[OutboxItem], acting_user) -> int:
    """Staff retry of chosen failed rows: back to pending with a fresh count;
    their kinds' senders start once the transaction commits. Rows not failed
    are left alone. Returns how many."""
    from rights import audit

    with transaction.atomic():
        failed = list(
            items.select_for_update()
            .filter(status=OutboxItem.Status.FAILED)
            .values_list("pk", "kind", "topic", "uuid")
        )
        count = OutboxItem.objects.filter(pk__in=[row[0] for row in failed]).update(
            status=OutboxItem.Status.PENDING, attempts=0, leased_until=None, next_attempt_at=None
        )
        for kind, topic in sorted({(row[1], row[2]) for row in failed}):
            outbox.outbox_dispatch_on_commit(kind=kind, topic=topic)
        audit.record(
            acting_user=acting_user,
            action="outbox_retry",
            target="portal.outboxitem",
            details={"retried": count, "rows": [str(row[3]) for row in failed[:100]]},
        )
    return count
