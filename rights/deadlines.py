"""When a request must be answered: calendar arithmetic, kept apart so that it
can be read and tested on its own.

LGPD Art. 19 II: a complete answer within 15 days of the request. GDPR Art.
12(3): within one month of receipt, extendable once by two further months
(three months from receipt in all) with the reasons given inside the first
month. A month ends on the same day of the next month, or on that month's last
day when it has no such day (31 January -> 28 or 29 February), as the EDPB and
the ICO count it. Each jurisdiction's periods come from settings.RIGHTS_DEADLINES.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone


def add_months(moment: datetime, months: int) -> datetime:
    """The same day `months` later, on the last day of the month when it has
    no such day; the wall-clock time in the portal's time zone is kept."""
    local = timezone.localtime(moment) if timezone.is_aware(moment) else moment
    month_index = local.month - 1 + months
    year, month = local.year + month_index // 12, month_index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    naive = local.replace(tzinfo=None, year=year, month=month, day=day)
    if timezone.is_aware(moment):
        return timezone.make_aware(naive, timezone.get_current_timezone())
    return naive


def period(jurisdiction: str) -> dict:
    try:
        return settings.RIGHTS_DEADLINES[jurisdiction]
    except KeyError:
        raise ValueError(
            f"No deadline is configured for the jurisdiction {jurisdiction!r}."
        ) from None


def due_at(received_at: datetime, jurisdiction: str) -> datetime:
    """The first deadline of a request received at `received_at`."""
    rule = period(jurisdiction)
    return add_months(received_at, rule.get("months", 0)) + timedelta(days=rule.get("days", 0))


def can_extend(jurisdiction: str) -> bool:
    return bool(period(jurisdiction).get("extension_months", 0))


def extended_due_at(received_at: datetime, jurisdiction: str) -> datetime:
    """The deadline once extended: the first period and the extension, both
    counted from receipt (one month and two further months: three months)."""
    rule = period(jurisdiction)
    months = rule.get("months", 0) + rule.get("extension_months", 0)
    return add_months(received_at, months) + timedelta(days=rule.get("days", 0))
