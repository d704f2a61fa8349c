"""What changed between two notices of a purpose, and whether it widens processing.

A change that widens what is done with people's data (a new data category, a
new recipient, a transfer abroad, a longer retention, a sensitive category,
sale or sharing switched on) needs their consent again: LGPD Art. 8 §6 and
Art. 9 §2, GDPR Art. 7 read with Art. 13(3). A change that narrows it does not.

Differences are kept language-neutral, with the names in every language, so
that each person is told in their own (describe()).
"""

from __future__ import annotations

import re

from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

LANGUAGES = ("en", "pt-br")

# Kinds that widen processing (re-consent) and kinds that narrow it (inform only).
WIDENING = (
    "data_categories_added",
    "sensitive_categories_added",
    "recipients_added",
    "transfers_abroad_added",
    "retention_longer",
    "sale_or_sharing_on",
)
NARROWING = (
    "data_categories_removed",
    "recipients_removed",
    "transfers_abroad_removed",
    "retention_shorter",
    "sale_or_sharing_off",
)

# "A, B and C." / "A; B" / one per line: a list in free text, in either language.
_ITEM_SEPARATORS = re.compile(r"\s*(?:[;,\n]|\band\b|\be\b)\s*", re.IGNORECASE)


def _items(text: str) -> list[str]:
    items = []
    for item in _ITEM_SEPARATORS.split(text or ""):
        item = item.strip().rstrip(".").strip()
        if item:
            items.append(item)
    return items


def _norm(item: str) -> str:
    return " ".join(item.lower().split())


def _list_change(old: dict, new: dict, field: str) -> tuple[dict, dict]:
    """Items of a free-text list (recipients, transfers) added and removed, per
    language. The English text decides; the Portuguese names are the items at
    the same places, or the whole Portuguese text when the lists do not align."""

    def changed(before: dict, after: dict) -> dict:
        seen = {_norm(i) for i in _items(before["en"][field])}
        after_en, after_pt = _items(after["en"][field]), _items(after["pt-br"][field])
        places = [n for n, item in enumerate(after_en) if _norm(item) not in seen]
        if not places:
            return {}
        if len(after_pt) == len(after_en):
            portuguese = [after_pt[n] for n in places]
        else:
            portuguese = after_pt or [after_en[n] for n in places]
        return {"en": [after_en[n] for n in places], "pt-br": portuguese}

    return changed(old, new), changed(new, old)


def _categories(content: dict) -> dict[str, dict]:
    """key -> {"en": name, "pt-br": name, "sensitive": bool} from a notice's content."""
    keys = content.get("data_category_keys", [])
    result = {}
    for index, key in enumerate(keys):
        names = {lang: content[lang]["data_categories"][index] for lang in LANGUAGES}
        result[key] = {
            **names,
            "sensitive": names["en"] in content["en"].get("sensitive_data_categories", []),
        }
    return result


def _named(categories: dict[str, dict], keys) -> dict:
    return {lang: [categories[k][lang] for k in keys] for lang in LANGUAGES}


def compare(old: dict, new: dict) -> list[dict]:
    """The differences from one notice's content to the next, widening ones first."""
    differences: list[dict] = []
    old_categories, new_categories = _categories(old), _categories(new)
    added = [k for k in new_categories if k not in old_categories]
    removed = [k for k in old_categories if k not in new_categories]
    if added:
        items = _named(new_categories, added)
        differences.append({"kind": "data_categories_added", "items": items})
    newly_sensitive = [
        k
        for k, category in new_categories.items()
        if category["sensitive"] and not old_categories.get(k, {}).get("sensitive")
    ]
    if newly_sensitive:
        differences.append(
            {"kind": "sensitive_categories_added", "items": _named(new_categories, newly_sensitive)}
        )
    recipients_added, recipients_removed = _list_change(old, new, "recipients")
    if recipients_added:
        differences.append({"kind": "recipients_added", "items": recipients_added})
    transfers_added, transfers_removed = _list_change(old, new, "transfers_abroad")
    if transfers_added:
        differences.append({"kind": "transfers_abroad_added", "items": transfers_added})
    if new["retention_days"] > old["retention_days"]:
        differences.append(
            {"kind": "retention_longer", "from": old["retention_days"], "to": new["retention_days"]}
        )
    if new["sale_or_sharing"] and not old["sale_or_sharing"]:
        differences.append({"kind": "sale_or_sharing_on"})
    if removed:
        differences.append(
            {"kind": "data_categories_removed", "items": _named(old_categories, removed)}
        )
    if recipients_removed:
        differences.append({"kind": "recipients_removed", "items": recipients_removed})
    if transfers_removed:
        differences.append({"kind": "transfers_abroad_removed", "items": transfers_removed})
    if new["retention_days"] < old["retention_days"]:
        days = {"from": old["retention_days"], "to": new["retention_days"]}
        differences.append({"kind": "retention_shorter", **days})
    if old["sale_or_sharing"] and not new["sale_or_sharing"]:
        differences.append({"kind": "sale_or_sharing_off"})
    return differences


def widening(differences: list[dict]) -> list[dict]:
    return [d for d in differences if d["kind"] in WIDENING]


def _language_key(language: str | None) -> str:
    language = (language or translation.get_language() or "en").lower()
    return "pt-br" if language.startswith("pt") else "en"


def describe(differences: list[dict], language: str | None = None) -> list[str]:
    """One sentence per difference, in the active language (or `language`)."""
    key = _language_key(language)
    lines = []
    for difference in differences:
        names = ", ".join(difference.get("items", {}).get(key, []))
        kind = difference["kind"]
        if kind == "data_categories_added":
            lines.append(_("New data used: %(names)s.") % {"names": names})
        elif kind == "sensitive_categories_added":
            lines.append(_("Sensitive data now used: %(names)s.") % {"names": names})
        elif kind == "recipients_added":
            lines.append(_("New recipients: %(names)s.") % {"names": names})
        elif kind == "transfers_abroad_added":
            lines.append(_("Data now sent abroad: %(names)s.") % {"names": names})
        elif kind == "retention_longer":
            lines.append(
                ngettext(
                    "Kept longer: %(to)s day instead of %(from)s.",
                    "Kept longer: %(to)s days instead of %(from)s.",
                    difference["to"],
                )
                % {"to": difference["to"], "from": difference["from"]}
            )
        elif kind == "sale_or_sharing_on":
            lines.append(_("Data is now shared with partners or used for advertising."))
        elif kind == "data_categories_removed":
            lines.append(_("No longer used: %(names)s.") % {"names": names})
        elif kind == "recipients_removed":
            lines.append(_("No longer sent to: %(names)s.") % {"names": names})
        elif kind == "transfers_abroad_removed":
            lines.append(_("No longer sent abroad: %(names)s.") % {"names": names})
        elif kind == "retention_shorter":
            lines.append(
                ngettext(
                    "Kept for less time: %(to)s day instead of %(from)s.",
                    "Kept for less time: %(to)s days instead of %(from)s.",
                    difference["to"],
                )
                % {"to": difference["to"], "from": difference["from"]}
            )
        elif kind == "sale_or_sharing_off":
            lines.append(_("Data is no longer shared with partners."))
    return lines
