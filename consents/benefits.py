"""What each purpose gives back, decided in one place from the current consent
state: no page can show a benefit whose consent is gone."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass, field

from django.conf import settings

from consents.models import ConsentState, Decision, PersonalDatum, Product

RECOMMENDATIONS = "recommendations"
TAILORED_OFFERS = "tailored-offers"
DIETARY = "dietary-suggestions"
RECOMMENDATION_COUNT = 6


@dataclass
class Benefits:
    granted: set[str] = field(default_factory=set)
    recommendations: list[Product] = field(default_factory=list)
    discount_code: str = ""

    @property
    def recommendations_on(self) -> bool:
        return RECOMMENDATIONS in self.granted

    @property
    def offers_on(self) -> bool:
        return TAILORED_OFFERS in self.granted


def discount_code(subject_id: uuid.UUID) -> str:
    """A personal code, the same every time for one person, guessable by no one."""
    key = hashlib.sha256(b"clareza-discount:" + settings.SECRET_KEY.encode()).digest()
    digest = hmac.new(key, str(subject_id).encode(), hashlib.sha256).hexdigest().upper()
    return f"CLAREZA-{digest[:4]}-{digest[4:8]}-10"


def benefits_for(*, subject_id: uuid.UUID) -> Benefits:
    from rights.selectors import limited_purposes

    # A benefit is given only while its purpose may process the person's data:
    # granted, and not stopped by an objection or a restriction of theirs.
    granted = set(
        ConsentState.objects.filter(
            subject_id=subject_id, decision=Decision.GRANTED, purpose__retired_at__isnull=True
        )
        .exclude(purpose_id__in=limited_purposes(subject_id=subject_id))
        .values_list("purpose__key", flat=True)
    )
    benefits = Benefits(granted=granted)
    if TAILORED_OFFERS in granted:
        benefits.discount_code = discount_code(subject_id)
    if RECOMMENDATIONS in granted:
        products = Product.objects.filter(category__interests__subject_id=subject_id)
        if DIETARY in granted:
            avoid = (
                PersonalDatum.objects.filter(subject_id=subject_id, field="dietary")
                .values_list("value", flat=True)
                .first()
            )
            products = products.exclude_allergens([a for a in (avoid or "").split(",") if a])
        benefits.recommendations = list(
            products.select_related("category").order_by("-featured", "name")[:RECOMMENDATION_COUNT]
        )
    return benefits
