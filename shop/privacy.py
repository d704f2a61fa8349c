"""What the shop tells the portal about the personal data it uses: its fields
(consents' registry, with the data category each exists for), what an
erasure removes and what a person's copy holds (rights' registries), and what
it gives back (consents.value_exchange). Called once, from ShopConfig.ready()."""

from __future__ import annotations

from collections.abc import Iterator

from django.db import models
from django.utils.translation import gettext_lazy as _

from consents import personal_data, value_exchange
from consents.personal_data import DataField, Rows
from rights import erasure, export_sections
from shop import benefits
from shop.models import Interest, ProductCategory

ALLERGENS = [
    ("gluten", _("Gluten")),
    ("lactose", _("Lactose")),
    ("nuts", _("Tree nuts")),
    ("peanuts", _("Peanuts")),
    ("eggs", _("Eggs")),
    ("soy", _("Soy")),
    ("shellfish", _("Shellfish")),
]


def category_choices() -> list[tuple[str, str]]:
    """The catalogue's categories, in its order, named in the active language."""
    return [(c.key, c.display_name) for c in ProductCategory.objects.order_by("order", "key")]


FIELDS = [
    DataField(
        "postal_address",
        "postal-address",
        _("Delivery address"),
        "datum",
        max_length=300,
        textarea=True,
        help_text=_("Street, number, city, postcode."),
    ),
    DataField(
        "interests",
        "interests",
        _("Your interests"),
        Rows(Interest, "category_id", order_by=("category__order",)),
        help_text=_("We recommend products from these categories."),
        choices=category_choices,
        multiple=True,
    ),
    DataField(
        benefits.DIETARY_FIELD,
        "dietary-health",
        _("Allergies and dietary restrictions"),
        "datum",
        choices=ALLERGENS,
        multiple=True,
        help_text=_("We hide products that contain these."),
    ),
]


def _interests_held(person: erasure.Person) -> models.QuerySet:
    return Interest.objects.filter(subject_id__in=person.subject_ids)


def _interests_copied(person: export_sections.Person) -> Iterator[dict]:
    rows = (
        Interest.objects.filter(subject_id=person.subject_id)
        .select_related("category")
        .order_by("category__order", "category_id")
    )
    for interest in rows.iterator(export_sections.CHUNK):
        yield {
            "category": interest.category_id,
            "name": interest.category.display_name,
            "created_at": interest.created_at,
        }


def register() -> None:
    personal_data.register(*FIELDS)
    value_exchange.register("shop", benefits.shown_for)
    erasure.register(
        erasure.Holder("interests", _("Your interests"), _interests_held), after="personal-data"
    )
    export_sections.register(
        export_sections.Section(
            "interests",
            _("Your interests"),
            _("Product categories you told us you like."),
            (
                export_sections.Column("category", export_sections.STRING, _("Category key")),
                export_sections.Column("name", export_sections.STRING, _("Category")),
                export_sections.Column("created_at", export_sections.DATETIME, _("Picked on")),
            ),
            _interests_copied,
        ),
        after="personal_data",
    )
