"""Published policy versions carry the hash of their text, which every ledger
event made while they are in force covers (consents.ledger), and the database
refuses to change the text of a published version or to delete it, on
PostgreSQL and on SQLite. Who published it may still be cleared (the staff
account's deletion sets it to NULL)."""

from __future__ import annotations

from django.db import migrations, models

FROZEN = (
    "policy_id",
    "number",
    "status",
    "body",
    "body_pt",
    "summary",
    "summary_pt",
    "material",
    "effective_date",
    "published_at",
    "content_hash",
)
MESSAGE = "a published policy version is never changed or deleted"

POSTGRES_UP = f"""
CREATE OR REPLACE FUNCTION policies_version_frozen() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' OR ({", ".join(f"NEW.{c}" for c in FROZEN)})
        IS DISTINCT FROM ({", ".join(f"OLD.{c}" for c in FROZEN)}) THEN
        RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER policies_version_no_update BEFORE UPDATE ON policies_policyversion
    FOR EACH ROW WHEN (OLD.status = 'published') EXECUTE FUNCTION policies_version_frozen();
CREATE TRIGGER policies_version_no_delete BEFORE DELETE ON policies_policyversion
    FOR EACH ROW WHEN (OLD.status = 'published') EXECUTE FUNCTION policies_version_frozen();
"""
POSTGRES_DOWN = """
DROP TRIGGER IF EXISTS policies_version_no_update ON policies_policyversion;
DROP TRIGGER IF EXISTS policies_version_no_delete ON policies_policyversion;
DROP FUNCTION IF EXISTS policies_version_frozen();
"""
SQLITE_UP = [
    f"""CREATE TRIGGER policies_version_no_update BEFORE UPDATE ON policies_policyversion
    WHEN OLD.status = 'published' AND ({" OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in FROZEN)})
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
    f"""CREATE TRIGGER policies_version_no_delete BEFORE DELETE ON policies_policyversion
    WHEN OLD.status = 'published'
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS policies_version_no_update;",
    "DROP TRIGGER IF EXISTS policies_version_no_delete;",
]


def hash_published(apps, schema_editor):
    from policies.selectors import version_content_hash

    PolicyVersion = apps.get_model("policies", "PolicyVersion")
    for version in PolicyVersion.objects.filter(status="published").select_related("policy"):
        version.content_hash = version_content_hash(version)
        version.save(update_fields=["content_hash"])


def triggers(by_vendor):
    def run(apps, schema_editor):
        statements = by_vendor[schema_editor.connection.vendor]
        for statement in [statements] if isinstance(statements, str) else statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("policies", "0002_reconsent_requests_from_versions")]

    operations = [
        migrations.AddField(
            model_name="policyversion",
            name="content_hash",
            field=models.CharField(blank=True, editable=False, max_length=64),
        ),
        migrations.RunPython(hash_published, migrations.RunPython.noop),
        migrations.RunPython(
            triggers({"postgresql": POSTGRES_UP, "sqlite": SQLITE_UP}),
            triggers({"postgresql": POSTGRES_DOWN, "sqlite": SQLITE_DOWN}),
        ),
    ]
