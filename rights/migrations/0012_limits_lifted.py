"""The objections and restrictions that stopped having effect, as rows the
audience's changes feed follows by id (rights.models.LimitLifted), so that a
system kept in step takes the person back in. The ones lifted before this
migration are written too, in the order they were closed: a cursor given
before lifts were followed starts from the first."""

from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models


def lifted_before(apps, schema_editor):
    RightsRequest = apps.get_model("rights", "RightsRequest")
    LimitLifted = apps.get_model("rights", "LimitLifted")
    closed = ["done", "refused", "cancelled"]
    ended = RightsRequest.objects.filter(
        models.Q(kind="restriction", status__in=closed)
        | models.Q(kind="objection", status__in=["refused", "cancelled"])
    ).order_by("closed_at", "pk")
    LimitLifted.objects.bulk_create(
        LimitLifted(request_id=pk, lifted_at=closed_at)
        for pk, closed_at in ended.values_list("pk", "closed_at").iterator()
    )


class Migration(migrations.Migration):
    dependencies = [("rights", "0011_audit_webhook_views")]

    operations = [
        migrations.CreateModel(
            name="LimitLifted",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("lifted_at", models.DateTimeField()),
                (
                    "request",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="rights.rightsrequest",
                    ),
                ),
            ],
            options={
                "verbose_name": "objection or restriction lifted",
                "verbose_name_plural": "objections and restrictions lifted",
            },
        ),
        migrations.RunPython(lifted_before, migrations.RunPython.noop),
    ]
