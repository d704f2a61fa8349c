"""A webhook message's body names a person (their subject id, what they
decided or asked): the delivery's admin page opens, like every page of one
person's data, only with a why, and writes its audit row before it is built
(rights/admin_audit.py). Lists show no body."""

from __future__ import annotations

import pytest
from django.urls import NoReverseMatch, reverse
from django.utils import translation

from integrations.models import WebhookDelivery
from policies import services as policy_services
from policies.models import PolicyVersion
from rights import audit
from rights import services as rights_services
from rights.models import AuditAction, AuditEntry, Kind
from tests.integrations.test_webhooks import endpoint_for, grant, send_all

REASON = "The CRM says it never received this withdrawal."


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def delivered(receiver, staff, customer, purposes):
    """A delivery of a consent decision about the customer, sent."""
    endpoint_for(receiver, staff)
    grant(customer, purposes["newsletter"])
    send_all()
    return WebhookDelivery.objects.select_related("message").get()


def _url(delivery) -> str:
    return reverse("admin:integrations_webhookdelivery_change", args=[delivery.pk])


def _looks():
    return list(AuditEntry.objects.filter(action=AuditAction.VIEW_WEBHOOK))


def test_a_delivery_about_a_person_asks_why_before_showing_its_body(
    admin_client, delivered, customer, staff
):
    response = admin_client.get(_url(delivered))
    html = response.content.decode()
    assert response.status_code == 200 and 'name="_audit_reason"' in html
    assert str(customer.subject_id) not in html and "newsletter" not in html
    assert delivered.message.webhook_id not in html
    assert _looks() == []
    response = admin_client.post(_url(delivered), {"_audit_reason": "1", "reason": " "})
    assert response.status_code == 400 and str(customer.subject_id) not in response.content.decode()
    response = admin_client.post(_url(delivered), {"_audit_reason": "1", "reason": REASON})
    assert response.status_code == 302 and _looks() == []

    page = admin_client.get(_url(delivered)).content.decode()
    assert str(customer.subject_id) in page and delivered.message.webhook_id in page
    [look] = _looks()
    assert (look.actor, look.subject_id, look.reason, look.request_uuid) == (
        staff,
        customer.subject_id,
        REASON,
        None,
    )
    assert look.target == f"integrations.webhookdelivery:{delivered.uuid}"
    # The person reads the look in their copy ("Who looked at your data").
    [seen] = [row for row in audit.accesses(customer.subject_id) if row["looked"]]
    with translation.override("en"):
        assert seen["reason"] == REASON and "another system" in seen["action_label"]


def test_a_person_s_open_request_is_the_why(admin_client, delivered, customer):
    request = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    page = admin_client.get(_url(delivered)).content.decode()
    assert str(customer.subject_id) in page
    [look] = _looks()
    assert look.request_uuid == request.uuid and look.reason == ""


def test_a_message_about_no_one_opens_at_once(admin_client, receiver, staff):
    from policies.demo import seed_policies

    endpoint_for(receiver, staff, kinds=["policy.version_published"])
    seed_policies()
    draft = PolicyVersion.objects.filter(status=PolicyVersion.Status.DRAFT).first()
    policy_services.policy_version_publish(version=draft, acting_user=staff)
    delivery = WebhookDelivery.objects.filter(message__event_type="policy.version_published")[0]
    assert delivery.message.subject_id is None
    page = admin_client.get(_url(delivery)).content.decode()
    assert "policy.version_published" in page and 'name="_audit_reason"' not in page
    assert _looks() == []


def test_the_lists_show_no_body(admin_client, delivered, customer):
    listing = admin_client.get(reverse("admin:integrations_webhookdelivery_changelist"))
    endpoint_page = admin_client.get(
        reverse("admin:integrations_webhookendpoint_change", args=[delivered.endpoint_id])
    )
    for response in (listing, endpoint_page):
        assert response.status_code == 200
        assert str(customer.subject_id) not in response.content.decode()
    assert _looks() == []
    # Messages and attempts have no admin pages of their own: only the
    # delivery's (audited) page shows them.
    for name in ("webhookmessage", "webhookattempt"):
        with pytest.raises(NoReverseMatch):
            reverse(f"admin:integrations_{name}_changelist")


def test_a_look_cannot_be_recorded_without_a_why(staff, customer):
    from django.db import IntegrityError, transaction

    with pytest.raises(audit.AuditError):
        audit.record(
            acting_user=staff, action=AuditAction.VIEW_WEBHOOK, subject_id=customer.subject_id
        )
    # Nor by a raw INSERT: the database's check constraint covers the new read.
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEntry.objects.create(
            actor=staff,
            actor_email=staff.email,
            action=AuditAction.VIEW_WEBHOOK,
            subject_id=customer.subject_id,
        )
