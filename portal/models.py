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


class OutboundEmail(models.Model):
    """An email waiting to leave, written in the transaction that caused it.

    Celery delivers it; a periodic sweep re-queues rows whose task was lost
    (shared/DESIGN.md principle 2). A row is claimed before the message is
    sent, so a retried task never sends it twice.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    to = models.EmailField()
    subject = models.CharField(max_length=998)
    # Which email this is (its template, e.g. account/email/password_reset_key):
    # what stays to say what was sent once the body is gone.
    kind = models.CharField(max_length=100, blank=True)
    # The body and headers hold working links (password reset, verification),
    # so they are kept only while the email may still leave: cleared when it is
    # sent, and for an unsent one once its links have expired
    # (portal/mail.py outbound_email_bodies_expire).
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("outbound email")
        verbose_name_plural = _("outbound emails")
        indexes = [
            # The sweep's query: unsent rows whose lease is over, oldest first.
            models.Index(
                fields=["status", "lease_until"],
                name="outbound_unsent_idx",
                condition=models.Q(status__in=["pending", "sending"]),
            ),
            # The expiry's query: rows still holding a body, created before a cutoff.
            models.Index(
                fields=["created_at"],
                name="outbound_with_body_idx",
                condition=~models.Q(body_text=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {self.to} ({self.status})"

    @property
    def message_id(self) -> str:
        return f"<{self.uuid}@clareza>"
