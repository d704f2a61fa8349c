"""Policy notices: the email about one published version to one recipient, as
the outbox (portal/outbox.py) carries it.

Each is an OutboxItem of kind NOTICE whose topic is its version
(policy_version:<id>) and whose dedupe key is (version, address), so that
publishing twice, retries and restarts never make a second row. Its uuid, and
so its Message-ID, follows from (version, address) too: a duplicate that left
twice (a worker killed while the server had the message) can be recognised.
The row's id is what the email's signed links name.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cached_property

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from policies.models import PolicyVersion
from portal import mail, outbox
from portal.models import OutboxItem

NOTICE = "policy_update"


def topic(version_id: int) -> str:
    return f"policy_version:{version_id}"


def notice_uuid(version_id: int, email: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"clareza:{version_id}:{email.lower()}")


def message_id(version_id: int, email: str) -> str:
    """The Message-ID of the notice of a version to an address (any case)."""
    return f"<{notice_uuid(version_id, email)}@clareza>"


def notice_item(
    *, version_id: int, email: str, language: str, subject_id, user_id: int | None
) -> OutboxItem:
    """An unsaved row (notices are written in bulk, policies/services.py)."""
    email = email.lower()
    return OutboxItem(
        kind=NOTICE,
        topic=topic(version_id),
        dedupe_key=f"{version_id}:{email}",
        uuid=notice_uuid(version_id, email),
        recipient=email,
        subject_id=subject_id,
        payload={"version": version_id, "language": language, "user": user_id},
    )


@dataclass(frozen=True)
class Notice:
    """A notice row with its version, as the email's links and the panel see it."""

    item: OutboxItem
    version: PolicyVersion

    @property
    def pk(self) -> int:
        return self.item.pk

    @property
    def email(self) -> str:
        return self.item.recipient

    @property
    def language(self) -> str:
        return self.item.payload.get("language") or "en"

    @property
    def subject_id(self):
        return self.item.subject_id

    @property
    def status(self) -> str:
        return self.item.status

    @property
    def sent_at(self):
        return self.item.sent_at

    @property
    def message_id(self) -> str:
        return self.item.message_id

    @cached_property
    def user(self):
        user_id = self.item.payload.get("user")
        return get_user_model().objects.filter(pk=user_id).first() if user_id else None


# Reads ------------------------------------------------------------------------------


def notices_of(version: PolicyVersion | int) -> QuerySet[OutboxItem]:
    """A version's notice rows."""
    version_id = version if isinstance(version, int) else version.pk
    return OutboxItem.objects.filter(kind=NOTICE, topic=topic(version_id))


def _with_versions(items: list[OutboxItem]) -> list[Notice]:
    ids = {item.payload.get("version") for item in items}
    versions = PolicyVersion.objects.select_related("policy").in_bulk(
        [pk for pk in ids if isinstance(pk, int)]
    )
    return [
        Notice(item, versions[item.payload["version"]])
        for item in items
        if item.payload.get("version") in versions
    ]


def notice_get(pk) -> Notice | None:
    """The notice a signed link names; None when there is none (any other row
    of the outbox included)."""
    if not isinstance(pk, int):
        return None
    item = OutboxItem.objects.filter(pk=pk, kind=NOTICE).first()
    found = _with_versions([item]) if item else []
    return found[0] if found else None


def notices_for(subject_id) -> list[Notice]:
    """Every notice sent, or on its way, to one person."""
    return _with_versions(list(OutboxItem.objects.filter(kind=NOTICE, subject_id=subject_id)))


# The handler --------------------------------------------------------------------------


def notices_send(batch: outbox.Batch) -> None:
    """The outbox handler of kind NOTICE: the batch's versions are read once,
    and the emails leave over one SMTP connection."""
    from policies import emails

    notices = {notice.pk: notice for notice in _with_versions(batch.items)}

    def build(item: OutboxItem, *, connection):
        notice = notices.get(item.pk)
        if notice is None:
            raise LookupError("The policy version of this notice no longer exists.")
        return emails.policy_update(notice, connection=connection)

    mail.emails_send(batch, build)
