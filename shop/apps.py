from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ShopConfig(AppConfig):
    """The demo shop (catalogue, interests, recommendations): an example of
    what a company plugs in beside the portal."""

    name = "shop"
    verbose_name = _("Demo shop")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from shop import privacy

        privacy.register()
