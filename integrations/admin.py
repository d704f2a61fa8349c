"""The API's admin is in admin_api.py, the webhooks' in admin_webhooks.py,
the connected systems' in admin_systems.py."""

from . import admin_api, admin_systems, admin_webhooks  # noqa: F401
