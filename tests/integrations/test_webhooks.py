"""Signed webhooks, delivered to a real HTTP receiver on loopback and verified
with the `standardwebhooks` package, as a receiver would."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import standardwebhooks
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from consents.demo import seed_inventory
from consents.models import Decision, Method
from consents.services import consent_record, gpc_apply, purpose_retire
from integrations.models import WebhookDelivery, WebhookEndpoint, WebhookMessage
from integrations.webhooks import delivery, net, services
from policies import services as policy_services
from policies.models import PolicyVersion
from portal import events, outbox
from portal.mail import EMAIL
from portal.models import OutboxItem
from rights import services as rights_services
from rights.models import AuditEntry, Kind
from tests.conftest import make_user

Status = WebhookDelivery.Status


@pytest.fixture
def purposes(db):
    return {p.key: p for p in seed_inventory()}


def endpoint_for(receiver, staff, kinds=None, **extra) -> services.WithSecret:
    return services.endpoint_create(
        name="CRM",
        url=receiver.url,
        events=list(kinds or events.KINDS),
        acting_user=staff,
        **extra,
    )


def send_all() -> int:
    """What a worker does: every due webhook row, per endpoint topic."""
    sent = 0
    topics = set(OutboxItem.objects.filter(kind=delivery.WEBHOOK).values_list("topic", flat=True))
    for topic in sorted(topics):
        while outbox.outbox_claimable(kind=delivery.WEBHOOK, topic=topic).exists():
            sent += outbox.outbox_send(kind=delivery.WEBHOOK, topic=topic)
    return sent


def verified(secret: str, received) -> list[dict]:
    return [standardwebhooks.Webhook(secret).verify(body, headers) for headers, body in received]


def grant(person, purpose, method=Method.PANEL):
    return consent_record(
        subject_id=person.subject_id, purpose=purpose, decision=Decision.GRANTED, method=method
    )


# Every event, delivered and signed ---------------------------------------------------


def test_every_event_kind_reaches_the_receiver_signed_and_without_an_email(
    receiver, staff, customer, purposes
):
    hook = endpoint_for(receiver, staff)
    news, ads, research = (
        purposes["newsletter"],
        purposes["ad-partners"],
        purposes["product-research"],
    )
    grant(customer, news)
    consent_record(
        subject_id=customer.subject_id, purpose=research, decision=Decision.REFUSED,
        method=Method.PANEL,
    )  # fmt: skip
    consent_record(
        subject_id=customer.subject_id, purpose=news, decision=Decision.WITHDRAWN,
        method=Method.PANEL,
    )  # fmt: skip
    grant(customer, ads)
    gpc_apply(subject_id=customer.subject_id)
    grant(customer, research)
    purpose_retire(purpose=research, acting_user=staff)  # the grant lapses
    from policies.demo import seed_policies

    seed_policies()
    draft = PolicyVersion.objects.filter(status=PolicyVersion.Status.DRAFT).first()
    policy_services.policy_version_publish(version=draft, acting_user=staff)
    request = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    rights_services.requests_due_notify(now=timezone.now() + timedelta(days=60))
    rights_services.request_complete(request=request, acting_user=staff, answer="Here.")
    rights_services.user_erase(user=customer, acting_user=staff)

    send_all()

    messages = verified(hook.secret, receiver.received)
    kinds = {message["type"] for message in messages}
    # A task assigned to a connected system goes to that system's own endpoint
    # only, never to every endpoint that chose it (tests/integrations/test_systems.py).
    assert kinds == set(events.KINDS) - {
        events.RIGHTS_REQUEST_ASSIGNED,
        events.RIGHTS_REQUEST_CANCELLED,
    }
    by_kind = {m["type"]: m["data"] for m in messages}
    assert by_kind["consent.granted"]["purpose"] in {
        "newsletter",
        "ad-partners",
        "product-research",
    }
    assert by_kind["consent.gpc_opt_out"]["purpose"] == "ad-partners"
    assert by_kind["consent.gpc_opt_out"]["decision"] == "withdrawn"
    assert by_kind["consent.lapsed"]["purpose"] == "product-research"
    assert by_kind["consent.lapsed"]["method"] == "expiry"
    assert by_kind["consent.refused"]["notice_version"] >= 1
    assert by_kind["policy.version_published"]["policy"] == "privacy"
    assert by_kind["rights_request.due"]["overdue"] is True
    assert by_kind["account.erased"]["subject_id"] == str(customer.subject_id)
    assert all(m["data"].get("subject_id") in (None, str(customer.subject_id)) for m in messages)
    for _headers, body in receiver.received:
        assert "customer@example.com" not in body
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {Status.SUCCEEDED}


def test_only_the_events_an_endpoint_chose_are_sent_to_it(receiver, staff, customer, purposes):
    endpoint_for(receiver, staff, kinds=[events.CONSENT_WITHDRAWN])
    grant(customer, purposes["newsletter"])
    consent_record(
        subject_id=customer.subject_id, purpose=purposes["newsletter"],
        decision=Decision.WITHDRAWN, method=Method.PANEL,
    )  # fmt: skip
    send_all()
    assert [m["type"] for m in receiver.bodies()] == ["consent.withdrawn"]


def test_a_rolled_back_change_sends_nothing(receiver, staff, customer, purposes):
    endpoint_for(receiver, staff)
    with pytest.raises(RuntimeError), transaction.atomic():
        grant(customer, purposes["newsletter"])
        assert WebhookMessage.objects.count() == 1  # written with the change...
        raise RuntimeError("the change fails after the decision")
    assert not WebhookMessage.objects.exists()  # ...and gone with it
    assert not OutboxItem.objects.filter(kind=delivery.WEBHOOK).exists()
    assert send_all() == 0
    assert receiver.received == []


def test_a_decision_no_endpoint_wants_costs_no_webhook_query(receiver, staff, customer, purposes):
    """Most decisions are made with no endpoint wanting them: the kinds that
    active endpoints want are kept per process, so such a decision reads no
    webhook table (and a grant stays one statement on PostgreSQL). An endpoint
    saved in this process counts at once."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    endpoint_for(receiver, staff, kinds=[events.ACCOUNT_ERASED])
    assert delivery.subscribed_kinds() == {events.ACCOUNT_ERASED}
    with CaptureQueriesContext(connection) as captured:
        grant(customer, purposes["newsletter"])
    assert not [q for q in captured if "integrations_webhook" in q["sql"]]
    assert not WebhookMessage.objects.exists()

    endpoint_for(receiver, staff, kinds=[events.CONSENT_GRANTED])
    grant(customer, purposes["recommendations"])
    assert WebhookMessage.objects.get().event_type == events.CONSENT_GRANTED


