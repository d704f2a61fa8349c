"""Signed checkpoints of the ledger (issue 9), append-only in the database as
the events are (0002): UPDATE and DELETE on consents_ledgercheckpoint are
refused by a trigger, on PostgreSQL and on SQLite. The copies that matter are
the ones outside the database (the export file, the DPO's email, the published
list); verify_ledger checks the database against them.

On SQLite, a later migration that rebuilds consents_ledgercheckpoint drops
these triggers and must create them again."""

import django.utils.timezone
from django.db import migrations, models

from consents.migrations._append_only import append_only

class Migration(migrations.Migration):
    dependencies = [("consents", "0007_reconsent_request")]

    operations = [
        migrations.CreateModel(
            name="LedgerCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("size", models.BigIntegerField()),
                ("root", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("token", models.TextField()),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("size__gte", 0)), name="ledger_checkpoint_size"
                    ),
                    models.UniqueConstraint(fields=("size",), name="ledger_checkpoint_one_per_size"),
                ],
            },
        ),
        append_only(
            "consents_ledgercheckpoint",
            "consents_checkpoint",
            "consents_ledgercheckpoint is append-only: "
            "ledger checkpoints are never updated or deleted",
        ),
    ]
