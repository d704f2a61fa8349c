"""Every staff write goes through a service that writes its audit row in the
same transaction: each path below shows the row, and that when the row is
refused the write is rolled back with it."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError
from django.urls import reverse

from consents import services as consent_services
from consents.models import DataCategory, Purpose
from policies import services as policy_services
from policies.demo import seed_policies
from policies.models import Policy, PolicyVersion
from portal import services as portal_services
from portal.mail import EMAIL
from portal.models import OutboxItem
from rights import services
from rights.models import AuditAction, RightsRequest, Status
from tests.rights.conftest import ask, audit_rows, emails, enter, refuse_audit_rows

REASON = "Customer asked by phone to fix their name"


@pytest.fixture
def admin_client(client, staff):
    client.force_login(staff)
    return client


def only_row(action):
    rows = audit_rows()
    assert [r.action for r in rows] == [action]
    return rows[0]


# Rights requests ---------------------------------------------------------------------


def test_entering_a_request_is_audited_with_the_request(admin_client, staff, customer):
    response = admin_client.post(
        reverse("admin:rights_rightsrequest_add"),
        {
            "email": customer.email,
            "kind": "access",
            "jurisdiction": "lgpd",
            "channel": "phone",
            "identity_check": "phone",
            "received_at": "2026-11-20 10:00",
        },
    )
    assert response.status_code == 302
    request = RightsRequest.objects.get()
    row = audit_rows()[0]
    assert (row.action, row.subject_id, row.request_uuid, row.actor_email) == (
        AuditAction.REQUEST_ENTER,
        customer.subject_id,
        request.uuid,
        staff.email,
    )
    assert row.details == {"channel": "phone", "identity_check": "phone"}


def test_an_entered_request_is_not_kept_without_its_row(staff, customer, audit_refused):
    with pytest.raises(DatabaseError):
        enter(staff, customer.email)
    assert not RightsRequest.objects.exists()


@pytest.mark.parametrize(
    ("action", "decision", "status"),
    [
        ("start", AuditAction.REQUEST_START, Status.IN_PROGRESS),
        ("extend", AuditAction.REQUEST_EXTEND, Status.EXTENDED),
        ("refuse", AuditAction.REQUEST_REFUSE, Status.REFUSED),
        ("complete", AuditAction.REQUEST_COMPLETE, Status.DONE),
    ],
)
def test_each_decision_on_a_request_is_audited(admin_client, customer, action, decision, status):
    request = ask(customer, jurisdiction="gdpr")
    url = reverse("admin:rights_rightsrequest_change", args=[request.pk])
    response = admin_client.post(url, {"action": action, "reason": "Because."})
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == status
    # The screen's look, then the decision.
    looked, decided = audit_rows()
    assert looked.action == AuditAction.VIEW_REQUEST
    assert (decided.action, decided.request_uuid, decided.details["status"]) == (
        decision,
        request.uuid,
        status,
    )


@pytest.mark.parametrize("decide", ["start", "extend", "refuse", "complete"])
def test_a_decision_is_rolled_back_with_its_refused_row(staff, customer, decide, audit_refused):
    request = ask(customer, jurisdiction="gdpr")
    sent = len(emails())
    call = getattr(services, f"request_{decide}")
    kwargs = {"reason": "Because."} if decide in ("extend", "refuse") else {}
    with pytest.raises(DatabaseError):
        call(request=request, acting_user=staff, **kwargs)
    request.refresh_from_db()
    assert (request.status, request.extended_at, request.closed_at) == (Status.RECEIVED, None, None)
    assert len(emails()) == sent  # nor was the person emailed


def test_a_refused_decision_writes_no_row(staff, customer):
    request = ask(customer)
    services.request_complete(request=request, acting_user=staff)
    with pytest.raises(services.RightsError):
        services.request_refuse(request=request, reason="late", acting_user=staff)
    assert [r.action for r in audit_rows()] == [AuditAction.REQUEST_COMPLETE]


# The inventory -------------------------------------------------------------------------


def test_retiring_purposes_from_the_admin_is_audited(admin_client, purposes):
    research = purposes["product-research"]
    response = admin_client.post(
        reverse("admin:consents_purpose_changelist"),
        {"action": "retire", "_selected_action": [research.pk]},
    )
    assert response.status_code == 302
    row = only_row(AuditAction.PURPOSE_RETIRE)
    assert row.target == "consents.purpose:product-research" and row.subject_id is None


def test_a_purpose_is_not_retired_without_its_row(staff, purposes, audit_refused):
    with pytest.raises(DatabaseError):
        consent_services.purpose_retire(purpose=purposes["product-research"], acting_user=staff)
    assert Purpose.objects.get(key="product-research").retired_at is None


def test_editing_a_purpose_is_audited_with_its_new_notice(staff, purposes):
    newsletter = purposes["newsletter"]
    updated = consent_services.purpose_update(
        purpose=newsletter, acting_user=staff, values={"description": "Weekly, and short."}
    )
    row = only_row(AuditAction.PURPOSE_UPDATE)
    assert row.details["fields"] == ["description"]
    assert row.details["notice_version"] == updated.notice.version


def test_a_purpose_edit_is_rolled_back_with_its_refused_row(staff, purposes, audit_refused):
    newsletter = purposes["newsletter"]
    notices = newsletter.notices.count()
    with pytest.raises(DatabaseError):
        consent_services.purpose_update(
            purpose=newsletter, acting_user=staff, values={"description": "Weekly, and short."}
        )
    newsletter.refresh_from_db()
    assert newsletter.description != "Weekly, and short."
    assert newsletter.notices.count() == notices


def test_saving_nothing_new_writes_no_row(staff, purposes):
    consent_services.purpose_update(purpose=purposes["newsletter"], acting_user=staff)
    assert audit_rows() == []


def test_creating_a_purpose_in_the_admin_is_audited(admin_client, purposes):
    category = DataCategory.objects.first()
    response = admin_client.post(
        reverse("admin:consents_purpose_add"),
        {
            "key": "wishlist",
            "legal_basis": "consent",
            "data_categories": [category.pk],
            "order": 50,
            "name": "Wish list",
            "description": "Keep a wish list.",
            "retention_days": 365,
            "notices-TOTAL_FORMS": 0,
            "notices-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    purpose = Purpose.objects.get(key="wishlist")
    assert purpose.notices.count() == 1
    row = only_row(AuditAction.PURPOSE_CREATE)
    assert row.target == "consents.purpose:wishlist"


def test_a_data_category_saved_in_the_admin_is_audited_and_rolled_back_with_it(
    admin_client, purposes, audit_refused
):
    with pytest.raises(DatabaseError):
        admin_client.post(
            reverse("admin:consents_datacategory_add"),
            {"key": "shoe-size", "name": "Shoe size", "dpv_code": ""},
        )
    assert not DataCategory.objects.filter(key="shoe-size").exists()


def test_a_data_category_saved_in_the_admin_writes_its_row(admin_client, purposes):
    response = admin_client.post(
        reverse("admin:consents_datacategory_add"),
        {"key": "shoe-size", "name": "Shoe size", "dpv_code": ""},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    row = only_row(AuditAction.CATEGORY_SAVE)
    assert row.target == "consents.datacategory:shoe-size" and row.details == {"created": True}


def test_deleting_an_unused_data_category_is_audited(admin_client, staff, purposes):
    category = consent_services.data_category_save(
        category=DataCategory(key="shoe-size", name="Shoe size"), acting_user=staff
    )
    response = admin_client.post(
        reverse("admin:consents_datacategory_delete", args=[category.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not DataCategory.objects.filter(pk=category.pk).exists()
    assert [r.action for r in audit_rows()] == [
        AuditAction.CATEGORY_SAVE,
        AuditAction.CATEGORY_DELETE,
    ]


# Policies ------------------------------------------------------------------------------


@pytest.fixture
def privacy(purposes) -> Policy:
    seed_policies()
    return Policy.objects.get(slug="privacy")


def test_publishing_from_the_admin_is_audited(admin_client, privacy):
    draft = privacy.versions.get(status=PolicyVersion.Status.DRAFT)
    response = admin_client.post(reverse("admin:policies_version_publish", args=[draft.pk]))
    assert response.status_code == 302
    row = only_row(AuditAction.POLICY_PUBLISH)
    assert row.target == f"policies.policyversion:{draft.pk}"
    assert row.details["number"] == 2


def test_a_version_is_not_published_without_its_row(admin_client, privacy, audit_refused):
    draft = privacy.versions.get(status=PolicyVersion.Status.DRAFT)
    with pytest.raises(DatabaseError):
        admin_client.post(reverse("admin:policies_version_publish", args=[draft.pk]))
    draft.refresh_from_db()
    assert draft.status == PolicyVersion.Status.DRAFT
    assert not OutboxItem.objects.filter(topic=f"policy_version:{draft.pk}").exists()


def test_saving_a_draft_and_a_policy_in_the_admin_is_audited(admin_client, privacy):
    draft = privacy.versions.get(status=PolicyVersion.Status.DRAFT)
    response = admin_client.post(
        reverse("admin:policies_policyversion_change", args=[draft.pk]),
        {
            "policy": privacy.pk,
            "material": "on",
            "effective_date": str(draft.effective_date),
            "summary": "Changed summary.",
            "summary_pt": "",
            "body": draft.body,
            "body_pt": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    response = admin_client.post(
        reverse("admin:policies_policy_change", args=[privacy.pk]),
        {"title": "Privacy", "slug": "privacy", "order": 0},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert [r.action for r in audit_rows()] == [
        AuditAction.POLICY_DRAFT_SAVE,
        AuditAction.POLICY_SAVE,
    ]


def test_a_draft_edit_is_rolled_back_with_its_refused_row(staff, privacy, audit_refused):
    draft = privacy.versions.get(status=PolicyVersion.Status.DRAFT)
    draft.summary = "Changed summary."
    with pytest.raises(DatabaseError):
        policy_services.policy_version_draft_save(version=draft, acting_user=staff)
    draft.refresh_from_db()
    assert draft.summary != "Changed summary."


def _failed_notice(version) -> OutboxItem:
    return OutboxItem.objects.create(
        kind="policy_update",
        topic=f"policy_version:{version.pk}",
        recipient="someone@example.com",
        status=OutboxItem.Status.FAILED,
        attempts=5,
    )


def test_retrying_a_versions_notices_is_audited(admin_client, privacy):
    version = privacy.versions.get(number=1)
    failed = _failed_notice(version)
    response = admin_client.post(reverse("admin:policies_version_retry", args=[version.pk]))
    assert response.status_code == 302
    failed.refresh_from_db()
    assert failed.status == OutboxItem.Status.PENDING
    row = only_row(AuditAction.OUTBOX_RETRY)
    assert row.details["retried"] == 1


def test_a_retry_is_rolled_back_with_its_refused_row(staff, privacy, audit_refused):
    version = privacy.versions.get(number=1)
    failed = _failed_notice(version)
    with pytest.raises(DatabaseError):
        policy_services.notifications_retry_failed(version=version, acting_user=staff)
    failed.refresh_from_db()
    assert failed.status == OutboxItem.Status.FAILED


# The outbox and accounts ---------------------------------------------------------------


def test_the_outbox_retry_action_is_audited(admin_client):
    failed = OutboxItem.objects.create(kind=EMAIL, status=OutboxItem.Status.FAILED, attempts=5)
    sent = OutboxItem.objects.create(kind=EMAIL, status=OutboxItem.Status.SENT)
    response = admin_client.post(
        reverse("admin:portal_outboxitem_changelist"),
        {"action": "retry", "_selected_action": [failed.pk, sent.pk]},
    )
    assert response.status_code == 302
    failed.refresh_from_db()
    sent.refresh_from_db()
    assert (failed.status, failed.attempts, sent.status) == ("pending", 0, "sent")
    row = only_row(AuditAction.OUTBOX_RETRY)
    assert row.details == {"retried": 1, "rows": [str(failed.uuid)]}


def test_an_outbox_retry_is_rolled_back_with_its_refused_row(staff, audit_refused):
    failed = OutboxItem.objects.create(kind=EMAIL, status=OutboxItem.Status.FAILED, attempts=5)
    with pytest.raises(DatabaseError):
        portal_services.outbox_items_retry(items=OutboxItem.objects.all(), acting_user=staff)
    failed.refresh_from_db()
    assert failed.status == OutboxItem.Status.FAILED


def _user_form(user, **changes) -> dict:
    return {
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "language": user.language,
        "is_active": "on",
        "last_login_0": "",
        "date_joined_0": "",
        **changes,
    }


def test_an_account_change_in_the_admin_is_rolled_back_with_its_row(admin_client, customer):
    url = reverse("admin:portal_user_change", args=[customer.pk])
    admin_client.post(url, {"_audit_reason": "1", "reason": REASON})
    refuse_audit_rows(AuditAction.ACCOUNT_CHANGE)
    with pytest.raises(DatabaseError):
        admin_client.post(url, _user_form(customer, first_name="Ana"))
    customer.refresh_from_db()
    assert customer.first_name == ""


def test_changing_an_account_is_audited_with_why_and_the_fields(admin_client, customer):
    url = reverse("admin:portal_user_change", args=[customer.pk])
    admin_client.post(url, {"_audit_reason": "1", "reason": REASON})
    response = admin_client.post(url, _user_form(customer, first_name="Ana"))
    assert response.status_code == 302, response.content.decode()[:3000]
    customer.refresh_from_db()
    assert customer.first_name == "Ana"
    looked, changed = audit_rows()
    assert (looked.action, changed.action) == (AuditAction.VIEW_ACCOUNT, AuditAction.ACCOUNT_CHANGE)
    assert (changed.subject_id, changed.reason, changed.details) == (
        customer.subject_id,
        REASON,
        {"fields": ["first_name"]},
    )
    assert "Ana" not in str(changed.details)  # names of fields, never values


def test_an_account_change_is_rolled_back_with_its_refused_row(staff, customer, audit_refused):
    customer.first_name = "Changed"
    with pytest.raises(DatabaseError):
        portal_services.account_save(user=customer, acting_user=staff, changed=["first_name"])
    customer.refresh_from_db()
    assert customer.first_name == ""


def test_creating_an_account_in_the_admin_is_audited(admin_client):
    response = admin_client.post(
        reverse("admin:portal_user_add"),
        {
            "email": "new@example.com",
            "language": "en",
            "password1": "a-long-Test-passphrase-42",
            "password2": "a-long-Test-passphrase-42",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    created = get_user_model().objects.get(email="new@example.com")
    row = only_row(AuditAction.ACCOUNT_CREATE)
    assert row.subject_id == created.subject_id


def test_setting_a_password_is_audited_and_rolled_back_with_its_row(
    admin_client, customer, password
):
    ask(customer)
    url = reverse("admin:auth_user_password_change", args=[customer.pk])
    new = "another-long-Test-passphrase-7"
    response = admin_client.post(
        url, {"password1": new, "password2": new, "usable_password": "true"}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    customer.refresh_from_db()
    assert customer.check_password(new)
    assert [r.action for r in audit_rows()] == [
        AuditAction.VIEW_ACCOUNT,
        AuditAction.ACCOUNT_PASSWORD,
    ]


def test_a_password_is_not_set_without_its_row(admin_client, customer, password):
    url = reverse("admin:auth_user_password_change", args=[customer.pk])
    admin_client.post(url, {"_audit_reason": "1", "reason": REASON})
    refuse_audit_rows(AuditAction.ACCOUNT_PASSWORD)  # the look's row is written, not this one
    new = "another-long-Test-passphrase-7"
    with pytest.raises(DatabaseError):
        admin_client.post(url, {"password1": new, "password2": new, "usable_password": "true"})
    customer.refresh_from_db()
    assert customer.check_password(password)
