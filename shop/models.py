"""The demo catalogue, and the zero-party data that chooses from it.

The tables keep the names they had while the shop lived inside consents/
(migrations: shop 0001 and consents 0014 move the models, not the rows)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.localized import Localized


class ProductCategory(models.Model):
    key = models.SlugField(_("key"), max_length=50, unique=True)
    name = models.CharField(_("name (English)"), max_length=80)
    name_pt = models.CharField(_("name (Portuguese)"), max_length=80, blank=True)
    order = models.PositiveSmallIntegerField(_("order"), default=100)

    class Meta:
        db_table = "consents_productcategory"
        verbose_name = _("product category")
        verbose_name_plural = _("product categories")
        ordering = ["order", "key"]

    def __str__(self) -> str:
        return self.name

    display_name = Localized("name")


class ProductQuerySet(models.QuerySet):
    def exclude_allergens(self, allergens: list[str]) -> ProductQuerySet:
        query = self
        for allergen in allergens:
            query = query.exclude(allergens__contains=f",{allergen},")
        return query


class Product(models.Model):
    category = models.ForeignKey(ProductCategory, on_delete=models.CASCADE, related_name="products")
    name = models.CharField(_("name (English)"), max_length=120)
    name_pt = models.CharField(_("name (Portuguese)"), max_length=120, blank=True)
    price = models.DecimalField(_("price (R$)"), max_digits=8, decimal_places=2)
    allergens = models.CharField(
        _("allergens"), max_length=200, blank=True, help_text="Comma-framed keys: ,gluten,nuts,"
    )
    featured = models.BooleanField(_("featured"), default=False)

    objects = ProductQuerySet.as_manager()

    class Meta:
        db_table = "consents_product"
        verbose_name = _("product")
        verbose_name_plural = _("products")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    display_name = Localized("name")


class Interest(models.Model):
    """Zero-party data: a category a customer told us they like. It exists only
    for the recommendations purpose and is erased when that consent goes
    (declared to consents' registry of personal data in shop/privacy.py)."""

    subject_id = models.UUIDField()
    category = models.ForeignKey(
        ProductCategory, on_delete=models.CASCADE, related_name="interests", to_field="key"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "consents_interest"
        constraints = [
            models.UniqueConstraint(fields=["subject_id", "category"], name="interest_unique"),
        ]

    def __str__(self) -> str:
        return f"interest {self.category_id}"
