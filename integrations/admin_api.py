"""The admin of API keys."""
