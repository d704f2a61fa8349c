"""A frozen notice is the text people agreed to: UPDATE and DELETE on
consents_purposenotice are refused by a trigger, on PostgreSQL and on SQLite,
as for the ledger's events (0002). verify_ledger also recomputes every
notice's hash from its text, for whoever can drop a trigger.

On SQLite, a later migration that rebuilds consents_purposenotice drops these
triggers and must create them again (tests/consents/test_ledger.py checks)."""

from __future__ import annotations

from django.db import migrations

TABLE = "consents_purposenotice"
MESSAGE = "consents_purposenotice is append-only: a frozen notice is never changed or deleted"

POSTGRES_UP = f"""
CREATE OR REPLACE FUNCTION consents_notice_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER consents_notice_no_update BEFORE UPDATE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION consents_notice_append_only();
CREATE TRIGGER consents_notice_no_delete BEFORE DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION consents_notice_append_only();
"""
POSTGRES_DOWN = f"""
DROP TRIGGER IF EXISTS consents_notice_no_update ON {TABLE};
DROP TRIGGER IF EXISTS consents_notice_no_delete ON {TABLE};
DROP FUNCTION IF EXISTS consents_notice_append_only();
"""
SQLITE_UP = [
    f"""CREATE TRIGGER consents_notice_no_update BEFORE UPDATE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
    f"""CREATE TRIGGER consents_notice_no_delete BEFORE DELETE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS consents_notice_no_update;",
    "DROP TRIGGER IF EXISTS consents_notice_no_delete;",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        statements = statements_by_vendor[schema_editor.connection.vendor]
        for statement in [statements] if isinstance(statements, str) else statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("consents", "0004_dpv_terms_checked")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES_UP, "sqlite": SQLITE_UP}),
            _run({"postgresql": POSTGRES_DOWN, "sqlite": SQLITE_DOWN}),
        ),
    ]
