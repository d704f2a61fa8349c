"""The API's call log has a stated period, enforced by the retention task (the
only DELETE its triggers let through), and the calls about a person are in
their copy of their data."""

from __future__ import annotations

import json
import zipfile
from datetime import timedelta

import jsonschema
import pytest
from django.db import DatabaseError, transaction
from django.urls import reverse
from django.utils import timezone, translation

from integrations.api import services as api_services
from integrations.models import ApiCall, ApiCallPurge, ApiKey
from portal import outbox
from rights import exports, retention
from tests.conftest import make_user
from tests.integrations.conftest import grant, make_key


def _call(key: ApiKey, *, age: timedelta = timedelta(0), **extra) -> ApiCall:
    # Only a test backdates a call: INSERT is the one thing the table allows.
    return ApiCall.objects.create(
        at=timezone.now() - age,
        key=key,
        operation=extra.pop("operation", "consents_by_subject"),
        method="GET",
        status=200,
        **extra,
    )


@pytest.fixture
def key(staff):
    make_key(staff)
    return ApiKey.objects.get()


def test_a_fresh_call_cannot_be_deleted_even_with_a_cutoff_stated(key):
    call = _call(key)
    with pytest.raises(DatabaseError), transaction.atomic():
        ApiCall.objects.filter(pk=call.pk).delete()
    with pytest.raises(DatabaseError), transaction.atomic():
        # A cutoff of "now" (a bug, or someone imitating the task): the
        # trigger's own floor keeps every call younger than 30 days.
        ApiCallPurge.objects.create(cutoff=timezone.now() + timedelta(days=1))
        ApiCall.objects.filter(pk=call.pk).delete()
    with pytest.raises(DatabaseError), transaction.atomic():
        ApiCall.objects.filter(pk=call.pk).update(status=500)
    assert ApiCall.objects.get(pk=call.pk).status == 200


def test_an_old_call_goes_only_with_the_tasks_cutoff(key):
    old = _call(key, age=timedelta(days=400))
    with pytest.raises(DatabaseError), transaction.atomic():
        ApiCall.objects.filter(pk=old.pk).delete()  # no cutoff stated
    with transaction.atomic():
        purged = api_services.calls_purge(ApiCall.objects.filter(pk=old.pk), timezone.now())
    assert purged == 1 and not ApiCall.objects.exists() and not ApiCallPurge.objects.exists()


def test_retention_deletes_calls_past_the_kept_period_only(key, settings):
    settings.API_CALLS_KEPT_DAYS = 365
    past = _call(key, age=timedelta(days=366))
    within = _call(key, age=timedelta(days=364))
    fresh = _call(key)
    assert retention.retention_enforce(dry_run=True).counts["api-calls"] == 1
    assert ApiCall.objects.filter(pk=past.pk).exists()
    assert retention.retention_enforce().counts["api-calls"] == 1
    assert set(ApiCall.objects.values_list("pk", flat=True)) == {within.pk, fresh.pk}
    assert retention.retention_enforce().counts["api-calls"] == 0
    # A shorter period is enforced down to the database's floor, never below it.
    settings.API_CALLS_KEPT_DAYS = 30
    assert (
        retention.retention_enforce(now=timezone.now() + timedelta(days=900)).counts["api-calls"]
        == 1
    )
    assert list(ApiCall.objects.values_list("pk", flat=True)) == [fresh.pk]


def test_the_period_is_stated_on_the_privacy_page_and_the_record_of_processing(
    client, settings, staff
):
    settings.API_CALLS_KEPT_DAYS = 400
    with translation.override("en"):
        assert any(
            "through our API" in line and "kept 400 days" in line
            for line in retention.stated_periods()
        )
    html = client.get("/privacy/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "through our API" in html and "kept 400 days" in html
    html = client.get("/privacy/", HTTP_ACCEPT_LANGUAGE="pt-BR").content.decode()
    assert "pela nossa API" in html and "guardados por 400 dias" in html
    client.force_login(staff)
    csv = client.get(reverse("admin:consents_purpose_ropa")).content.decode()
    assert "record:api-calls" in csv and ",400," in csv


def test_the_persons_copy_lists_the_calls_about_them(api, customer, purposes, settings):
    other = make_user("other-person@example.com")
    grant(customer, purposes["newsletter"])
    assert api.get(f"/api/v1/subjects/{customer.subject_id}/consents").status_code == 200
    assert api.post("/api/v1/consents/lookup", {"email": customer.email}).status_code == 200
    assert api.get(f"/api/v1/subjects/{other.subject_id}/consents").status_code == 200
    assert api.get("/api/v1/purposes/newsletter/audience").status_code == 200  # about no one

    export = exports.export_request(user=customer)
    assert outbox.outbox_send(kind=exports.EXPORT_KIND) == 1
    export.refresh_from_db()
    archive = zipfile.ZipFile(exports.export_path(export))
    data = json.loads(archive.read("data.json"))
    calls = data["sections"]["api_calls"]
    assert [(c["operation"], c["status"], c["system"]) for c in calls] == [
        ("consents_by_subject", 200, "Shop checkout"),
        ("consents_by_email", 200, "Shop checkout"),
    ]
    assert calls[1]["operation_label"].startswith("Looked you up by your email address")
    assert customer.email not in json.dumps(calls)  # the other person's call is not here
    jsonschema.validate(data, json.loads(archive.read("schema.json")))
    keys = list(data["sections"])
    assert keys[keys.index("staff_access") + 1] == "api_calls"
    assert "consents_by_email" in archive.read("csv/api_calls.csv").decode()
    assert "Shop checkout" in archive.read("summary.html").decode()
