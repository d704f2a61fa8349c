"""Reads that cross relations: what a page shows about purposes and choices."""

from __future__ import annotations

import uuid

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from consents.models import (
    ConsentState,
    DataCategory,
    Decision,
    LegalBasis,
    Purpose,
    PurposeNotice,
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
    (not one they refused or withdrew)."""
    granted = ConsentState.objects.filter(subject_id=subject_id, decision=Decision.GRANTED)
    in_use = (
        Purpose.objects.filter(retired_at__isnull=True)
        .filter(~Q(legal_basis=LegalBasis.CONSENT) | Q(pk__in=granted.values("purpose_id")))
        .order_by("order", "key")
    )
    return DataCategory.objects.prefetch_related(
        Prefetch("purposes", queryset=in_use, to_attr="purposes_in_use")
    )


def consent_states(*, subject_id: uuid.UUID) -> dict[int, ConsentState]:
    return {s.purpose_id: s for s in ConsentState.objects.filter(subject_id=subject_id)}


def subjects_accepting_optional_email() -> QuerySet:
    """Subject ids with a standing grant for a purpose we email about (those
    offered in the newsletter form): a subquery, for the policies app."""
    return ConsentState.objects.filter(
        decision=Decision.GRANTED,
        purpose__offered_in_newsletter=True,
        purpose__retired_at__isnull=True,
    ).values("subject_id")
