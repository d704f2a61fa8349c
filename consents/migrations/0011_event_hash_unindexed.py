"""The events' hash loses its unique index (and the pattern index PostgreSQL
gets with it): nothing looks an event up by its hash, and two events never
share one, since it covers the event's uuid, unique on its own. The two
indexes were the widest on the table (64 characters a row, twice), and every
decision wrote a random page of each: a quarter of a decision's cost on a
ledger of a million events (bench/README.md).

On SQLite, altering the column rebuilds consents_consentevent, which drops its
triggers: they are made again here, as in 0009."""

from __future__ import annotations

from django.db import migrations, models

from consents.migrations._append_only import events_triggers_again_on_sqlite

class Migration(migrations.Migration):
    dependencies = [("consents", "0010_decision_function")]

    operations = [
        # Backwards, the column is rebuilt last: the triggers are made again after it.
        migrations.RunPython(migrations.RunPython.noop, events_triggers_again_on_sqlite),
        migrations.AlterField(
            model_name="consentevent",
            name="hash",
            field=models.CharField(max_length=64),
        ),
        migrations.RunPython(events_triggers_again_on_sqlite, migrations.RunPython.noop),
    ]
