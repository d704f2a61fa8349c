"""Webhook secrets sealed at rest (integrations/webhooks/sealing.py): the
database alone is not enough to forge a delivery, signing still verifies as a
receiver would, and the sealing key is made, rotated and lost safely."""

from __future__ import annotations

import json
import stat

import pytest
import standardwebhooks
from django.core.management import call_command
from django.db import connection

from integrations.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from integrations.webhooks import sealing, services
from tests.integrations.test_webhooks import endpoint_for, grant, send_all, verified
from tests.migration_support import migrate, migrate_to_the_end


@pytest.fixture(autouse=True)
def sealing_dir(settings, tmp_path):
    settings.WEBHOOK_SEALING_KEY_DIR = tmp_path / "sealing"
    sealing._cache.clear()
    yield settings.WEBHOOK_SEALING_KEY_DIR
    sealing._cache.clear()


def _row_text(endpoint: WebhookEndpoint) -> str:
    """Every column of the endpoint's row, as a database read would give it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM integrations_webhookendpoint WHERE id = %s", [endpoint.pk])
        return json.dumps(cursor.fetchall(), default=str)


def test_the_database_holds_no_secret_that_signs(receiver, staff, sealing_dir):
    hook = endpoint_for(receiver, staff)
    rotated = services.endpoint_secret_rotate(
        endpoint=hook.endpoint, acting_user=staff, overlap_hours=2
    )
    row = _row_text(hook.endpoint)
    for secret in (hook.secret, rotated.secret):
        body = secret.removeprefix("whsec_")
        assert body not in row and body[:12] not in row
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret_sealed.startswith("v1.") and endpoint.previous_secret_sealed
    assert endpoint.secrets() == [rotated.secret, hook.secret]
    assert endpoint.secret_hint == rotated.secret[:10] + "…"


def test_the_key_is_made_on_first_use_readable_by_its_owner_only(staff, receiver, sealing_dir):
    assert not sealing_dir.exists()
    endpoint_for(receiver, staff)
    files = list(sealing_dir.glob("*.key"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(sealing_dir.stat().st_mode) == 0o700
    endpoint_for(receiver, staff)
    assert len(list(sealing_dir.glob("*.key"))) == 1  # the same key seals the next


def test_a_sealed_secret_copied_onto_another_endpoint_does_not_open(receiver, staff):
    first = endpoint_for(receiver, staff).endpoint
    second = endpoint_for(receiver, staff).endpoint
    WebhookEndpoint.objects.filter(pk=second.pk).update(secret_sealed=first.secret_sealed)
    second.refresh_from_db()
    with pytest.raises(sealing.SealError):
        second.secret()
    altered = first.secret_sealed[:-4] + ("AAAA" if first.secret_sealed[-4:] != "AAAA" else "BBBB")
    WebhookEndpoint.objects.filter(pk=first.pk).update(secret_sealed=altered)
    first.refresh_from_db()
    with pytest.raises(sealing.SealError):
        first.secret()


def test_deliveries_still_verify_after_the_sealing_key_is_rotated(
    receiver, staff, customer, purposes, sealing_dir
):
    hook = endpoint_for(receiver, staff)
    old_files = set(sealing_dir.glob("*.key"))
    call_command("rotate_webhook_sealing_key", stdout=(out := _Out()))
    assert "the other key files can be removed" in out.text
    endpoint = WebhookEndpoint.objects.get()
    assert sealing.kid_in(endpoint.secret_sealed) == sealing.current_kid()
    for path in old_files:
        path.unlink()
    sealing._cache.clear()
    grant(customer, purposes["newsletter"])
    send_all()
    assert verified(hook.secret, receiver.received)[0]["type"] == "consent.granted"


def test_a_lost_key_sends_nothing_unsigned_and_rotating_the_secret_recovers(
    receiver, staff, customer, purposes, sealing_dir
):
    hook = endpoint_for(receiver, staff)
    for path in sealing_dir.glob("*.key"):
        path.unlink()
    sealing._cache.clear()
    grant(customer, purposes["newsletter"])
    send_all()
    assert receiver.received == []
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and "Not sent" in attempt.error
    assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.PENDING  # retried later

    rotated = services.endpoint_secret_rotate(
        endpoint=hook.endpoint, acting_user=staff, overlap_hours=6
    )
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.previous_secret_sealed == "" and endpoint.secrets() == [rotated.secret]
    grant(customer, purposes["recommendations"])
    send_all()
    messages = [
        standardwebhooks.Webhook(rotated.secret).verify(body, headers)
        for headers, body in receiver.received
    ]
    assert messages and messages[-1]["data"]["purpose"] == "recommendations"


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


@pytest.mark.django_db(transaction=True)
def test_the_migration_seals_existing_secrets_and_going_back_unseals_them(
    sealing_dir, flushed_after
):
    from integrations.webhooks import signing

    before = [("integrations", "0002_webhooks")]
    after = [("integrations", "0004_webhook_secrets_sealed")]
    executor = migrate(before)
    Endpoint = executor.loader.project_state(before).apps.get_model(
        "integrations", "WebhookEndpoint"
    )
    secret, previous = signing.new_secret(), signing.new_secret()
    plain = Endpoint.objects.create(
        name="CRM", url="https://crm.example.com/hook", events=["consent.granted"],
        secret=secret, previous_secret=previous,
    )  # fmt: skip

    executor = migrate(after)
    Endpoint = executor.loader.project_state(after).apps.get_model(
        "integrations", "WebhookEndpoint"
    )
    sealed = Endpoint.objects.get(pk=plain.pk)
    assert secret.removeprefix("whsec_") not in json.dumps(
        list(Endpoint.objects.values()), default=str
    )
    assert sealed.secret_hint == secret[:10] + "…"
    context = f"{sealed.uuid}:"
    assert sealing.unseal(sealed.secret_sealed, context=context + "secret") == secret
    assert sealing.unseal(sealed.previous_secret_sealed, context=context + "previous_secret") == (
        previous
    )

    executor = migrate(before)
    Endpoint = executor.loader.project_state(before).apps.get_model(
        "integrations", "WebhookEndpoint"
    )
    back = Endpoint.objects.get(pk=plain.pk)
    assert (back.secret, back.previous_secret) == (secret, previous)
    migrate_to_the_end()
