"""API keys and what the API keeps (integrations.api)."""

__all__: list[str] = []
