"""Signed checkpoints of the ledger (issue 9), append-only in the database as
the events are (0002): UPDATE and DELETE on consents_ledgercheckpoint are
refused by a trigger, on PostgreSQL and on SQLite. The copies that matter are
the ones outside the database (the export file, the DPO's email, the published
list); verify_ledger checks the database against them.

On SQLite, a later migration that rebuilds consents_ledgercheckpoint drops
these triggers and must create them again."""

import django.utils.timezone
from django.db import migrations, models

TABLE = "consents_ledgercheckpoint"
MESSAGE = f"{TABLE} is append-only: ledger checkpoints are never updated or deleted"

POSTGRES_UP = f"""
CREATE OR REPLACE FUNCTION consents_checkpoint_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER consents_checkpoint_no_update BEFORE UPDATE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION consents_checkpoint_append_only();
CREATE TRIGGER consents_checkpoint_no_delete BEFORE DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION consents_checkpoint_append_only();
"""
POSTGRES_DOWN = f"""
DROP TRIGGER IF EXISTS consents_checkpoint_no_update ON {TABLE};
DROP TRIGGER IF EXISTS consents_checkpoint_no_delete ON {TABLE};
DROP FUNCTION IF EXISTS consents_checkpoint_append_only();
"""
SQLITE_UP = [
    f"""CREATE TRIGGER consents_checkpoint_no_update BEFORE UPDATE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
    f"""CREATE TRIGGER consents_checkpoint_no_delete BEFORE DELETE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS consents_checkpoint_no_update;",
    "DROP TRIGGER IF EXISTS consents_checkpoint_no_delete;",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        statements = statements_by_vendor[schema_editor.connection.vendor]
        for statement in [statements] if isinstance(statements, str) else statements:
            schema_editor.execute(statement)

    return run


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
        migrations.RunPython(
            _run({"postgresql": POSTGRES_UP, "sqlite": SQLITE_UP}),
            _run({"postgresql": POSTGRES_DOWN, "sqlite": SQLITE_DOWN}),
        ),
    ]
