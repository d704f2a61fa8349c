"""What the webhooks add to the portal at start-up (IntegrationsConfig.ready())."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import signals
from django.utils.translation import gettext_lazy as _

from portal import events, outbox


def _messages_expired(now: datetime) -> models.QuerySet:
    from integrations.models import WebhookMessage

    return WebhookMessage.objects.filter(
        created_at__lt=now - timedelta(days=settings.WEBHOOK_KEPT_DAYS)
    )


def ready() -> None:
    from integrations.webhooks import delivery
    from rights import retention

    # Deliveries retry on their own schedule (about a day), not the emails' one.
    # A claim of CLAIM rows: fewer round trips per delivery than OUTBOX_BATCH's.
    outbox.register(
        delivery.WEBHOOK,
        send=delivery.deliver_batch,
        retry_delays=delivery.retry_delays,
        claim=delivery.CLAIM,
    )
    events.subscribe(delivery.fan_out)
    for signal in (signals.post_save, signals.post_delete):
        signal.connect(
            delivery.endpoints_changed,
            sender="integrations.WebhookEndpoint",
            dispatch_uid=f"webhook-kinds-{signal is signals.post_save}",
        )
    # Messages hold opaque subject ids: they go, with their deliveries and attempts.
    retention.register(
        retention.Housekeeping(
            "webhook-messages",
            _("Notices of consent decisions and requests sent to the company's other systems"),
            _("kept %(days)s days, then deleted"),
            lambda: timedelta(days=settings.WEBHOOK_KEPT_DAYS),
            _messages_expired,
        )
    )
