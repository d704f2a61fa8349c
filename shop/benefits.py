"""What the shop gives back for each purpose, decided from the person's
current consent as the API reports it (integrations.api.selectors, the reads
behind GET /api/v1/subjects/.../consents): a benefit is given only while its
purpose may process the person's data (granted, the purpose active, and no
objection or restriction of theirs stopping it)."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass, field

from django.conf import settings

from consents import personal_data
from consents.value_exchange import Benefits as Shown
from consents.value_exchange import Part
from integrations.api import selectors as consent_api
from shop.models import Product

# The purposes of the company's inventory that the shop gives something back for.
RECOMMENDATIONS = "recommendations"
TAILORED_OFFERS = "tailored-offers"
DIETARY = "dietary-suggestions"
DIETARY_FIELD = "dietary"  # the field the shop declares (shop.apps)
RECOMMENDATION_COUNT = 6
TEMPLATE = "shop/benefits.html"


def allowed_purposes(subject_id: uuid.UUID) -> set[str]:
    """Keys of the purposes the person's data may be processed for now."""
    consents = consent_api.person_consents(subject_id) or []
    return {c["purpose"] for c in consents if c["processing_allowed"]}


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
    granted = allowed_purposes(subject_id)
    benefits = Benefits(granted=granted)
    if TAILORED_OFFERS in granted:
        benefits.discount_code = discount_code(subject_id)
    if RECOMMENDATIONS in granted:
        products = Product.objects.filter(category__interests__subject_id=subject_id)
        if DIETARY in granted:
            avoid = personal_data.stored_value(subject_id=subject_id, key=DIETARY_FIELD)
            products = products.exclude_allergens([a for a in avoid.split(",") if a])
        benefits.recommendations = list(
            products.select_related("category").order_by("-featured", "name")[:RECOMMENDATION_COUNT]
        )
    return benefits


def shown_for(subject_id: uuid.UUID) -> Shown:
    """The parts the portal shows (consents.value_exchange): on the choices
    page, the code then the recommendations; on the home page, the
    recommendations (or a word asking for interests), then the code."""
    benefits = benefits_for(subject_id=subject_id)
    shown = Shown()
    if benefits.discount_code:
        shown.panel.append(Part(f"{TEMPLATE}#panel-discount", {"code": benefits.discount_code}))
    if benefits.recommendations:
        products = {"products": benefits.recommendations}
        shown.panel.append(Part(f"{TEMPLATE}#recommendations", products))
        shown.home.append(Part(f"{TEMPLATE}#home-recommendations", products))
    elif benefits.recommendations_on:
        shown.home.append(Part(f"{TEMPLATE}#home-ask-interests"))
    if benefits.discount_code:
        shown.home.append(Part(f"{TEMPLATE}#home-discount", {"code": benefits.discount_code}))
    return shown
