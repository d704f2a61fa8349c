"""Policy notifications move into the one outbox (portal.OutboxItem, kind
"policy_update"), keeping their ids: the signed links in emails already sent
name a notification by its id, and must keep working. Then their table goes.

Runs before portal 0005 moves the account emails (which take new ids), so that
no id is taken twice. Reversible: the rows move back."""

import uuid

from django.core.management.color import no_style
from django.db import migrations

KIND = "policy_update"
CHUNK = 2000


def _reset_sequence(schema_editor, model) -> None:
    """Rows written with their own ids leave PostgreSQL's sequence behind."""
    for sql in schema_editor.connection.ops.sequence_reset_sql(no_style(), [model]):
        schema_editor.execute(sql)


def _notice_uuid(version_id: int, email: str) -> uuid.UUID:
    # As policies/notices.py notice_uuid: the Message-ID follows from (version, address).
    return uuid.uuid5(uuid.NAMESPACE_URL, f"clareza:{version_id}:{email.lower()}")


def into_outbox(apps, schema_editor):
    Notification = apps.get_model("policies", "Notification")
    OutboxItem = apps.get_model("portal", "OutboxItem")
    batch = []
    for n in Notification.objects.order_by("pk").iterator(chunk_size=CHUNK):
        email = n.email.lower()
        batch.append(
            OutboxItem(
                pk=n.pk,
                uuid=_notice_uuid(n.version_id, email),
                kind=KIND,
                topic=f"policy_version:{n.version_id}",
                dedupe_key=f"{n.version_id}:{email}",
                recipient=email,
                subject_id=n.subject_id,
                payload={"version": n.version_id, "language": n.language, "user": n.user_id},
                status=n.status,
                attempts=n.attempts,
                # The old lease_until meant the lease while sending and the
                # backoff while pending: two fields now.
                leased_until=n.lease_until if n.status == "sending" else None,
                next_attempt_at=n.lease_until if n.status == "pending" else None,
                last_error=n.last_error,
                created_at=n.created_at,
                sent_at=n.sent_at,
            )
        )
        if len(batch) >= CHUNK:
            OutboxItem.objects.bulk_create(batch)
            batch = []
    OutboxItem.objects.bulk_create(batch)
    _reset_sequence(schema_editor, OutboxItem)


def out_of_outbox(apps, schema_editor):
    Notification = apps.get_model("policies", "Notification")
    OutboxItem = apps.get_model("portal", "OutboxItem")
    rows = OutboxItem.objects.filter(kind=KIND)
    batch = []
    for item in rows.order_by("pk").iterator(chunk_size=CHUNK):
        batch.append(
            Notification(
                pk=item.pk,
                version_id=item.payload["version"],
                email=item.recipient,
                language=item.payload.get("language") or "en",
                subject_id=item.subject_id,
                user_id=item.payload.get("user"),
                status=item.status,
                attempts=item.attempts,
                lease_until=item.leased_until or item.next_attempt_at,
                last_error=item.last_error,
                created_at=item.created_at,
                sent_at=item.sent_at,
            )
        )
        if len(batch) >= CHUNK:
            Notification.objects.bulk_create(batch)
            batch = []
    Notification.objects.bulk_create(batch)
    rows.delete()
    _reset_sequence(schema_editor, Notification)


class Migration(migrations.Migration):
    dependencies = [
        ("policies", "0003_published_versions_hashed"),
        ("portal", "0004_outboxitem"),
    ]

    operations = [
        migrations.RunPython(into_outbox, out_of_outbox),
        migrations.DeleteModel(name="Notification"),
    ]
