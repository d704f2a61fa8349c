"""Month names as the portal writes them in dates.

Portuguese writes month names in lower case ("29 de novembro de 2026"), but
Django's own pt_BR catalogue capitalises them ("Novembro"), and every date the
portal prints (the `date` filter, `formats.date_format`, a date in a template)
takes the month from there. Catalogues in LOCALE_PATHS come first, so the
lower-case translations in locale/pt_BR/LC_MESSAGES/django.po win. The names are
listed here only so that makemessages keeps those entries; nothing imports this.
"""

from __future__ import annotations

from django.utils.translation import gettext_noop

# Translators: a month name inside a date ("29 de novembro de 2026"): lower case in Portuguese.
MONTHS = (
    gettext_noop("January"),
    gettext_noop("February"),
    gettext_noop("March"),
    gettext_noop("April"),
    gettext_noop("May"),
    gettext_noop("June"),
    gettext_noop("July"),
    gettext_noop("August"),
    gettext_noop("September"),
    gettext_noop("October"),
    gettext_noop("November"),
    gettext_noop("December"),
)
