"""Policies, their immutable published versions, and who acknowledged them.

Who was told is in the outbox (portal.OutboxItem, kind "policy_update", one
row per version and recipient): see policies/notices.py."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from consents.models import Localized


class Policy(models.Model):
    slug = models.SlugField(_("slug"), max_length=40, unique=True)
    title = models.CharField(_("title (English)"), max_length=120)
    title_pt = models.CharField(_("title (Portuguese)"), max_length=120, blank=True)
    order = models.PositiveSmallIntegerField(default=100)

    class Meta:
        verbose_name = _("policy")
        verbose_name_plural = _("policies")
        ordering = ["order", "slug"]

    def __str__(self) -> str:
        return self.display_title

    display_title = Localized("title")


class PolicyVersion(models.Model):
    """A draft is edited; a published version never is: the database refuses
    it (migration 0003), and its text's hash is in every ledger event made
    while it is in force."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField(_("version"), null=True, blank=True, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    body = models.TextField(_("text (English, Markdown)"))
    body_pt = models.TextField(_("text (Portuguese, Markdown)"), blank=True)
    summary = models.TextField(
        _("what changed, in plain words (English)"),
        help_text=_("Sent in the email and shown above the differences."),
    )
    summary_pt = models.TextField(_("what changed, in plain words (Portuguese)"), blank=True)
    material = models.BooleanField(
        _("material change"),
        default=False,
        help_text=_(
            "Changes what is done with people's data: everyone is told, even those who "
            "turned optional emails off, it takes effect only after the notice period, "
            "and customers are asked to acknowledge it."
        ),
    )
    effective_date = models.DateField(_("takes effect on"))
    changed_purposes = models.ManyToManyField(
        "consents.Purpose",
        blank=True,
        related_name="policy_versions",
        verbose_name=_("consent purposes this change affects"),
        help_text=_("Grants given under an earlier version are asked for again."),
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )
    # SHA-256 of the published text (policies.selectors.version_content_hash):
    # every ledger event made while it is in force covers it.
    content_hash = models.CharField(max_length=64, blank=True, editable=False)

    class Meta:
        verbose_name = _("policy version")
        verbose_name_plural = _("policy versions")
        ordering = ["policy", "-number", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "number"], name="policy_version_number"),
            models.CheckConstraint(
                condition=models.Q(status="draft") | models.Q(number__isnull=False),
                name="published_version_has_number",
            ),
        ]

    def __str__(self) -> str:
        return self.display_title

    @property
    def display_title(self) -> str:
        """ "Privacy policy, version 2" in the active language: the policy's
        title in that language, and the rest translated."""
        if self.number:
            return gettext("%(policy)s, version %(number)s") % {
                "policy": self.policy.display_title,
                "number": self.number,
            }
        return gettext("%(policy)s (draft)") % {"policy": self.policy.display_title}

    @property
    def is_published(self) -> bool:
        return self.status == self.Status.PUBLISHED

    @property
    def display_summary(self) -> str:
        return self.localized("summary")

    def localized(self, field: str, language: str | None = None) -> str:
        language = language or translation.get_language() or "en"
        if language.lower().startswith("pt"):
            return getattr(self, f"{field}_pt") or getattr(self, field)
        return getattr(self, field)


class Acknowledgement(models.Model):
    """Someone read a version and said so: a customer (in the portal or from the
    email) or a newsletter subscriber (from the email)."""

    subject_id = models.UUIDField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="acknowledgements",
    )
    version = models.ForeignKey(
        PolicyVersion, on_delete=models.PROTECT, related_name="acknowledgements"
    )
    method = models.CharField(max_length=12)  # "web" or "email_link"
    acknowledged_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("acknowledgement")
        verbose_name_plural = _("acknowledgements")
        constraints = [
            models.UniqueConstraint(fields=["subject_id", "version"], name="acknowledged_once"),
        ]

    def __str__(self) -> str:
        return f"{self.version} acknowledged"
