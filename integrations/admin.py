"""The API's admin is in admin_api.py, the webhooks' in admin_webhooks.py."""

from . import admin_api, admin_webhooks  # noqa: F401
