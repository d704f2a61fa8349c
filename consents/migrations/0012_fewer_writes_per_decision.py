"""Fewer index writes per decision, the same guarantees:

- the chain place `seq` of format-1 events stays unique, through a partial
  index: the decisions since the Merkle tree leave it empty and no longer
  write an entry for it;
- the current state's `purpose` and `event` keys lose their own indexes:
  state_purpose_decision_idx starts with the purpose, and nothing looks a
  state up by its event (events are never deleted, so no cascade needs it).

Every decision wrote three index entries fewer (bench/README.md).

On SQLite, altering the event's column rebuilds consents_consentevent, which
drops its triggers: they are made again here, as in 0011."""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models

from consents.migrations._append_only import events_triggers_again_on_sqlite


class Migration(migrations.Migration):
    dependencies = [("consents", "0011_event_hash_unindexed")]

    operations = [
        # Backwards, the column is rebuilt last: the triggers are made again after it.
        migrations.RunPython(migrations.RunPython.noop, events_triggers_again_on_sqlite),
        migrations.AddConstraint(
            model_name="consentevent",
            constraint=models.UniqueConstraint(
                condition=models.Q(("seq__isnull", False)),
                fields=("seq",),
                name="event_chain_seq_unique",
            ),
        ),
        migrations.AlterField(
            model_name="consentevent",
            name="seq",
            field=models.BigIntegerField(
                blank=True, help_text="Place in the hash chain of format 1.", null=True
            ),
        ),
        migrations.AlterField(
            model_name="consentstate",
            name="event",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="consents.consentevent",
            ),
        ),
        migrations.AlterField(
            model_name="consentstate",
            name="purpose",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="states",
                to="consents.purpose",
            ),
        ),
        migrations.RunPython(events_triggers_again_on_sqlite, migrations.RunPython.noop),
    ]
