from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InsightConfig(AppConfig):
    """Aggregate figures for staff: rollups of the ledger and state into counts
    of people, small-cell and complementary suppression, the dashboard in the
    admin and its exports. Nothing here names a person."""

    name = "insight"
    verbose_name = _("Insight")
    default_auto_field = "django.db.models.BigAutoField"
