"""Staff writes to webhooks: each takes a keyword-only acting_user and writes
its staff audit row (rights/audit.py) in the same transaction. Secrets never
go into the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.models import WebhookDelivery, WebhookEndpoint
from integrations.webhooks import delivery as deliveries
from integrations.webhooks import net, sealing, signing
from portal.events import KINDS
from rights import audit
from rights.models import AuditAction


class WebhookError(ValueError):
    """A change the rules refuse; the message is for staff."""


def _staff(acting_user) -> None:
    if acting_user is None or not acting_user.is_staff:
        raise WebhookError(_("Only staff can do this."))


def _clean(*, name: str, url: str, events: list[str]) -> tuple[str, str, list[str]]:
    name = (name or "").strip()
    if not name:
        raise WebhookError(_("Give the endpoint a name."))
    url = (url or "").strip()
    try:
        net.check_url(url)
    except net.UnsafeURL as exc:
        raise WebhookError(str(exc)) from exc
    unknown = [kind for kind in events if kind not in KINDS]
    if unknown:
        raise WebhookError(_("Unknown events: %(events)s") % {"events": ", ".join(unknown)})
    if not events:
        raise WebhookError(_("Choose at least one event."))
    return name, url, [kind for kind in KINDS if kind in events]


def _audit(acting_user, action: str, endpoint: WebhookEndpoint, **details) -> None:
    audit.record(
        acting_user=acting_user,
        action=action,
        target=audit.target_of(endpoint),
        details=details,
    )


@dataclass(frozen=True)
class WithSecret:
    """An endpoint and its new secret, shown to staff once."""

    endpoint: WebhookEndpoint
    secret: str


def endpoint_create(*, name: str, url: str, events: list[str], acting_user) -> WithSecret:
    _staff(acting_user)
    name, url, events = _clean(name=name, url=url, events=events)
    secret = signing.new_secret()
    with transaction.atomic():
        endpoint = WebhookEndpoint(name=name, url=url, events=events, created_by=acting_user)
        endpoint.secrets_seal(secret=secret)
        endpoint.save(force_insert=True)
        _audit(acting_user, AuditAction.WEBHOOK_ENDPOINT_SAVE, endpoint, url=url, events=events)
    return WithSecret(endpoint, secret)


def endpoint_update(
    *, endpoint: WebhookEndpoint, name: str, url: str, events: list[str], is_active: bool,
    acting_user,
) -> WebhookEndpoint:  # fmt: skip
    """Edit an endpoint. Turning it off stops new deliveries (those waiting
    fail when their turn comes); turning it on again is endpoint_enable."""
    _staff(acting_user)
    name, url, events = _clean(name=name, url=url, events=events)
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        locked.name, locked.url, locked.events = name, url, events
        fields = ["name", "url", "events"]
        if locked.is_active and not is_active:
            locked.is_active = False
            fields.append("is_active")
        locked.save(update_fields=fields)
        _audit(
            acting_user,
            AuditAction.WEBHOOK_ENDPOINT_SAVE,
            locked,
            url=url,
            events=events,
            is_active=locked.is_active,
        )
        if is_active and not locked.is_active:
            locked = endpoint_enable(endpoint=locked, acting_user=acting_user)
    return locked


def endpoint_enable(*, endpoint: WebhookEndpoint, acting_user) -> WebhookEndpoint:
    """Enable an endpoint again (after it was disabled for failing): its
    failure streak starts afresh. Deliveries that failed meanwhile can be replayed."""
    _staff(acting_user)
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if locked.is_active:
            raise WebhookError(_("This endpoint is already active."))
        try:
            net.check_url(locked.url)
        except net.UnsafeURL as exc:
            raise WebhookError(str(exc)) from exc
        was_disabled_at = locked.disabled_at
        locked.is_active = True
        locked.disabled_at = None
        locked.failing_since = None
        locked.save(update_fields=["is_active", "disabled_at", "failing_since"])
        _audit(
            acting_user,
            AuditAction.WEBHOOK_ENDPOINT_ENABLE,
            locked,
            disabled_at=was_disabled_at.isoformat() if was_disabled_at else None,
        )
    return locked


def endpoint_secret_rotate(
    *, endpoint: WebhookEndpoint, acting_user, overlap_hours: int | None = None
) -> WithSecret:
    """A new secret signs from now on; the current one goes on signing beside
    it (two signatures in the header) for the overlap, then is dropped. A
    secret still in an earlier overlap is dropped at once."""
    _staff(acting_user)
    if overlap_hours is None:
        overlap_hours = settings.WEBHOOK_SECRET_OVERLAP_HOURS
    if overlap_hours < 0 or overlap_hours > 24 * 30:
        raise WebhookError(_("The overlap is between 0 hours and 30 days."))
    secret = signing.new_secret()
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        until = timezone.now() + timedelta(hours=overlap_hours)
        try:
            previous = locked.secret() if overlap_hours else ""
        except sealing.SealError:
            # Its sealing key is lost: it cannot sign any more, and rotating
            # is the way out (the receiver gets the new secret).
            previous, overlap_hours = "", 0
        # Both sealed afresh, with the newest sealing key.
        locked.secrets_seal(secret=secret, previous=previous, previous_until=until)
        locked.save(update_fields=WebhookEndpoint.SEALED_FIELDS)
        _audit(
            acting_user,
            AuditAction.WEBHOOK_SECRET_ROTATE,
            locked,
            overlap_hours=overlap_hours,
            old_secret_until=until.isoformat() if overlap_hours else None,
        )
    return WithSecret(locked, secret)


def delivery_replay(*, delivery: WebhookDelivery, acting_user) -> WebhookDelivery:
    """Send a delivery's message to its endpoint again: a new delivery with the
    same webhook-id and body (a receiver that saw it already can tell), signed
    with the endpoint's secrets of now."""
    _staff(acting_user)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
        if not endpoint.is_active:
            raise WebhookError(_("Enable the endpoint before replaying to it."))
        replay = deliveries.delivery_queue(
            message=delivery.message, endpoint=endpoint, replay_of=delivery
        )
        audit.record(
            acting_user=acting_user,
            action=AuditAction.WEBHOOK_REPLAY,
            target=audit.target_of(delivery),
            details={
                "endpoint": str(endpoint.uuid),
                "webhook_id": delivery.message.webhook_id,
                "replay": str(replay.uuid),
            },
        )
    return replay


