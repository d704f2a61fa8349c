"""The demo catalogue, and a demo customer's interests, for `seed_demo`.
Idempotent: running it again updates the catalogue, never duplicates it."""

from __future__ import annotations

from django.db import transaction

from consents.personal_data import personal_data_update
from shop.models import Product, ProductCategory

PRODUCT_CATEGORIES = [
    ("coffee-tea", "Coffee and tea", "Cafés e chás"),
    ("bakery", "Bakery", "Padaria"),
    ("snacks", "Snacks", "Petiscos"),
    ("kitchen", "Kitchen", "Cozinha"),
    ("books", "Books", "Livros"),
]

PRODUCTS = [
    # category, name, name_pt, price, allergens, featured
    (
        "coffee-tea",
        "Cerrado Mineiro coffee beans, 500 g",
        "Café em grãos Cerrado Mineiro, 500 g",
        "54.90",
        "",
        True,
    ),
    (
        "coffee-tea",
        "Sul de Minas ground coffee, 250 g",
        "Café moído Sul de Minas, 250 g",
        "24.90",
        "",
        False,
    ),
    (
        "coffee-tea",
        "Yerba mate for chimarrão, 1 kg",
        "Erva-mate para chimarrão, 1 kg",
        "29.90",
        "",
        False,
    ),
    ("coffee-tea", "Hibiscus and ginger tea", "Chá de hibisco com gengibre", "18.50", "", False),
    ("coffee-tea", "Cold brew kit", "Kit cold brew", "89.00", "", False),
    (
        "coffee-tea",
        "Chocolate and hazelnut coffee",
        "Café com chocolate e avelã",
        "32.00",
        "nuts,lactose",
        False,
    ),
    (
        "bakery",
        "Pão de queijo, frozen, 1 kg",
        "Pão de queijo congelado, 1 kg",
        "36.90",
        "lactose,eggs",
        True,
    ),
    ("bakery", "Sourdough loaf", "Pão de fermentação natural", "22.00", "gluten", False),
    ("bakery", "Gluten-free banana bread", "Pão de banana sem glúten", "27.50", "eggs", False),
    ("bakery", "Tapioca flour, 1 kg", "Goma de tapioca, 1 kg", "12.90", "", False),
    ("bakery", "Corn cake (bolo de fubá)", "Bolo de fubá", "19.90", "gluten,eggs,lactose", False),
    (
        "bakery",
        "Brazil nut cookies",
        "Biscoitos de castanha-do-pará",
        "16.90",
        "gluten,nuts",
        False,
    ),
    (
        "snacks",
        "Cashew nuts, roasted, 300 g",
        "Castanha de caju torrada, 300 g",
        "39.90",
        "nuts",
        True,
    ),
    ("snacks", "Paçoca, peanut sweets, 20 units", "Paçoca, 20 unidades", "14.90", "peanuts", False),
    ("snacks", "Banana chips", "Chips de banana", "9.90", "", False),
    ("snacks", "Açaí and guaraná bar", "Barra de açaí e guaraná", "7.50", "soy", False),
    ("snacks", "Cassava crisps", "Chips de mandioca", "11.90", "", False),
    ("snacks", "Goiabada cascão", "Goiabada cascão", "15.90", "", False),
    ("kitchen", "Clay pot (panela de barro)", "Panela de barro", "149.00", "", True),
    ("kitchen", "Coffee strainer, cloth", "Coador de pano", "14.00", "", False),
    ("kitchen", "Cast iron skillet", "Frigideira de ferro fundido", "189.00", "", False),
    ("kitchen", "Wooden spoon set", "Conjunto de colheres de pau", "39.00", "", False),
    ("kitchen", "Tapioca pan", "Frigideira para tapioca", "79.90", "", False),
    ("kitchen", "Moka pot, 6 cups", "Cafeteira italiana, 6 xícaras", "119.00", "", False),
    ("books", "Brazilian home cooking", "Cozinha brasileira de casa", "89.90", "", True),
    ("books", "The coffee atlas of Brazil", "Atlas do café do Brasil", "129.00", "", False),
    ("books", "Baking without gluten", "Confeitaria sem glúten", "74.90", "", False),
    ("books", "Street food of Salvador", "Comida de rua de Salvador", "69.90", "", False),
    ("books", "Fermentation at home", "Fermentação em casa", "64.90", "", False),
    ("books", "Amazon fruits", "Frutas da Amazônia", "99.00", "", False),
]


@transaction.atomic
def seed_catalogue() -> int:
    categories = {}
    for order, (key, name, name_pt) in enumerate(PRODUCT_CATEGORIES):
        categories[key], _created = ProductCategory.objects.update_or_create(
            key=key, defaults={"name": name, "name_pt": name_pt, "order": order}
        )
    for category, name, name_pt, price, allergens, featured in PRODUCTS:
        Product.objects.update_or_create(
            category=categories[category],
            name=name,
            defaults={
                "name_pt": name_pt,
                "price": price,
                "allergens": f",{allergens}," if allergens else "",
                "featured": featured,
            },
        )
    return len(PRODUCTS)


def seed_interests(*, user, keys: list[str]) -> None:
    """The categories a demo customer picked, written as the panel writes them
    (only while a purpose that uses interests holds)."""
    personal_data_update(user=user, field_key="interests", value=keys)
