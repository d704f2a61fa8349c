# The demo shop's models now belong to shop/ (shop 0001 takes them over in
# Django's state): nothing happens to the tables or their rows.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("consents", "0014_ledger_keys_unconstrained"),
        ("shop", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name="Interest"),
                migrations.DeleteModel(name="Product"),
                migrations.DeleteModel(name="ProductCategory"),
            ],
        ),
    ]
