"""Shared set-up for the policies tests: the demo inventory and privacy policy
(v1 published, a material v2 draft), customers, subscribers and publishing."""

from __future__ import annotations

import re
import smtplib
from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import connection
from django.utils import timezone, translation

from consents import services as consent_services
from consents.demo import seed_inventory
from consents.models import Decision, Method, NewsletterSignup, Purpose, ReconsentRequest
from policies import services
from policies.demo import V1, seed_policies
from policies.models import Policy, PolicyVersion
from policies.notices import NOTICE, notices_of, topic
from policies.selectors import version_content_hash
from portal import outbox
from portal.models import OutboxItem
from tests.conftest import make_user

REFUSED = "refused@example.com"
LINK = r"https?://[^/\s\"<>]+(/policies/{kind}/[^/\s\"<>]+/)"


class RefusingBackend(LocmemBackend):
    """An SMTP server that refuses one address (outside the project: a fake
    mail server is fine) and accepts, into mail.outbox, everything else."""

    def send_messages(self, messages):
        for message in messages:
            if REFUSED in message.to:
                raise smtplib.SMTPRecipientsRefused({REFUSED: (550, b"5.1.1 No such user")})
        return super().send_messages(messages)


REFUSING_BACKEND = f"{__name__}.RefusingBackend"


@pytest.fixture(autouse=True)
def _english():
    """A request in Portuguese leaves the thread's language active: start each
    test, and the messages of services and commands, in English."""
    with translation.override("en"):
        yield


@pytest.fixture
def purposes(db) -> dict[str, Purpose]:
    return {p.key: p for p in seed_inventory()}


@pytest.fixture
def privacy(purposes) -> Policy:
    assert seed_policies() == "created"
    return Policy.objects.get(slug="privacy")


def v1(policy: Policy) -> PolicyVersion:
    return policy.versions.get(number=1)


def seeded_draft(policy: Policy) -> PolicyVersion:
    """The demo's material v2, waiting as a draft."""
    return policy.versions.get(status=PolicyVersion.Status.DRAFT)


def draft(
    policy: Policy,
    *,
    material: bool = False,
    body: str = V1 + "\n\nWe also keep your wish list.",
    summary: str = "We now keep your wish list.",
    effective_date=None,
    changed: tuple[Purpose, ...] = (),
) -> PolicyVersion:
    version = services.policy_version_draft_save(
        version=PolicyVersion(
            policy=policy,
            body=body,
            summary=summary,
            material=material,
            effective_date=effective_date or services.earliest_effective_date(material=material),
        )
    )
    version.changed_purposes.set(changed)
    return version


def publish(version: PolicyVersion, capture, *, by=None) -> services.Published:
    """Publish and run what waits for the commit (the Celery dispatch, eager)."""
    with capture(execute=True):
        return services.policy_version_publish(version=version, acting_user=by)


def grant(user, *keys: str) -> None:
    for key in keys:
        event = consent_services.consent_record(
            subject_id=user.subject_id,
            purpose=Purpose.objects.get(key=key),
            decision=Decision.GRANTED,
            method=Method.PANEL,
        )
        assert event is not None


def subscriber(email: str, *, language: str = "en", newsletter: bool = True) -> NewsletterSignup:
    """A confirmed newsletter subscriber (no account), through the double opt-in."""
    offered = list(Purpose.objects.filter(offered_in_newsletter=True))
    signup = consent_services.newsletter_signup_start(
        email=email,
        choices={p: newsletter and p.key == "newsletter" for p in offered},
        notices=consent_services.current_notices(offered),
        language=language,
    )
    consent_services.newsletter_signup_confirm(signup=signup)
    signup.refresh_from_db()
    assert signup.status == NewsletterSignup.Status.CONFIRMED
    return signup


def customers(count: int, prefix: str = "person") -> list:
    return [make_user(f"{prefix}{i}@example.com") for i in range(count)]


def message_to(email: str) -> mail.EmailMultiAlternatives:
    found = [m for m in mail.outbox if m.to == [email]]
    assert len(found) == 1, [m.to for m in mail.outbox]
    return found[0]


def link(message, kind: str) -> str:
    """The path of the emailed notice / acknowledge / unsubscribe link."""
    match = re.search(LINK.format(kind=kind), message.body)
    assert match, message.body
    return match.group(1)


def statuses(version: PolicyVersion) -> dict[str, str]:
    return dict(notices_of(version).values_list("recipient", "status"))


def notice(version: PolicyVersion, email: str) -> OutboxItem:
    """The outbox row of a version's notice to one address."""
    return notices_of(version).get(recipient=email)


def send_batch(version: PolicyVersion, *, limit: int | None = None) -> int:
    """What one sender task does: claim a batch of the version's notices and send it."""
    return outbox.outbox_send(kind=NOTICE, topic=topic(version.pk), limit=limit)


def expire_leases(version: PolicyVersion) -> None:
    """Test set-up: time passes, so the backoff or the lease is over."""
    past = timezone.now() - timedelta(seconds=1)
    notices_of(version).filter(status=OutboxItem.Status.PENDING).update(next_attempt_at=past)
    notices_of(version).filter(status=OutboxItem.Status.SENDING).update(leased_until=past)


def redate_published(version: PolicyVersion, when) -> None:
    """Test set-up: as if the version had been published with another effective
    date (the database refuses to change a published version, so its trigger
    goes for the test, and the text's hash follows)."""
    with connection.cursor() as cursor:
        for trigger in ("policies_version_no_update", "policies_version_no_delete"):
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON policies_policyversion")
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    version = PolicyVersion.objects.select_related("policy").get(pk=version.pk)
    version.effective_date = when
    version.content_hash = version_content_hash(version)
    version.save(update_fields=["effective_date", "content_hash"])


def move_effective_date(version: PolicyVersion, when) -> None:
    """Test set-up: time passes. The version and the re-consent it asked for
    share their effective date."""
    redate_published(version, when)
    ReconsentRequest.objects.filter(policy_version_id=version.pk).update(effective_date=when)
