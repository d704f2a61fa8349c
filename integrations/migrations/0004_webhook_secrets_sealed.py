"""Webhook secrets sealed at rest (integrations/webhooks/sealing.py): each
endpoint's secret, and the previous one while it overlaps, is encrypted with
a key kept in WEBHOOK_SEALING_KEY_DIR, outside the database, and the plain
columns are dropped. The first key is made here if there is a secret to seal.

Reversible while the key that sealed them is in the folder: going back
unseals them into the plain columns again."""

from django.db import migrations, models


def _context(endpoint, field: str) -> str:
    # As WebhookEndpoint._context: the sealed value is bound to its endpoint and field.
    return f"{endpoint.uuid}:{field}"


def seal(apps, schema_editor):
    # The sealing module itself, not a copy: what it writes must be what the
    # portal reads. It needs settings only, no model.
    from integrations.webhooks import sealing

    WebhookEndpoint = apps.get_model("integrations", "WebhookEndpoint")
    for endpoint in WebhookEndpoint.objects.order_by("pk").iterator():
        endpoint.secret_sealed = sealing.seal(endpoint.secret, context=_context(endpoint, "secret"))
        endpoint.previous_secret_sealed = sealing.seal(
            endpoint.previous_secret, context=_context(endpoint, "previous_secret")
        )
        endpoint.secret_hint = f"{endpoint.secret[:10]}…" if endpoint.secret else ""
        endpoint.save(update_fields=["secret_sealed", "previous_secret_sealed", "secret_hint"])


def unseal(apps, schema_editor):
    from integrations.webhooks import sealing

    WebhookEndpoint = apps.get_model("integrations", "WebhookEndpoint")
    for endpoint in WebhookEndpoint.objects.order_by("pk").iterator():
        endpoint.secret = sealing.unseal(
            endpoint.secret_sealed, context=_context(endpoint, "secret")
        )
        endpoint.previous_secret = sealing.unseal(
            endpoint.previous_secret_sealed, context=_context(endpoint, "previous_secret")
        )
        endpoint.save(update_fields=["secret", "previous_secret"])


class Migration(migrations.Migration):

    dependencies = [
        ("integrations", "0003_connected_systems"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookendpoint",
            name="secret_sealed",
            field=models.TextField(default="", editable=False),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="webhookendpoint",
            name="previous_secret_sealed",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AddField(
            model_name="webhookendpoint",
            name="secret_hint",
            field=models.CharField(
                blank=True, editable=False, max_length=16, verbose_name="secret"
            ),
        ),
        migrations.RunPython(seal, unseal, elidable=False),
        # With a default, so that going back can add the plain columns again
        # before unseal() fills them.
        migrations.AlterField(
            model_name="webhookendpoint",
            name="secret",
            field=models.CharField(default="", editable=False, max_length=100),
        ),
        migrations.RemoveField(model_name="webhookendpoint", name="secret"),
        migrations.RemoveField(model_name="webhookendpoint", name="previous_secret"),
    ]
