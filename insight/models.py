"""Rollup tables: counts of people, never people.

Tally rows are folded from the ledger by insight.rollup, incrementally: the
RollupCursor remembers the last event folded, so a run reads only the events
since the last one and the dashboard reads only these tables. Figure rows are
the current state's counts (value exchange, emails per policy version, rights
requests), taken again by each run."""

from __future__ import annotations

import uuid
from datetime import date

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# Rows whose figure is not about one period use this start.
NO_DATE = date(1970, 1, 1)


class Period(models.TextChoices):
    WEEK = "week", _("Week")
    MONTH = "month", _("Month")
    VERSION = "version", _("Policy version")


class Tally(models.Model):
    """How many people did something in one period (or under one policy
    version), per purpose: each person counted once per row."""

    period = models.CharField(max_length=8, choices=Period.choices)
    start = models.DateField(default=NO_DATE)  # Monday of the week, 1st of the month
    measure = models.CharField(max_length=24)
    purpose_id = models.BigIntegerField(default=0)  # 0: not about one purpose
    policy_version_id = models.BigIntegerField(default=0)  # 0: not about one version
    # A signed delta for the net measures (grants minus ends); otherwise >= 0.
    count = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("figures")
        verbose_name_plural = _("figures")
        permissions = [
            ("view_figures", _("Can see the aggregate figures and export them")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["period", "start", "measure", "purpose_id", "policy_version_id"],
                name="tally_cell_unique",
            ),
        ]
        # The unique constraint's index serves the dashboard: one period's rows.

    def __str__(self) -> str:
        return f"{self.measure} {self.period} {self.start}"


class Figure(models.Model):
    """A count taken from the current state (not the ledger) at `taken_at`."""

    measure = models.CharField(max_length=32)
    key = models.CharField(max_length=64, blank=True)  # a purpose, category or version
    count = models.BigIntegerField(default=0)
    taken_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["measure", "key"], name="figure_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.measure} {self.key}"


class RollupCursor(models.Model):
    """Where a fold stopped: the id of the last row it counted."""

    name = models.CharField(max_length=40, unique=True)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} at {self.last_id}"


class EvidenceStatus(models.TextChoices):
    QUEUED = "queued", _("Waiting to be prepared")
    BUILDING = "building", _("Being prepared")
    READY = "ready", _("Ready to download")
    FAILED = "failed", _("Could not be prepared")
    EXPIRED = "expired", _("Expired and deleted")


OPEN_EVIDENCE_STATUSES = [EvidenceStatus.QUEUED, EvidenceStatus.BUILDING]


