"""The shop's models moved out of consents/ without moving a row: shop 0001
takes them over in Django's state and consents 0014 forgets them there, with
the same tables (PostgreSQL and SQLite alike)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType

from shop.models import Interest, Product, ProductCategory
from tests.migration_support import migrate, migrate_to_the_end

BEFORE = [("consents", "0014_ledger_keys_unconstrained"), ("shop", None)]
AFTER = [("consents", "0015_shop_models_moved"), ("shop", "0001_initial")]


@pytest.mark.django_db(transaction=True)
def test_moving_the_models_keeps_the_products_and_the_interests(flushed_after):
    product_type = ContentType.objects.get_for_model(Product).pk
    executor = migrate(BEFORE)
    old = executor.loader.project_state(BEFORE[:1]).apps
    with pytest.raises(LookupError):
        old.get_model("shop", "Interest")
    OldCategory = old.get_model("consents", "ProductCategory")
    category = OldCategory.objects.create(key="books", name="Books", name_pt="Livros", order=4)
    product = old.get_model("consents", "Product").objects.create(
        category=category, name="Amazon fruits", price=Decimal("99.00"), allergens=",nuts,"
    )
    subject = uuid.uuid4()
    interest = old.get_model("consents", "Interest").objects.create(
        subject_id=subject, category_id="books"
    )
    # Before the move, the admin's content type names the consents app.
    assert ContentType.objects.get(pk=product_type).app_label == "consents"

    executor = migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    with pytest.raises(LookupError):
        new.get_model("consents", "Interest")
    moved = new.get_model("shop", "Interest").objects.get(pk=interest.pk)
    assert (moved.subject_id, moved.category_id) == (subject, "books")
    migrate_to_the_end()

    # The same rows, read through today's models.
    assert Product.objects.get(pk=product.pk).category.key == "books"
    assert Product.objects.get(pk=product.pk).allergens == ",nuts,"
    assert ProductCategory.objects.get(key="books").name_pt == "Livros"
    assert list(Interest.objects.values_list("subject_id", "category_id")) == [(subject, "books")]
    # The content type followed (the same row: permissions and admin history stay).
    assert ContentType.objects.get(pk=product_type).app_label == "shop"
    assert ContentType.objects.get_for_model(Product).pk == product_type


def test_the_tables_keep_their_names():
    assert [m._meta.db_table for m in (ProductCategory, Product, Interest)] == [
        "consents_productcategory",
        "consents_product",
        "consents_interest",
    ]
