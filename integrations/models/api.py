"""API keys and what the API keeps (integrations.api).

A key's secret is shown once, when staff create it; only its SHA-256 is kept
(the secret is 256 random bits, so a slow hash would add nothing), beside a
short prefix that staff and logs can name it by. Every call made with a key is
one row of ApiCall, which the database keeps append-only until the retention
task deletes it (API_CALLS_KEPT_DAYS)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

__all__ = ["ApiCall", "ApiCallPurge", "ApiKey", "ApiScope"]


class ApiScope(models.TextChoices):
    """What a key may do. Each operation of the API names the one it needs."""

    CONSENTS_READ = "consents:read", _("Read a person's consents")
    DECISIONS_WRITE = "decisions:write", _("Record decisions made in another channel")
    AUDIENCE_READ = "audience:read", _("Read the audience of a purpose (subject ids)")
    AUDIENCE_EMAIL = (
        "audience:email",
        _("Read email addresses in an audience (where the purpose uses them)"),
    )
    RIGHTS_HANDLE = "rights:handle", _("Handle rights requests assigned to a system")


class ApiKey(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(
        _("name"), max_length=120, help_text=_("The system that uses it, e.g. “Shop checkout”.")
    )
    prefix = models.CharField(_("prefix"), max_length=16, editable=False)
    # sha256 of the whole secret; the secret itself is never stored.
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(_("scopes"), default=list)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        editable=False,
        verbose_name=_("created by"),
    )
    # Updated at most once a minute (integrations.api.auth), not on every call.
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class ApiCall(models.Model):
    """One call made with a key: which operation, about whom, with what answer.
    Written once per call, after the answer is known (one INSERT); UPDATE is
    refused by a trigger, and DELETE too except the retention task's, for
    rows past API_CALLS_KEPT_DAYS (migrations 0001_api_keys and
    0005_api_call_retention)."""

    at = models.DateTimeField(_("when"), default=timezone.now)
    key = models.ForeignKey(
        ApiKey, on_delete=models.PROTECT, related_name="calls", verbose_name=_("API key")
    )
    operation = models.CharField(_("operation"), max_length=64)
    method = models.CharField(_("method"), max_length=8)
    status = models.PositiveSmallIntegerField(_("HTTP status"))
    subject_id = models.UUIDField(
        _("person (subject id)"),
        null=True,
        blank=True,
        help_text=_("Opaque id of the person concerned; never an email."),
    )
    # The purpose an audience or a decision concerned, by key.
    purpose = models.CharField(_("purpose"), max_length=50, blank=True)

    class Meta:
        verbose_name = _("API call")
        verbose_name_plural = _("API calls")
        indexes = [
            # The key's page: its latest calls.
            models.Index(fields=["key", "-at"], name="apicall_key_at_idx"),
            # One person's calls, for their copy and for staff answering a request.
            models.Index(
                fields=["subject_id", "at"],
                name="apicall_subject_idx",
                condition=models.Q(subject_id__isnull=False),
            ),
            # Retention: calls older than API_CALLS_KEPT_DAYS (a day with none
            # to delete would otherwise read the whole table).
            models.Index(fields=["at"], name="apicall_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.operation} {self.status}"


class ApiCallPurge(models.Model):
    """The cutoff the retention task states, inside its own transaction,
    before it deletes calls: the trigger lets a call go only when it is older
    than this and than the fixed floor (0005_api_call_retention). The task
    removes its row again before committing (as rights.AuditPurge)."""

    cutoff = models.DateTimeField()

    class Meta:
        verbose_name = _("API call purge cutoff")

    def __str__(self) -> str:
        return self.cutoff.isoformat()
