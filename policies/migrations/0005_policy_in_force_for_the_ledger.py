"""The ledger's decision function (consents migration 0010) asks the database
which privacy policy version is in force on a day: consents_policy_in_force,
which consents leaves empty and this app fills in, the query of
policies.selectors.version_in_force_for_ledger (a test keeps them equal), in
plain SQL so that PostgreSQL inlines it into the decision's plan.
Consents never reads the policies' tables itself."""

from __future__ import annotations

from django.db import migrations

POSTGRES_UP = """
CREATE OR REPLACE FUNCTION consents_policy_in_force(p_day date)
RETURNS TABLE (id bigint, hash text)
LANGUAGE sql STABLE AS $$
    SELECT v.id, v.content_hash::text FROM policies_policyversion v
    JOIN policies_policy p ON p.id = v.policy_id
    WHERE p.slug = 'privacy' AND v.status = 'published' AND v.effective_date <= p_day
    ORDER BY v.number DESC LIMIT 1
$$;
"""

POSTGRES_DOWN = """
CREATE OR REPLACE FUNCTION consents_policy_in_force(p_day date)
RETURNS TABLE (id bigint, hash text)
LANGUAGE sql STABLE AS $$ SELECT NULL::bigint, NULL::text WHERE false $$;
"""


def run(sql: str):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return apply


class Migration(migrations.Migration):
    dependencies = [
        ("policies", "0004_notifications_into_outbox"),
        ("consents", "0010_decision_function"),
    ]

    operations = [migrations.RunPython(run(POSTGRES_UP), run(POSTGRES_DOWN))]
