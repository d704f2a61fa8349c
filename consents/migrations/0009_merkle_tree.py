"""The ledger becomes a Merkle tree (issue 9): decisions are inserted with
their own content hash and no global lock; a sealer gives each its place
(LedgerLeaf), keeps complete subtrees (LedgerNode) and signs tree heads
(LedgerSeal). The three tables are append-only, as the events are.

The events of the hash chain keep their chain hash and become the tree's
first leaves, in chain order, under one seal. The chain is checked first: a
head that does not verify, or that does not name the last event, stops the
migration rather than seal a chain that may have been tampered with. The
single chain-head row goes: the seals replace it.

On SQLite, making `seq` nullable rebuilds consents_consentevent, which drops
its triggers: they are made again here."""

from __future__ import annotations

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from consents.migrations._append_only import append_only

EVENTS_MESSAGE = "consents_consentevent is append-only: ledger events are never updated or deleted"


def events_triggers_again_on_sqlite(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for operation in ("UPDATE", "DELETE"):
        name = f"consents_ledger_no_{operation.lower()}"
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name};")
        schema_editor.execute(
            f"CREATE TRIGGER {name} BEFORE {operation} ON consents_consentevent "
            f"BEGIN SELECT RAISE(ABORT, '{EVENTS_MESSAGE}'); END;"
        )


def seal_the_chain(apps, schema_editor):
    from django.utils import timezone

    from consents import keys, merkle
    from consents.checkpoints import MERKLE_V1, checkpoint_token

    LedgerHead = apps.get_model("consents", "LedgerHead")
    ConsentEvent = apps.get_model("consents", "ConsentEvent")
    LedgerLeaf = apps.get_model("consents", "LedgerLeaf")
    LedgerNode = apps.get_model("consents", "LedgerNode")
    LedgerSeal = apps.get_model("consents", "LedgerSeal")
    head = LedgerHead.objects.filter(pk=1).first()
    last = ConsentEvent.objects.order_by("-seq").values_list("seq", "hash", "id").first()
    if last is None:
        return
    if head is None:
        raise RuntimeError(
            "The consent ledger's chain head is missing while it has events: it may have "
            "been tampered with. Run `python manage.py verify_ledger` on the previous "
            "release and investigate before migrating."
        )
    message = f"clareza-ledger-head:{head.seq}:{head.hash}".encode()
    if not keys.verify(message, head.signature) or (head.seq, head.hash) != last[:2]:
        raise RuntimeError(
            "The consent ledger's chain head does not verify or does not name the last "
            "event: it may have been tampered with. Run `python manage.py verify_ledger` on "
            "the previous release and investigate before migrating; nothing was changed."
        )
    frontier = merkle.Frontier()
    nodes = []
    leaves = []
    for seq, id_, hash_ in ConsentEvent.objects.order_by("seq").values_list("seq", "id", "hash"):
        leaves.append(LedgerLeaf(seq=seq, event_id=id_))
        for level, index, digest in frontier.append(merkle.leaf_hash(bytes.fromhex(hash_))):
            if level >= 8:
                nodes.append(LedgerNode(level=level, index=index, hash=digest.hex()))
    LedgerLeaf.objects.bulk_create(leaves, batch_size=1000)
    LedgerNode.objects.bulk_create(nodes, batch_size=1000)
    now = timezone.now()
    root = frontier.root().hex()
    LedgerSeal.objects.create(
        size=frontier.size,
        root=root,
        last_event_id=ConsentEvent.objects.order_by("-id").values_list("id", flat=True)[0],
        frontier=frontier.to_json(),
        created_at=now,
        token=checkpoint_token(size=frontier.size, root=root, moment=now, format=MERKLE_V1),
    )


class Migration(migrations.Migration):
    dependencies = [("consents", "0008_ledger_checkpoint")]

    operations = [
        migrations.RemoveIndex(model_name="consentevent", name="event_subject_idx"),
        migrations.AlterField(
            model_name="consentevent",
            name="seq",
            field=models.BigIntegerField(
                blank=True, help_text="Place in the hash chain of format 1.", null=True, unique=True
            ),
        ),
        migrations.AlterField(
            model_name="consentevent",
            name="prev_hash",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddIndex(
            model_name="consentevent",
            index=models.Index(fields=["subject_id", "-id"], name="event_subject_order_idx"),
        ),
        migrations.RunPython(events_triggers_again_on_sqlite, migrations.RunPython.noop),
        migrations.CreateModel(
            name="LedgerLeaf",
            fields=[
                ("seq", models.BigIntegerField(primary_key=True, serialize=False)),
                (
                    "event",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="leaf",
                        to="consents.consentevent",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="LedgerNode",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("level", models.PositiveSmallIntegerField()),
                ("index", models.BigIntegerField()),
                ("hash", models.CharField(max_length=64)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("level", "index"), name="ledger_node_place")
                ],
            },
        ),
        migrations.CreateModel(
            name="LedgerSeal",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("size", models.BigIntegerField(unique=True)),
                ("root", models.CharField(max_length=64)),
                ("last_event_id", models.BigIntegerField()),
                ("frontier", models.JSONField()),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("token", models.TextField()),
            ],
        ),
        append_only(
            "consents_ledgerleaf",
            "consents_leaf",
            "consents_ledgerleaf is append-only: the places of events in the ledger never change",
        ),
        append_only(
            "consents_ledgernode",
            "consents_node",
            "consents_ledgernode is append-only: the tree of the ledger is never rewritten",
        ),
        append_only(
            "consents_ledgerseal",
            "consents_seal",
            "consents_ledgerseal is append-only: ledger seals are never updated or deleted",
        ),
        migrations.RunPython(seal_the_chain, migrations.RunPython.noop),
        migrations.DeleteModel(name="LedgerHead"),
    ]