def test_an_event_outside_a_transaction_is_refused(flushed_after, receiver, staff):
    endpoint_for(receiver, staff)
    with pytest.raises(RuntimeError, match="inside the transaction"):
        events.publish(events.ACCOUNT_ERASED, {"subject_id": "x"})
    with pytest.raises(LookupError), transaction.atomic():
        events.publish("account.renamed", {})
    assert not WebhookMessage.objects.exists()


# Retries, disabling ------------------------------------------------------------------


def _due_now(item: OutboxItem) -> None:
    OutboxItem.objects.filter(pk=item.pk).update(next_attempt_at=timezone.now())


def test_a_failed_delivery_backs_off_and_is_sent_again_with_the_same_id(
    receiver, staff, customer, purposes
):
    hook = endpoint_for(receiver, staff)
    receiver.answers = [500, 503]
    grant(customer, purposes["newsletter"])
    row = OutboxItem.objects.get(kind=delivery.WEBHOOK)

    before = timezone.now()
    assert outbox.outbox_send(kind=delivery.WEBHOOK, topic=row.topic) == 0
    row.refresh_from_db()
    assert row.status == OutboxItem.Status.PENDING and row.last_error == "HTTP 500"
    assert timedelta(seconds=9) < row.next_attempt_at - before < timedelta(seconds=12)
    assert outbox.outbox_send(kind=delivery.WEBHOOK, topic=row.topic) == 0  # not yet due

    _due_now(row)
    before = timezone.now()
    outbox.outbox_send(kind=delivery.WEBHOOK, topic=row.topic)
    row.refresh_from_db()
    # The schedule grows: 10 s, then 60 s (WEBHOOK_RETRY_SECONDS, about a day in all).
    assert timedelta(seconds=59) < row.next_attempt_at - before < timedelta(seconds=62)

    _due_now(row)
    assert outbox.outbox_send(kind=delivery.WEBHOOK, topic=row.topic) == 1
    sent = WebhookDelivery.objects.get()
    assert sent.status == Status.SUCCEEDED and sent.attempts == 3
    attempts = list(sent.attempt_rows.values_list("status_code", "error", "response_excerpt"))
    assert attempts == [
        (500, "", "broken today"),
        (503, "", "broken today"),
        (200, "", '{"ok": true}'),
    ]
    ids = {headers["webhook-id"] for headers, _body in receiver.received}
    assert ids == {sent.message.webhook_id}
    assert len(verified(hook.secret, receiver.received)) == 3


