from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PoliciesConfig(AppConfig):
    name = "policies"
    verbose_name = _("Policies")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from consents.ledger import set_policy_hashes_provider
        from consents.services import set_policies_document_provider, set_policy_version_provider
        from policies import notices
        from policies.selectors import (
            policies_document,
            version_hashes_checked,
            version_in_force_for_ledger,
        )
        from portal import outbox

        set_policy_version_provider(version_in_force_for_ledger)
        set_policy_hashes_provider(version_hashes_checked)
        # Publishing writes a row per recipient at once: several senders share them.
        outbox.register(notices.NOTICE, send=notices.notices_send, fan_out=True)
        set_policies_document_provider(policies_document)
