"""Texts kept in two languages on a model: `name` and `name_pt`."""

from __future__ import annotations

from django.utils import translation


def localized(obj: object, field: str) -> str:
    """The Portuguese text when the active language is Portuguese and one exists."""
    if (translation.get_language() or "").lower().startswith("pt"):
        text = getattr(obj, f"{field}_pt", "")
        if text:
            return text
    return getattr(obj, field)


class Localized:
    """`display_name = Localized("name")`: the field in the active language,
    read from `name_pt` in Portuguese when it is filled in, else from `name`."""

    def __init__(self, field: str) -> None:
        self.field = field

    def __get__(self, obj: object, owner: type | None = None):
        return self if obj is None else localized(obj, self.field)