class EvidenceExport(models.Model):
    """The auditor's evidence for a date range (insight/evidence.py): a ZIP of
    the pseudonymous ledger events, the notice texts and policy versions they
    cite, the signed checkpoints with the proof that the events are in the
    signed tree, the record of processing, the retention rules and a script
    that checks it all offline. Built by a worker through the outbox, kept
    INSIGHT_EVIDENCE_DAYS, then deleted by the retention task (the row stays,
    `expired`). Changed only through insight.services and insight.evidence."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    date_from = models.DateField(_("from"))
    date_to = models.DateField(_("to (inclusive)"))
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("asked by"),
    )
    # A snapshot: the staff account may go later.
    requested_by_email = models.EmailField(_("asked by (email)"), blank=True)
    # The README's language (the asking staff member's).
    language = models.CharField(_("language"), max_length=10, default="en")
    status = models.CharField(
        _("status"), max_length=10, choices=EvidenceStatus.choices, default=EvidenceStatus.QUEUED
    )
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    step = models.CharField(_("step"), max_length=40, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    events = models.BigIntegerField(_("events"), null=True, blank=True)
    file_name = models.CharField(_("file"), max_length=100, blank=True)
    size = models.BigIntegerField(_("size (bytes)"), null=True, blank=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("asked at"), default=timezone.now)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    ready_at = models.DateTimeField(_("ready at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    downloaded_at = models.DateTimeField(_("last downloaded at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("failed or expired at"), null=True, blank=True)

    class Meta:
        verbose_name = _("auditor's evidence export")
        verbose_name_plural = _("auditor's evidence exports")
        ordering = ["-created_at"]
        permissions = [
            (
                "export_evidence",
                _("Can ask for and download the auditor's evidence (event-level, pseudonymous)"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(date_from__lte=F("date_to")), name="insight_evidence_range"
            ),
            models.CheckConstraint(
                condition=Q(progress__lte=100), name="insight_evidence_progress_range"
            ),
        ]
        indexes = [
            # The retention rule: ready exports past their date.
            models.Index(fields=["status", "expires_at"], name="insight_evidence_expiry_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.date_from} to {self.date_to}"


class PrivacyBudget(models.Model):
    """The epsilon that differential-privacy releases may spend in one calendar
    month. A month with no row has INSIGHT_DP_EPSILON_PER_MONTH; the first
    release of a month writes that row, and staff may set another
    (insight.services.privacy_budget_set). Its row is the lock that keeps two
    releases from spending the same epsilon."""

    month = models.DateField(_("month"), unique=True)  # the 1st, in the portal's time zone
    epsilon = models.DecimalField(
        _("epsilon for the month"),
        max_digits=6,
        decimal_places=2,
        help_text=_(
            "How much privacy loss the month's releases may add up to. Smaller is more private "
            "and noisier."
        ),
    )
    set_by_email = models.EmailField(_("set by"), blank=True)
    set_at = models.DateTimeField(_("set at"), default=timezone.now)

    class Meta:
        verbose_name = _("privacy budget")
        verbose_name_plural = _("privacy budgets")
        ordering = ["-month"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(epsilon__gte=0), name="privacy_budget_epsilon_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m}: {self.epsilon}"


class Release(models.Model):
    """Figures released with differential privacy: the noisy counts as drawn,
    kept so that every download of the release gives the same numbers and
    spends nothing (drawing again would let the noise be averaged away)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    period = models.CharField(_("figures per"), max_length=8, choices=Period.choices)
    first_start = models.DateField(_("from"))
    last_start = models.DateField(_("to"))
    epsilon = models.DecimalField(_("epsilon"), max_digits=6, decimal_places=2)
    budget_month = models.DateField(_("budget month"))
    # The month's budget when the release was made, and what its releases had
    # spent with this one: stated in the release's files.
    budget_epsilon = models.DecimalField(_("the month's budget"), max_digits=6, decimal_places=2)
    budget_spent = models.DecimalField(
        _("spent that month, this release included"), max_digits=6, decimal_places=2
    )
    mechanism = models.CharField(_("mechanism"), max_length=120)
    noise_scale = models.FloatField(_("noise scale"))
    cells_per_person = models.PositiveIntegerField(_("cells per person (L1 sensitivity)"))
    min_cell = models.PositiveIntegerField(_("smallest published count"))
    # {"starts": [...], "purposes": [[id, key, name]...], "measures": [...],
    #  "counts": {measure: [[noisy count per purpose] per period]}}
    figures = models.JSONField(default=dict)
    made_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("made by"),
    )
    made_by_email = models.EmailField(_("made by"))
    made_at = models.DateTimeField(_("made at"), default=timezone.now)

    class Meta:
        verbose_name = _("differential-privacy release")
        verbose_name_plural = _("differential-privacy releases")
        ordering = ["-made_at"]
        permissions = [
            ("release_figures", _("Can release figures with differential privacy")),
        ]
        indexes = [
            # The budget's spent sum: releases of one month.
            models.Index(fields=["budget_month"], name="release_budget_month"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(epsilon__gt=0), name="release_epsilon_positive"
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.get_period_display()} {self.first_start} - {self.last_start} (ε {self.epsilon})"
        )
