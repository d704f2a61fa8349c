from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from django.utils.translation import gettext_lazy as _


class RightsConfig(AppConfig):
    """Data-subject requests with their deadlines (copy, erasure and account
    closure, objection, restriction), retention enforced by beat tasks, and
    the append-only staff audit trail."""

    name = "rights"
    verbose_name = _("Data-subject rights")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from portal import outbox
        from rights import exports

        # A copy is long work: one per claim, so that other workers take the next,
        # and a long history may take longer than an ordinary task is allowed.
        outbox.register(
            exports.EXPORT_KIND,
            send=exports.build_batch,
            claim=1,
            time_limit=settings.RIGHTS_EXPORT_TIME_LIMIT_SECONDS,
        )
