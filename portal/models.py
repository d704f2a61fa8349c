from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: object) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create_user(email, password, **extra)


class User(AbstractUser):
    """A customer or a staff member. Email is the login; there is no username.

    subject_id is the opaque identifier that the consent ledger and receipts
    use, so that no email or name is ever written there.
    """

    username = None
    email = models.EmailField(_("email address"), unique=True)
    subject_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    language = models.CharField(
        _("language"),
        max_length=10,
        choices=settings.LANGUAGES,
        default=settings.LANGUAGE_CODE,
        help_text=_("The language of the portal and of the emails sent to this person."),
    )
    # When the person closed their account (rights.services.account_close); the
    # erasure follows after RIGHTS_ERASURE_GRACE_DAYS unless they cancel, which
    # clears it. Retention counts "after the account closes" from here.
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True, editable=False)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            # Logins are case-insensitive, so two accounts may not differ by case alone.
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email


class OutboxItem(models.Model):
    """One piece of outgoing work (an email, a policy notice, later an export or
    a webhook), written in the transaction that caused it (shared/DESIGN.md
    principle 2).

    Every kind goes through the same machinery (portal/outbox.py): rows are
    claimed in batches (SELECT ... FOR UPDATE SKIP LOCKED) under a lease that
    is renewed while the batch runs, retried with backoff until they fail for
    good, and swept back to a worker when their task was lost. What is done
    with a batch is the handler registered for its kind.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    # Emails use it in their Message-ID; a kind that must recognise a duplicate
    # (policy notices) derives it from what makes the row unique.
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The handler that does the work (portal/outbox.py register()).
    kind = models.CharField(_("kind"), max_length=50)
    # What the row is one of, kept once the payload is gone; rows of one topic
    # are claimed and counted together: an email's template
    # (account/email/password_reset_key), a policy version's notices
    # (policy_version:12).
    topic = models.CharField(_("topic"), max_length=200, blank=True)
    # Unique per kind when set: writing the same work twice (publishing twice, a
    # retried task, a restart) never makes a second row.
    dedupe_key = models.CharField(max_length=300, blank=True)
    recipient = models.CharField(_("recipient"), max_length=254, blank=True)
    # The ledger's id of the person the work concerns, when there is one.
    subject_id = models.UUIDField(null=True, blank=True)
    # An email's subject line: what staff see instead of the content.
    title = models.CharField(_("title"), max_length=998, blank=True)
    # What the handler needs. A kind whose payload is private (an email's body
    # and headers hold working password-reset links) has it cleared once the
    # work is done, and for unsent rows once OUTBOX_UNSENT_KEPT has passed.
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # A pending row is not tried before this (backoff after a failure).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A sending row belongs to one worker until then; after, the sweep takes it back.
    leased_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("outbox item")
        verbose_name_plural = _("outbox")
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "dedupe_key"],
                name="outbox_once_per_dedupe_key",
                condition=~models.Q(dedupe_key=""),
            ),
        ]
        indexes = [
            # The claim and the sweep: a kind's (and topic's) unsent rows in id
            # order. Partial, so it stays as small as the work waiting.
            models.Index(
                fields=["kind", "topic", "id"],
                name="outbox_unsent_idx",
                condition=models.Q(status__in=["pending", "sending"]),
            ),
            # Progress per topic (the admin's delivery bar): counts by status.
            models.Index(fields=["kind", "topic", "status"], name="outbox_progress_idx"),
            # A person's rows (their policy notices, and the copy of their data).
            models.Index(
                fields=["subject_id"],
                name="outbox_subject_idx",
                condition=models.Q(subject_id__isnull=False),
            ),
            # The expiry of private payloads: rows not sent, created before a cutoff.
            models.Index(
                fields=["created_at"],
                name="outbox_not_sent_idx",
                condition=~models.Q(status="sent"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.topic} → {self.recipient} ({self.status})"

    @property
    def message_id(self) -> str:
        return f"<{self.uuid}@clareza>"
