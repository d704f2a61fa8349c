"""Append-only tables, for the migrations that make them: UPDATE and DELETE are
refused by a trigger on PostgreSQL and on SQLite. (A module whose name starts
with "_" is not a migration: Django's loader skips it.)

On SQLite, a later migration that rebuilds such a table drops its triggers and
must create them again; each table's test checks the triggers are in place."""

from __future__ import annotations

from django.db import migrations


def append_only(table: str, name: str, message: str) -> migrations.RunPython:
    """Triggers `<name>_no_update` and `<name>_no_delete` on `table`, raising
    `message`; reversible. The SQL is the same as the events' own (0002)."""
    postgres_up = f"""
CREATE OR REPLACE FUNCTION {name}_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{message}' USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER {name}_no_update BEFORE UPDATE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {name}_append_only();
CREATE TRIGGER {name}_no_delete BEFORE DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {name}_append_only();
"""
    postgres_down = f"""
DROP TRIGGER IF EXISTS {name}_no_update ON {table};
DROP TRIGGER IF EXISTS {name}_no_delete ON {table};
DROP FUNCTION IF EXISTS {name}_append_only();
"""
    sqlite_up = [
        f"""CREATE TRIGGER {name}_no_update BEFORE UPDATE ON {table}
    BEGIN SELECT RAISE(ABORT, '{message}'); END;""",
        f"""CREATE TRIGGER {name}_no_delete BEFORE DELETE ON {table}
    BEGIN SELECT RAISE(ABORT, '{message}'); END;""",
    ]
    sqlite_down = [
        f"DROP TRIGGER IF EXISTS {name}_no_update;",
        f"DROP TRIGGER IF EXISTS {name}_no_delete;",
    ]

    def run(statements_by_vendor):
        def apply(apps, schema_editor):
            statements = statements_by_vendor[schema_editor.connection.vendor]
            for statement in [statements] if isinstance(statements, str) else statements:
                schema_editor.execute(statement)

        return apply

    return migrations.RunPython(
        run({"postgresql": postgres_up, "sqlite": sqlite_up}),
        run({"postgresql": postgres_down, "sqlite": sqlite_down}),
    )


EVENTS_MESSAGE = "consents_consentevent is append-only: ledger events are never updated or deleted"


def events_triggers_again_on_sqlite(apps, schema_editor):
    """The events' triggers (0002) made again on SQLite, after a migration
    that rebuilt consents_consentevent (0011, 0012); PostgreSQL keeps them."""
    if schema_editor.connection.vendor != "sqlite":
        return
    for operation in ("UPDATE", "DELETE"):
        name = f"consents_ledger_no_{operation.lower()}"
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name};")
        schema_editor.execute(
            f"CREATE TRIGGER {name} BEFORE {operation} ON consents_consentevent "
            f"BEGIN SELECT RAISE(ABORT, '{EVENTS_MESSAGE}'); END;"
        )
