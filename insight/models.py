"""Rollup tables: counts of people, never people.

Tally rows are folded from the ledger by insight.rollup, incrementally: the
RollupCursor remembers the last event folded, so a run reads only the events
since the last one and the dashboard reads only these tables. Figure rows are
the current state's counts (value exchange, emails per policy version, rights
requests), taken again by each run."""

from __future__ import annotations

from datetime import date

from django.db import models
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
