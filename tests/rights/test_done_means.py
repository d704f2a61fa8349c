"""The rights issue's three stories, across its parts (requests, the copy,
erasure, the audit trail), as people meet them: Ana's copy holds what the
portal keeps about her, including who at the company looked; João's erasure
takes his copy with it and leaves the ledger intact; a request entered by
phone is answered before its deadline, and the trail shows each look."""

from __future__ import annotations

import io
import json
import zipfile

from django.urls import reverse
from django.utils import timezone

from consents import ledger
from consents.personal_data import personal_data_update
from portal.models import User
from rights import exports, services
from rights.models import AuditAction, AuditEntry, DataExport, RightsRequest, Status
from tests.conftest import PASSWORD
from tests.rights.conftest import enter, grant

REASON = "Delivery complaint received by phone"


def reauthenticate(client) -> None:
    response = client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    assert response.status_code == 302


def copy_of(client, person) -> dict:
    """Ask for a copy from the panel, let a worker build it, download it as
    its owner after reauthenticating, and read its data.json."""
    assert client.post(reverse("me_export_create")).status_code == 302
    from portal import outbox

    assert outbox.outbox_send(kind=exports.EXPORT_KIND) == 1
    export = DataExport.objects.get(subject_id=person.subject_id, status="ready")
    url = reverse("me_export_download", args=[export.uuid, exports.export_download_token(export)])
    reauthenticate(client)
    response = client.get(url)
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    return json.loads(zipfile.ZipFile(io.BytesIO(body)).read("data.json"))


def test_ana_finds_in_her_copy_what_the_portal_holds_and_who_looked(
    client, customer, staff, purposes
):
    ana = customer
    grant(ana, purposes["tailored-offers"])
    personal_data_update(user=ana, field_key="postal_address", value="Rua Ana Néri, 7")
    # A staff member opens her account, stating why.
    client.force_login(staff)
    page = reverse("admin:portal_user_change", args=[ana.pk])
    client.post(page, {"_audit_reason": "1", "reason": REASON})
    assert client.get(page).status_code == 200
    client.logout()

    client.force_login(ana)
    data = copy_of(client, ana)
    sections = data["sections"]
    assert data["subjectId"] == str(ana.subject_id)
    assert "Rua Ana Néri, 7" in [row["value"] for row in sections["personal_data"]]
    assert [row["decision"] for row in sections["consent_history"]] == ["granted"]
    looked = [row for row in sections["staff_access"] if row["looked"]]
    assert [(row["staff_email"], row["reason"]) for row in looked] == [(staff.email, REASON)]
    assert [row["kind"] for row in sections["rights_requests"]] == ["access"]


def test_joao_erased_after_the_grace_period_takes_his_copy_and_leaves_the_ledger_intact(
    client, customer, purposes, django_capture_on_commit_callbacks
):
    joao = customer
    grant(joao, purposes["tailored-offers"])
    client.force_login(joao)
    copy_of(client, joao)
    copy = DataExport.objects.get(subject_id=joao.subject_id)
    path = exports.export_path(copy)
    assert path.exists()

    closure = services.account_close(user=joao)
    services.erasure_cancel(request=closure, user=joao)
    again = services.account_close(user=User.objects.get(pk=joao.pk))
    assert services.erasures_due(now=again.erase_after - timezone.timedelta(minutes=1)) == 0
    with django_capture_on_commit_callbacks(execute=True):  # files go once it commits
        assert services.erasures_due(now=again.erase_after) == 1

    assert not User.objects.filter(pk=joao.pk).exists()
    assert not DataExport.objects.filter(subject_id=joao.subject_id).exists()
    assert not path.exists()
    proof = RightsRequest.objects.get(pk=again.pk)
    assert proof.status == Status.DONE and proof.email == "" and proof.user_id is None
    ledger.seal()
    verdict = ledger.verify()
    assert verdict.intact, verdict.problem


def test_a_request_entered_by_phone_is_answered_in_time_and_each_look_is_in_the_trail(
    client, staff, customer
):
    request = enter(staff, customer.email, details="Asked by phone for a copy")
    client.force_login(staff)
    screen = reverse("admin:rights_rightsrequest_change", args=[request.pk])
    assert client.get(screen).status_code == 200
    # Its account page is opened for that request: no reason asked.
    assert (
        customer.email
        in client.get(reverse("admin:portal_user_change", args=[customer.pk])).content.decode()
    )
    services.request_start(request=request, acting_user=staff)
    done = services.request_complete(request=request, acting_user=staff, answer="Sent by post")
    assert done.status == Status.DONE and done.closed_at < done.due_at

    trail = AuditEntry.objects.filter(subject_id=customer.subject_id).order_by("pk")
    assert [(row.action, row.actor_email, row.request_uuid) for row in trail] == [
        (AuditAction.REQUEST_ENTER, staff.email, request.uuid),
        (AuditAction.VIEW_REQUEST, staff.email, request.uuid),
        (AuditAction.VIEW_ACCOUNT, staff.email, request.uuid),
        (AuditAction.REQUEST_START, staff.email, request.uuid),
        (AuditAction.REQUEST_COMPLETE, staff.email, request.uuid),
    ]