def test_the_retry_schedule_lasts_about_a_day(settings):
    handler = outbox.handler_for(delivery.WEBHOOK)
    total = sum((handler.backoff(n) for n in range(1, handler.max_attempts)), timedelta())
    assert timedelta(hours=23) < total < timedelta(hours=26)
    assert handler.max_attempts == len(settings.WEBHOOK_RETRY_SECONDS) + 1
    delays = [handler.backoff(n) for n in range(1, handler.max_attempts)]
    assert delays == sorted(delays)


def _fail_for_good(receiver, settings, customer, purpose):
    settings.WEBHOOK_RETRY_SECONDS = [0, 0]  # three tries
    receiver.answers = [500] * 10
    grant(customer, purpose)
    for _try in range(3):
        send_all()


def test_an_endpoint_that_keeps_failing_is_disabled_and_staff_are_emailed(
    receiver, staff, customer, purposes, settings
):
    other_staff = make_user("ops@example.com", staff=True, language="pt-br")
    hook = endpoint_for(receiver, staff)
    settings.WEBHOOK_RETRY_SECONDS = [3600, 3600]  # three tries
    receiver.answers = [500] * 10
    grant(customer, purposes["newsletter"])
    send_all()
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.failing_since is not None and endpoint.is_active
    # Failing for more than a day when the delivery uses its last try.
    WebhookEndpoint.objects.update(failing_since=timezone.now() - timedelta(hours=25))
    for _try in range(2):
        assert endpoint.is_active
        _due_now(OutboxItem.objects.get(kind=delivery.WEBHOOK))
        send_all()
        endpoint.refresh_from_db()

    endpoint.refresh_from_db()
    assert WebhookDelivery.objects.get().status == Status.FAILED
    assert not endpoint.is_active and endpoint.disabled_at is not None
    mails = {
        m.recipient: m for m in OutboxItem.objects.filter(kind=EMAIL, topic=delivery.DISABLED_EMAIL)
    }
    assert set(mails) == {staff.email, other_staff.email}
    assert "CRM" in mails[staff.email].title
    assert receiver.url in mails[staff.email].payload["body_text"]
    assert "desativado" in mails[other_staff.email].title.lower()
    assert (
        f"/admin/integrations/webhookendpoint/{endpoint.pk}/change/"
        in mails[staff.email].payload["body_text"]
    )

    # Nothing more is written for it...
    grant(customer, purposes["recommendations"])
    assert WebhookDelivery.objects.count() == 1
    # ...until staff enable it again, and replay what it missed.
    services.endpoint_enable(endpoint=endpoint, acting_user=staff)
    assert AuditEntry.objects.filter(action="webhook_endpoint_enable").count() == 1
    receiver.answers = []
    services.delivery_replay(delivery=WebhookDelivery.objects.get(), acting_user=staff)
    send_all()
    assert verified(hook.secret, receiver.received[-1:])[0]["type"] == "consent.granted"


def test_a_delivery_failing_for_good_after_minutes_of_failures_does_not_disable(
    receiver, staff, customer, purposes, settings
):
    endpoint_for(receiver, staff)
    _fail_for_good(receiver, settings, customer, purposes["newsletter"])
    endpoint = WebhookEndpoint.objects.get()
    assert WebhookDelivery.objects.get().status == Status.FAILED
    assert endpoint.is_active  # failing for minutes, not a day
    assert not OutboxItem.objects.filter(topic=delivery.DISABLED_EMAIL).exists()


# Rotation ---------------------------------------------------------------------------


def test_a_rotated_secret_overlaps_with_the_old_one_then_the_old_one_stops(
    receiver, staff, customer, purposes
):
    old = endpoint_for(receiver, staff).secret
    new = services.endpoint_secret_rotate(
        endpoint=WebhookEndpoint.objects.get(), acting_user=staff, overlap_hours=2
    ).secret
    assert new != old and new.startswith("whsec_")
    grant(customer, purposes["newsletter"])
    send_all()
    headers, _body = receiver.received[-1]
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verified(old, receiver.received) == verified(new, receiver.received)

    WebhookEndpoint.objects.update(previous_secret_until=timezone.now() - timedelta(seconds=1))
    grant(customer, purposes["recommendations"])
    send_all()
    assert verified(new, receiver.received[-1:])[0]["type"] == "consent.granted"
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        verified(old, receiver.received[-1:])
    entry = AuditEntry.objects.get(action="webhook_secret_rotate")
    assert entry.actor == staff and old not in json.dumps(entry.details)
    assert new not in json.dumps(entry.details)


