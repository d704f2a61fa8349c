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

    def ready(self) -> None:
        from datetime import timedelta

        from django.conf import settings

        from insight import evidence
        from portal import artifacts, outbox
        from rights import retention

        # Long work, one per claim, with a time limit of its own (as the copies).
        outbox.register(
            evidence.EVIDENCE_KIND,
            send=evidence.build_batch,
            claim=1,
            time_limit=settings.INSIGHT_EVIDENCE_TIME_LIMIT_SECONDS,
        )
        retention.register(
            retention.Housekeeping(
                "evidence-exports",
                _("Evidence exports prepared for auditors (pseudonymous ledger extracts)"),
                _("deleted %(days)s days after they are ready"),
                lambda: timedelta(days=settings.INSIGHT_EVIDENCE_DAYS),
                lambda now: evidence.expired_exports(now),
                apply=lambda rows, now: evidence.expire_batch(rows, now=now),
            )
        )
        if evidence.stray_files_remove not in artifacts.stray_sweeps:
            artifacts.stray_sweeps.append(evidence.stray_files_remove)
