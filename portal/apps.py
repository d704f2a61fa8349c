from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = _("Portal")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from portal import mail, outbox

        # An email's body and headers hold working links: cleared once it is sent.
        outbox.register(mail.EMAIL, send=mail.send_outbound_emails, private_payload=True)
