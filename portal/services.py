"""Writes to the account as a whole."""

from __future__ import annotations

from django.conf import settings


def user_language_set(*, user, language: str) -> bool:
    """Store the language the person chose, for the portal and their emails.
    Returns False, changing nothing, for a language the portal does not ship."""
    if language not in dict(settings.LANGUAGES):
        return False
    if user.language != language:
        user.language = language
        user.save(update_fields=["language"])
    return True
