"""The event's notice loses its index: nothing looks events up by their
notice (verify_ledger joins them to their notices by hash, in one pass), and
every decision wrote an entry in it: about 3% of the database's work per
decision (bench/README.md).

On SQLite, altering the column rebuilds consents_consentevent, which drops
its triggers: they are made again here, as in 0011, 0012 and 0014."""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models

from consents.migrations._append_only import events_triggers_again_on_sqlite


class Migration(migrations.Migration):
    dependencies = [("consents", "0015_shop_models_moved")]

    operations = [
        # Backwards, the column is rebuilt last: the triggers are made again after it.
        migrations.RunPython(migrations.RunPython.noop, events_triggers_again_on_sqlite),
        migrations.AlterField(
            model_name="consentevent",
            name="notice",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="events",
                to="consents.purposenotice",
            ),
        ),
        migrations.RunPython(events_triggers_again_on_sqlite, migrations.RunPython.noop),
    ]