# No server-side request forgery -------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hooks",
        "http://localhost:8080/hooks",  # a name that resolves to 127.0.0.1
        "http://[::ffff:10.0.0.1]/hooks",
        "http://0.0.0.0/hooks",
    ],
)
def test_production_refuses_private_loopback_and_link_local_addresses(url, settings):
    settings.DEBUG = False
    settings.WEBHOOK_ALLOWED_HOSTS = []
    with pytest.raises(net.UnsafeURL):
        net.check_url(url)


def test_the_allow_list_lets_a_private_host_through(settings):
    settings.DEBUG = False
    settings.WEBHOOK_ALLOWED_HOSTS = ["10.0.0.0/8", "localhost"]
    net.check_url("http://10.0.0.1/hooks")
    net.check_url("http://localhost:8080/hooks")
    with pytest.raises(net.UnsafeURL):
        net.check_url("http://169.254.169.254/")


def test_development_contacts_only_loopback_and_the_allow_list(settings):
    settings.DEBUG = True
    settings.WEBHOOK_ALLOWED_HOSTS = []
    net.check_url("http://127.0.0.1:9/hooks")
    net.check_url("http://[::1]:9/hooks")
    with pytest.raises(net.UnsafeURL, match="development"):
        net.check_url("http://93.184.216.34/hooks")
    # An address given as such is named once, with what is wrong with it.
    with pytest.raises(net.UnsafeURL) as refused:
        net.check_url("http://169.254.169.254/")
    assert str(refused.value).startswith("169.254.169.254 is not a loopback address")
    assert str(refused.value).count("169.254.169.254") == 1


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "http://user:pw@127.0.0.1/x", "http:///nohost", "file:///etc/passwd"],
)
def test_urls_that_are_not_plain_http_are_refused(url, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    with pytest.raises(net.UnsafeURL):
        net.check_url(url)


def test_a_url_refused_at_delivery_is_not_contacted(receiver, staff, customer, purposes, settings):
    endpoint_for(receiver, staff)
    settings.WEBHOOK_ALLOWED_HOSTS = []  # the allow-list changed since registration
    grant(customer, purposes["newsletter"])
    send_all()
    assert receiver.received == []
    attempt = WebhookDelivery.objects.get().attempt_rows.get()
    assert attempt.status_code is None and "refused" in attempt.error


def test_redirects_are_not_followed(receiver, staff, customer, purposes):
    endpoint_for(receiver, staff)
    receiver.answers = [302]
    grant(customer, purposes["newsletter"])
    send_all()
    assert len(receiver.received) == 1
    assert WebhookDelivery.objects.get().status == Status.PENDING  # retried later, not followed


# The admin --------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


ADD = "admin:integrations_webhookendpoint_add"


def test_staff_register_an_endpoint_and_see_its_secret_once(admin_client, receiver, staff):
    response = admin_client.post(
        reverse(ADD),
        {"name": "CRM", "url": receiver.url, "events": ["consent.granted", "account.erased"]},
    )
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret() in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert endpoint.events == ["consent.granted", "account.erased"]
    entry = AuditEntry.objects.get(action="webhook_endpoint_save")
    assert entry.actor == staff and endpoint.secret() not in json.dumps(entry.details)
    page = admin_client.get(
        reverse("admin:integrations_webhookendpoint_change", args=[endpoint.pk])
    )
    assert endpoint.secret() not in page.content.decode()
    assert endpoint.secret()[:10] in page.content.decode()


def test_a_private_url_is_refused_with_a_clear_message(admin_client, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    response = admin_client.post(
        reverse(ADD),
        {"name": "Metadata", "url": "http://169.254.169.254/", "events": ["consent.granted"]},
    )
    assert response.status_code == 200
    assert "link-local" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()
    assert not AuditEntry.objects.filter(action="webhook_endpoint_save").exists()


def test_rotating_in_the_admin_shows_the_new_secret(admin_client, receiver, staff):
    endpoint = endpoint_for(receiver, staff).endpoint
    url = reverse("admin:integrations_webhook_rotate", args=[endpoint.pk])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"overlap_hours": "-1"})
    assert response.status_code == 200 and WebhookEndpoint.objects.get().previous_secret() == ""
    response = admin_client.post(url, {"overlap_hours": "6"})
    endpoint.refresh_from_db()
    assert endpoint.secret() in response.content.decode() and endpoint.previous_secret()


