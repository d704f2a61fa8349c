from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IntegrationsConfig(AppConfig):
    """The company's other systems: API keys and the versioned API
    (integrations.api), webhook endpoints and their deliveries through the one
    outbox (integrations.webhooks), and the connected systems that rights
    requests reach."""

    name = "integrations"
    verbose_name = _("Integrations")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from integrations import systems
        from integrations.api import setup as api_setup
        from integrations.webhooks import setup as webhooks_setup

        api_setup.ready()
        webhooks_setup.ready()
        systems.register()
