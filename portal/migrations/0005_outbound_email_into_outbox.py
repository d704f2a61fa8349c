"""Account and one-off emails move into the one outbox (kind "email"): the
address, subject and template (now the topic) stay; a body, and headers, only
while the email is unsent, as before. Their uuid, and so their Message-ID,
stays. They take new ids, after the policy notifications moved with theirs
(policies 0003). Then the table goes. Reversible: the rows move back."""

from django.core.management.color import no_style
from django.db import migrations

KIND = "email"
CHUNK = 2000


def _payload(email) -> dict:
    if not (email.body_text or email.body_html or email.headers):
        return {}  # sent, or expired: nothing private is left
    return {"body_text": email.body_text, "body_html": email.body_html, "headers": email.headers}


def into_outbox(apps, schema_editor):
    OutboundEmail = apps.get_model("portal", "OutboundEmail")
    OutboxItem = apps.get_model("portal", "OutboxItem")
    batch = []
    for email in OutboundEmail.objects.order_by("pk").iterator(chunk_size=CHUNK):
        batch.append(
            OutboxItem(
                uuid=email.uuid,
                kind=KIND,
                topic=email.kind,
                recipient=email.to,
                title=email.subject,
                payload=_payload(email),
                status=email.status,
                attempts=email.attempts,
                # The old lease_until meant the lease while sending and the
                # backoff while pending: two fields now.
                leased_until=email.lease_until if email.status == "sending" else None,
                next_attempt_at=email.lease_until if email.status == "pending" else None,
                last_error=email.last_error,
                created_at=email.created_at,
                sent_at=email.sent_at,
            )
        )
        if len(batch) >= CHUNK:
            OutboxItem.objects.bulk_create(batch)
            batch = []
    OutboxItem.objects.bulk_create(batch)


def out_of_outbox(apps, schema_editor):
    OutboundEmail = apps.get_model("portal", "OutboundEmail")
    OutboxItem = apps.get_model("portal", "OutboxItem")
    rows = OutboxItem.objects.filter(kind=KIND)
    batch = []
    for item in rows.order_by("pk").iterator(chunk_size=CHUNK):
        batch.append(
            OutboundEmail(
                uuid=item.uuid,
                to=item.recipient,
                subject=item.title,
                kind=item.topic[:100],
                body_text=item.payload.get("body_text", ""),
                body_html=item.payload.get("body_html", ""),
                headers=item.payload.get("headers", {}),
                status=item.status,
                attempts=item.attempts,
                lease_until=item.leased_until or item.next_attempt_at,
                last_error=item.last_error,
                created_at=item.created_at,
                sent_at=item.sent_at,
            )
        )
        if len(batch) >= CHUNK:
            OutboundEmail.objects.bulk_create(batch)
            batch = []
    OutboundEmail.objects.bulk_create(batch)
    rows.delete()
    for sql in schema_editor.connection.ops.sequence_reset_sql(no_style(), [OutboundEmail]):
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0004_outboxitem"),
        ("policies", "0004_notifications_into_outbox"),
    ]

    operations = [
        migrations.RunPython(into_outbox, out_of_outbox),
        migrations.DeleteModel(name="OutboundEmail"),
    ]
