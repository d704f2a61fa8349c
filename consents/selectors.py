"""Reads that cross relations: what a page shows about purposes and choices."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet

from consents import changes
from consents.models import (
    ConsentState,
    DataCategory,
    Decision,
    LegalBasis,
    Purpose,
    PurposeNotice,
    ReconsentRequest,
)
from consents.services import current_notices


def active_purposes() -> QuerySet[Purpose]:
    """Purposes on offer, with their data categories and whether any is sensitive."""
    sensitive = DataCategory.objects.filter(purposes=OuterRef("pk"), sensitive=True)
    return (
        Purpose.objects.filter(retired_at__isnull=True)
        .annotate(data_categories_sensitive=Exists(sensitive))
        .prefetch_related(Prefetch("data_categories", DataCategory.objects.order_by("name")))
        .order_by("order", "key")
    )


def form_purposes(*, scope: str) -> tuple[list[tuple[Purpose, PurposeNotice]], list[Purpose]]:
    """What an opt-in form offers (optional purposes, each with its current notice)
    and what it only explains (purposes on another legal basis)."""
    purposes = list(active_purposes())
    notices = current_notices(purposes)
    offered = [
        (p, notices[p.pk])
        for p in purposes
        if p.is_optional and p.pk in notices and (scope == "signup" or p.offered_in_newsletter)
    ]
    explained = [p for p in purposes if not p.is_optional]
    return offered, explained


def categories_in_use_for(*, subject_id: uuid.UUID) -> QuerySet[DataCategory]:
    """Data categories, each with `purposes_in_use`: the active purposes that use
    it for this person now, those on another legal basis and those they granted
    (not one they refused or withdrew, nor one they objected to or restricted)."""
    from rights.selectors import limited_purposes

    granted = ConsentState.objects.filter(subject_id=subject_id, decision=Decision.GRANTED)
    in_use = (
        Purpose.objects.filter(retired_at__isnull=True)
        .filter(~Q(legal_basis=LegalBasis.CONSENT) | Q(pk__in=granted.values("purpose_id")))
        # An objection or a restriction stops the use at once (rights.selectors).
        .exclude(pk__in=limited_purposes(subject_id=subject_id))
        .order_by("order", "key")
    )
    return DataCategory.objects.prefetch_related(
        Prefetch("purposes", queryset=in_use, to_attr="purposes_in_use")
    )


def processing_allowed(*, subject_id: uuid.UUID, purpose: Purpose) -> bool:
    """May we use this person's data for this purpose now? Its legal basis must
    hold (a purpose on consent needs a standing grant) and no objection or
    restriction of theirs may stop it (rights.selectors.processing_allowed)."""
    from rights.selectors import processing_allowed as rights_allow

    if purpose.retired_at is not None:
        return False
    if purpose.is_optional and not (
        ConsentState.objects.filter(
            subject_id=subject_id, purpose=purpose, decision=Decision.GRANTED
        ).exists()
    ):
        return False
    return rights_allow(subject_id, purpose)


def consent_states(*, subject_id: uuid.UUID) -> dict[int, ConsentState]:
    return {s.purpose_id: s for s in ConsentState.objects.filter(subject_id=subject_id)}


def subjects_accepting_optional_email() -> QuerySet:
    """Subject ids with a standing grant for a purpose we email about (those
    offered in the newsletter form), not stopped by an objection or a
    restriction (rights.selectors): a subquery, for the policies app."""
    from rights.selectors import limited_pairs

    limited = limited_pairs().filter(
        rightsrequest__subject_id=OuterRef("subject_id"), purpose_id=OuterRef("purpose_id")
    )
    return (
        ConsentState.objects.filter(
            decision=Decision.GRANTED,
            purpose__offered_in_newsletter=True,
            purpose__retired_at__isnull=True,
        )
        .exclude(Exists(limited))
        .values("subject_id")
    )


def purpose_grantees_count(*, purpose: Purpose) -> int:
    """How many people hold a grant for the purpose now (asked again if it widens)."""
    return ConsentState.objects.filter(purpose=purpose, decision=Decision.GRANTED).count()


@dataclass
class ReconsentAsk:
    """A purpose the person is asked to decide on again, and by when."""

    purpose: Purpose
    effective_date: date
    requests: list[ReconsentRequest] = field(default_factory=list)
    notice_hash: str = ""  # the purpose's current text, which a "keep it" posts back

    def changes(self) -> list[str]:
        """What widened, in the active language (policy changes say it in their summary)."""
        return [line for request in self.requests for line in changes.describe(request.differences)]


def reconsent_pending(*, subject_id: uuid.UUID) -> list[ReconsentAsk]:
    """The person's grants that a policy change or a widened purpose asks to be
    given again, not given again yet, and not lapsed: one query, earliest first."""
    requests = (
        ReconsentRequest.objects.filter(
            lapsed_at__isnull=True,
            purpose__retired_at__isnull=True,
            purpose__states__subject_id=subject_id,
            purpose__states__decision=Decision.GRANTED,
            purpose__states__event__created_at__lt=F("asked_at"),
        )
        .select_related("purpose")
        .order_by("effective_date", "pk")
    )
    asks: dict[int, ReconsentAsk] = {}
    for request in requests:
        ask = asks.setdefault(
            request.purpose_id, ReconsentAsk(request.purpose, request.effective_date)
        )
        ask.requests.append(request)
    if asks:
        notices = current_notices([ask.purpose for ask in asks.values()])
        for ask in asks.values():
            notice = notices.get(ask.purpose.pk)
            ask.notice_hash = notice.content_hash if notice else ""
    return list(asks.values())


def reconsent_is_pending(*, subject_id: uuid.UUID, purpose: Purpose) -> bool:
    return any(ask.purpose.pk == purpose.pk for ask in reconsent_pending(subject_id=subject_id))