def secrets_reseal() -> dict[str, int]:
    """Seal every endpoint's secrets again with the newest sealing key (after
    sealing.key_rotate()), one endpoint per transaction under its row lock;
    an overlap that has ended is dropped on the way. Returns how many
    endpoints' secrets each key seals afterwards, by kid: once only the
    newest is named, the other key files can be removed. An endpoint whose
    secret cannot be unsealed is left as it is (and counted under its key):
    staff rotate its secret."""
    now = timezone.now()
    for pk in WebhookEndpoint.objects.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            locked = WebhookEndpoint.objects.select_for_update().get(pk=pk)
            try:
                secret = locked.secret()
                overlapping = locked.previous_secret_until and locked.previous_secret_until > now
                previous = locked.previous_secret() if overlapping else ""
            except sealing.SealError:
                continue
            locked.secrets_seal(
                secret=secret, previous=previous, previous_until=locked.previous_secret_until
            )
            locked.save(update_fields=WebhookEndpoint.SEALED_FIELDS)
    return sealing_keys_in_use()


def sealing_keys_in_use() -> dict[str, int]:
    """{kid: endpoints whose current or overlapping secret it seals}."""
    used: dict[str, int] = {}
    for sealed in WebhookEndpoint.objects.values_list("secret_sealed", "previous_secret_sealed"):
        for kid in {sealing.kid_in(value) for value in sealed if value}:
            used[kid] = used.get(kid, 0) + 1
    return used
