"""Reads about rights requests, and the answer consents asks before it
processes: may we use this person's data for this purpose?"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from consents.models import Purpose
from rights.models import OPEN_STATUSES, DataExport, Kind, RightsRequest, Status

# An objection stands once made (GDPR Art. 21(1) and (3), LGPD Art. 18 §2)
# unless staff refuse it with a reason or the person withdraws it. A restriction
# holds while the dispute it was asked for is open (GDPR Art. 18(1)(a)); the
# answer that closes it tells the person it is lifted (Art. 18(3)).
_LIMITING = Q(kind=Kind.OBJECTION, status__in=[*OPEN_STATUSES, Status.DONE]) | Q(
    kind=Kind.RESTRICTION, status__in=OPEN_STATUSES
)


def limiting_requests() -> QuerySet[RightsRequest]:
    """Objections and restrictions in effect now, everyone's."""
    return RightsRequest.objects.filter(_LIMITING)


def limited_purposes(*, subject_id: uuid.UUID) -> QuerySet:
    """The purpose ids that an objection or a restriction of the person stops
    now, as a subquery: a read that filters on it costs no query of its own."""
    return RightsRequest.purposes.through.objects.filter(
        rightsrequest__in=limiting_requests().filter(subject_id=subject_id)
    ).values("purpose_id")


def limited_purpose_ids(*, subject_id: uuid.UUID) -> set[int]:
    """The same, read (one query)."""
    return {row["purpose_id"] for row in limited_purposes(subject_id=subject_id)}


def limited_pairs() -> QuerySet:
    """(subject_id, purpose_id) of every objection or restriction in effect: a
    subquery for reads over many people (who may be emailed)."""
    return RightsRequest.purposes.through.objects.filter(
        rightsrequest__in=limiting_requests()
    ).values("rightsrequest__subject_id", "purpose_id")


def processing_allowed(subject_id: uuid.UUID, purpose: Purpose | int) -> bool:
    """False while an objection or a restriction of the person covers the
    purpose. Whether the purpose's legal basis holds (a consent granted) is
    consents' question; this is the one the rights add to it."""
    purpose_id = purpose if isinstance(purpose, int) else purpose.pk
    return not RightsRequest.purposes.through.objects.filter(
        purpose_id=purpose_id,
        rightsrequest__in=limiting_requests().filter(subject_id=subject_id),
    ).exists()


def requests_for(*, subject_id: uuid.UUID) -> QuerySet[RightsRequest]:
    """A person's requests, newest first, with their purposes."""
    return (
        RightsRequest.objects.filter(subject_id=subject_id)
        .prefetch_related("purposes")
        .order_by("-received_at", "-pk")
    )


def due_soon_cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(days=settings.RIGHTS_DUE_SOON_DAYS)


def requests_needing_attention(*, now: datetime | None = None) -> list[RightsRequest]:
    """Open requests overdue or due within RIGHTS_DUE_SOON_DAYS, earliest first."""
    return list(
        RightsRequest.objects.filter(
            status__in=OPEN_STATUSES, due_at__lte=due_soon_cutoff(now)
        ).order_by("due_at", "pk")
    )


def urgency(request: RightsRequest, *, now: datetime | None = None) -> str:
    """ "overdue", "due_soon" or "" for an open request; "" once closed."""
    if not request.is_open:
        return ""
    now = now or timezone.now()
    if request.due_at <= now:
        return "overdue"
    if request.due_at <= due_soon_cutoff(now):
        return "due_soon"
    return ""


def latest_export(*, subject_id: uuid.UUID) -> DataExport | None:
    """The person's newest copy of their data, whatever its state."""
    return DataExport.objects.filter(subject_id=subject_id).order_by("-created_at", "-pk").first()
