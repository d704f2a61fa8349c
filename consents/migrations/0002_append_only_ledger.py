"""The ledger is append-only in the database itself: UPDATE and DELETE on
consents_consentevent are refused by a trigger, on PostgreSQL and on SQLite.

On SQLite, Django rebuilds a table for most schema changes, which drops its
triggers: a later migration that alters consents_consentevent must run
SQLITE_UP again (tests/consents/test_ledger.py fails if it does not).

TRUNCATE is left alone on PostgreSQL: it needs table ownership (an operator,
not the application), and Django's test-database flush uses it. The hash
chain and its signed head catch a truncation anyway (verify_ledger)."""

from __future__ import annotations

from django.db import migrations

MESSAGE = "consents_consentevent is append-only: ledger events are never updated or deleted"

POSTGRES_UP = f"""
CREATE OR REPLACE FUNCTION consents_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER consents_ledger_no_update BEFORE UPDATE ON consents_consentevent
    FOR EACH ROW EXECUTE FUNCTION consents_ledger_append_only();
CREATE TRIGGER consents_ledger_no_delete BEFORE DELETE ON consents_consentevent
    FOR EACH ROW EXECUTE FUNCTION consents_ledger_append_only();
"""
POSTGRES_DOWN = """
DROP TRIGGER IF EXISTS consents_ledger_no_update ON consents_consentevent;
DROP TRIGGER IF EXISTS consents_ledger_no_delete ON consents_consentevent;
DROP FUNCTION IF EXISTS consents_ledger_append_only();
"""
SQLITE_UP = [
    f"""CREATE TRIGGER consents_ledger_no_update BEFORE UPDATE ON consents_consentevent
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
    f"""CREATE TRIGGER consents_ledger_no_delete BEFORE DELETE ON consents_consentevent
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS consents_ledger_no_update;",
    "DROP TRIGGER IF EXISTS consents_ledger_no_delete;",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        statements = statements_by_vendor.get(schema_editor.connection.vendor)
        if statements is None:
            raise RuntimeError(
                f"No append-only trigger for {schema_editor.connection.vendor}: "
                "Clareza supports PostgreSQL and SQLite."
            )
        for statement in [statements] if isinstance(statements, str) else statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("consents", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES_UP, "sqlite": SQLITE_UP}),
            _run({"postgresql": POSTGRES_DOWN, "sqlite": SQLITE_DOWN}),
        ),
    ]
