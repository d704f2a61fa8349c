"""Checks shared by every form where a person types something we store."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# Every column that holds an email address (accounts, allauth's addresses, the
# newsletter, notifications, the outbox) is 254 characters: RFC 5321's limit on
# a deliverable address. Django's form field accepts 320, so without this check
# a longer address was truncated into one nobody gave, or refused by PostgreSQL.
EMAIL_MAX_LENGTH = 254

EMAIL_TOO_LONG = _(
    "An email address can have at most %(limit_value)d characters; this one has "
    "%(show_value)d. Please check it."
)


def validate_email_length(email: str) -> None:
    if len(email) > EMAIL_MAX_LENGTH:
        raise ValidationError(
            EMAIL_TOO_LONG,
            code="max_length",
            params={"limit_value": EMAIL_MAX_LENGTH, "show_value": len(email)},
        )
