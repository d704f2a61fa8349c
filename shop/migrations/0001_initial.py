# The demo shop's models moved out of consents/ (consents 0014 forgets them
# there): the tables, their names and their rows stay as they are; only
# Django's state changes, and the content types follow (so the admin's
# permissions and history on them stay).

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

MOVED = ("productcategory", "product", "interest")


def content_types_to(source, target):
    def move(apps, schema_editor):
        ContentType = apps.get_model("contenttypes", "ContentType")
        db = schema_editor.connection.alias
        for model in MOVED:
            if ContentType.objects.using(db).filter(app_label=target, model=model).exists():
                continue
            ContentType.objects.using(db).filter(app_label=source, model=model).update(
                app_label=target
            )

    return move


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("consents", "0014_ledger_keys_unconstrained"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="ProductCategory",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("key", models.SlugField(unique=True, verbose_name="key")),
                        ("name", models.CharField(max_length=80, verbose_name="name (English)")),
                        ("name_pt", models.CharField(blank=True, max_length=80, verbose_name="name (Portuguese)")),
                        ("order", models.PositiveSmallIntegerField(default=100, verbose_name="order")),
                    ],
                    options={
                        "verbose_name": "product category",
                        "verbose_name_plural": "product categories",
                        "db_table": "consents_productcategory",
                        "ordering": ["order", "key"],
                    },
                ),
                migrations.CreateModel(
                    name="Product",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=120, verbose_name="name (English)")),
                        ("name_pt", models.CharField(blank=True, max_length=120, verbose_name="name (Portuguese)")),
                        ("price", models.DecimalField(decimal_places=2, max_digits=8, verbose_name="price (R$)")),
                        ("allergens", models.CharField(blank=True, help_text="Comma-framed keys: ,gluten,nuts,", max_length=200, verbose_name="allergens")),
                        ("featured", models.BooleanField(default=False, verbose_name="featured")),
                        ("category", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="products", to="shop.productcategory")),
                    ],
                    options={
                        "verbose_name": "product",
                        "verbose_name_plural": "products",
                        "db_table": "consents_product",
                        "ordering": ["name"],
                    },
                ),
                migrations.CreateModel(
                    name="Interest",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("subject_id", models.UUIDField()),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("category", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="interests", to="shop.productcategory", to_field="key")),
                    ],
                    options={
                        "db_table": "consents_interest",
                        "constraints": [models.UniqueConstraint(fields=("subject_id", "category"), name="interest_unique")],
                    },
                ),
            ],
        ),
        migrations.RunPython(
            content_types_to("consents", "shop"), content_types_to("shop", "consents"), elidable=True
        ),
    ]
