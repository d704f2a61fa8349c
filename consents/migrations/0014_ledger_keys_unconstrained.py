"""The ledger's rows no longer carry a foreign-key constraint to the purpose
and the notice in the database (the state's purpose neither): at commit,
checking one takes a share lock on the referenced row, and every customer
deciding at once points at the same few purpose and notice rows, so each
commit made a new multixact of all the others' locks. The guarantees stay:
notices are never deleted (trigger, 0005), a purpose with a notice cannot be
deleted (the notice's own constraint), Django's PROTECT refuses both through
the ORM, and verify_ledger names an event or a state whose purpose or notice
is missing. The indexes on the keys stay.

On SQLite, altering the columns rebuilds consents_consentevent, which drops
its triggers: they are made again here, as in 0011 and 0012."""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models

from consents.migrations._append_only import events_triggers_again_on_sqlite


class Migration(migrations.Migration):
    dependencies = [("consents", "0013_method_channels")]

    operations = [
        # Backwards, the columns are rebuilt last: the triggers are made again after them.
        migrations.RunPython(migrations.RunPython.noop, events_triggers_again_on_sqlite),
        migrations.AlterField(
            model_name="consentevent",
            name="notice",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="events",
                to="consents.purposenotice",
            ),
        ),
        migrations.AlterField(
            model_name="consentevent",
            name="purpose",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="events",
                to="consents.purpose",
            ),
        ),
        migrations.AlterField(
            model_name="consentstate",
            name="purpose",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="states",
                to="consents.purpose",
            ),
        ),
        migrations.RunPython(events_triggers_again_on_sqlite, migrations.RunPython.noop),
    ]