def test_a_delivery_is_replayed_from_the_admin_with_the_same_webhook_id(
    admin_client, receiver, staff, customer, purposes
):
    hook = endpoint_for(receiver, staff)
    grant(customer, purposes["newsletter"])
    send_all()
    first = WebhookDelivery.objects.get()
    url = reverse("admin:integrations_webhookdelivery_change", args=[first.pk])
    admin_client.post(url, {"_audit_reason": "1", "reason": "The CRM says it missed it."})
    page = admin_client.get(url)
    assert "Replay" in page.content.decode()
    assert "{&quot;ok&quot;: true}" in page.content.decode()  # the receiver's answer, escaped
    replay_url = reverse("admin:integrations_webhook_replay", args=[first.pk])
    assert admin_client.get(replay_url).status_code == 405
    response = admin_client.post(replay_url)
    assert response.status_code == 302
    replay = WebhookDelivery.objects.exclude(pk=first.pk).get()
    assert replay.replay_of == first
    send_all()
    assert [h["webhook-id"] for h, _b in receiver.received] == [first.message.webhook_id] * 2
    assert len(verified(hook.secret, receiver.received)) == 2
    assert AuditEntry.objects.get(action="webhook_replay").actor == staff


def test_a_delivery_reads_in_portuguese(client, receiver, staff, customer, purposes):
    """Its title and labels are translated: no "succeeded", no "Replay of"."""
    staff.language = "pt-br"
    staff.save(update_fields=["language"])
    client.force_login(staff)
    endpoint_for(receiver, staff)
    grant(customer, purposes["newsletter"])
    send_all()
    delivery = WebhookDelivery.objects.get()
    url = reverse("admin:integrations_webhookdelivery_change", args=[delivery.pk])
    asked = client.get(url, HTTP_ACCEPT_LANGUAGE="pt-BR").content.decode()
    assert "Por que você precisa ver os dados desta pessoa?" in asked
    client.post(url, {"_audit_reason": "1", "reason": "O CRM diz que não recebeu."})
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="pt-BR").content.decode()
    assert "(Entregue)" in page and "(succeeded)" not in page
    assert "Reenvio de" in page and "Replay of" not in page
    assert "Id da entrega" in page and "Uuid" not in page


def test_customers_and_visitors_cannot_reach_webhooks(client, customer, receiver, staff, purposes):
    endpoint_for(receiver, staff)
    grant(customer, purposes["newsletter"])
    pk = WebhookDelivery.objects.get().pk
    replay_url = reverse("admin:integrations_webhook_replay", args=[pk])
    assert client.post(replay_url).status_code == 302  # to the login
    client.force_login(customer)
    assert client.post(replay_url).status_code == 302
    assert client.get(reverse("admin:integrations_webhookendpoint_changelist")).status_code == 302
    assert WebhookDelivery.objects.count() == 1


def test_the_admin_re_enables_a_disabled_endpoint(
    admin_client, receiver, staff, customer, purposes
):
    endpoint = endpoint_for(receiver, staff).endpoint
    WebhookEndpoint.objects.update(is_active=False, disabled_at=timezone.now())
    page = admin_client.get(
        reverse("admin:integrations_webhookendpoint_change", args=[endpoint.pk])
    )
    assert "Enable again" in page.content.decode()
    response = admin_client.post(reverse("admin:integrations_webhook_enable", args=[endpoint.pk]))
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.disabled_at is None


def test_a_host_that_does_not_answer_is_not_waited_for_again_in_the_same_batch(
    receiver, staff, customer, purposes, settings
):
    settings.WEBHOOK_PARALLEL_POSTS = 1
    endpoint_for(receiver, staff)
    receiver.close()  # nothing listens there any more
    for key in [
        "newsletter",
        "recommendations",
        "tailored-offers",
        "product-research",
        "ad-partners",
    ]:
        grant(customer, purposes[key])
    row = OutboxItem.objects.filter(kind=delivery.WEBHOOK).first()
    assert outbox.outbox_send(kind=delivery.WEBHOOK, topic=row.topic) == 0
    errors = [a.error for d in WebhookDelivery.objects.order_by("pk") for a in d.attempt_rows.all()]
    assert len(errors) == 5
    assert all("Connection" in error for error in errors[:3])
    assert all(error.startswith("Not tried") for error in errors[3:])
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {(Status.PENDING, 1)}
