"""Webhook endpoints and deliveries (integrations.webhooks)."""

__all__: list[str] = []
