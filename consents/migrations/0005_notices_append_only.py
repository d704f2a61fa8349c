"""A frozen notice is the text people agreed to: UPDATE and DELETE on
consents_purposenotice are refused by a trigger, on PostgreSQL and on SQLite,
as for the ledger's events (0002). verify_ledger also recomputes every
notice's hash from its text, for whoever can drop a trigger.

On SQLite, a later migration that rebuilds consents_purposenotice drops these
triggers and must create them again (tests/consents/test_ledger.py checks)."""

from __future__ import annotations

from django.db import migrations

from consents.migrations._append_only import append_only


class Migration(migrations.Migration):
    dependencies = [("consents", "0004_dpv_terms_checked")]

    operations = [
        append_only(
            "consents_purposenotice",
            "consents_notice",
            "consents_purposenotice is append-only: a frozen notice is never changed or deleted",
        ),
    ]
