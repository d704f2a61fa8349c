"""Webhook endpoints and deliveries (integrations.webhooks).

An endpoint is a URL staff registered, with its secret and the events it
wants. Each event published (portal/events.py) becomes one WebhookMessage
(the body, and its webhook-id), and one WebhookDelivery per endpoint that
wants it, each carried by an outbox row of kind "webhook". Every try is a
WebhookAttempt, with what the receiver answered. Replaying a delivery makes
a new delivery of the same message (same webhook-id, as for a retry).
"""

from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.events import KINDS

__all__ = ["WebhookAttempt", "WebhookDelivery", "WebhookEndpoint", "WebhookMessage"]


class WebhookEndpoint(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(_("name"), max_length=100)
    url = models.URLField(_("URL"), max_length=500)
    # Event kinds (portal.events.KINDS) this endpoint receives.
    events = models.JSONField(_("events"), default=list)
    # The Standard Webhooks secret ("whsec_" + base64 of 32 random bytes)
    # signs every delivery, so it cannot be hashed: it is kept sealed
    # (AES-GCM, integrations/webhooks/sealing.py) with a key kept outside the
    # database, so that reading the database is not enough to forge a delivery.
    secret_sealed = models.TextField(editable=False)
    # After a rotation the old secret still signs (a second signature in the
    # header) until previous_secret_until, so that the receiver can switch.
    previous_secret_sealed = models.TextField(blank=True, editable=False)
    previous_secret_until = models.DateTimeField(null=True, blank=True, editable=False)
    # The secret's first characters ("whsec_" and 4 of its 44), for staff to
    # tell which one a receiver holds: 24 of its 256 bits.
    secret_hint = models.CharField(_("secret"), max_length=16, blank=True, editable=False)
    is_active = models.BooleanField(_("active"), default=True)
    # Set when the endpoint was disabled because it kept failing (failing_since
    # says since when), not by staff; cleared when staff enable it again.
    disabled_at = models.DateTimeField(_("disabled at"), null=True, blank=True, editable=False)
    # The first failed attempt since the last success: a streak of failures
    # lasting WEBHOOK_DISABLE_AFTER_HOURS, ended by a delivery failing for
    # good, disables the endpoint. Cleared by any success.
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    def _context(self, field: str) -> str:
        return f"{self.uuid}:{field}"

    # What secrets_seal() sets: the fields a caller saves after it.
    SEALED_FIELDS = [
        "secret_sealed",
        "previous_secret_sealed",
        "previous_secret_until",
        "secret_hint",
    ]

    def secrets_seal(self, *, secret: str, previous: str = "", previous_until=None) -> None:
        """Seal a new secret (and the one it replaces, signing beside it until
        `previous_until`) onto this instance; the caller saves SEALED_FIELDS."""
        from integrations.webhooks import sealing

        self.previous_secret_until = previous_until if previous else None

        self.secret_sealed = sealing.seal(secret, context=self._context("secret"))
        self.previous_secret_sealed = sealing.seal(
            previous, context=self._context("previous_secret")
        )
        self.secret_hint = f"{secret[:10]}…"

    def secret(self) -> str:
        from integrations.webhooks import sealing

        return sealing.unseal(self.secret_sealed, context=self._context("secret"))

    def previous_secret(self) -> str:
        from integrations.webhooks import sealing

        return sealing.unseal(self.previous_secret_sealed, context=self._context("previous_secret"))

    def secrets(self, now=None) -> list[str]:
        """The secrets that sign now, unsealed: the current one, and the
        previous one during its overlap."""
        now = now or timezone.now()
        signing = [self.secret()]
        if (
            self.previous_secret_sealed
            and self.previous_secret_until
            and self.previous_secret_until > now
        ):
            signing.append(self.previous_secret())
        return signing

    def event_labels(self) -> list[str]:
        return [str(KINDS.get(kind, kind)) for kind in self.events]


class WebhookMessage(models.Model):
    """One event, as every endpoint receives it: the webhook-id and the body
    are fixed once written, so that a retry or a replay sends the same bytes."""

    # The Standard Webhooks webhook-id: "msg_" + this, the same on every try.
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event_type = models.CharField(_("event"), max_length=50)
    # The exact JSON sent: {"type", "timestamp", "data"}.
    body = models.TextField(_("body"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("webhook message")
        verbose_name_plural = _("webhook messages")
        indexes = [
            # Retention: messages older than WEBHOOK_KEPT_DAYS.
            models.Index(fields=["created_at"], name="webhook_message_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.webhook_id}"

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.uuid.hex}"

    @property
    def subject_id(self) -> uuid.UUID | None:
        """The person the message is about (its data's subject_id), if any:
        what the admin's audited look names (rights/admin_audit.py)."""
        try:
            data = json.loads(self.body).get("data") or {}
            return uuid.UUID(str(data["subject_id"]))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Delivered")
        FAILED = "failed", _("Failed")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # The delivery this one replays (same message, same webhook-id).
    replay_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replays"
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        indexes = [
            # An endpoint's deliveries, newest first (its admin page).
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.message.event_type} → {self.endpoint} ({self.get_status_display()})"


class WebhookAttempt(models.Model):
    """One POST: what was answered (status, a truncated excerpt of the body)
    or what went wrong, and how long it took."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_rows"
    )
    at = models.DateTimeField(_("at"), default=timezone.now)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    status_code = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    response_excerpt = models.TextField(_("response"), blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("webhook attempt")
        verbose_name_plural = _("webhook attempts")
        ordering = ["delivery", "at", "pk"]

    def __str__(self) -> str:
        return f"{self.status_code or self.error[:40]}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
