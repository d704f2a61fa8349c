"""Every operation refuses a missing, wrong, revoked or expired key and a key
without its scope, with a problem document; keys are limited per key."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.api import services
from integrations.api.views import api as ninja_api
from integrations.models import ApiCall, ApiKey, ApiScope
from tests.integrations.conftest import bearer, make_key

UNKNOWN_SUBJECT = uuid.UUID("5fd60c4e-9122-4a8e-92cf-2c5bbb3c0f02")


def operations():
    """(method, path with example values, scope) of every operation in the document."""
    document = ninja_api.get_openapi_schema(path_prefix="/api/")
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            # A fixed id: test ids must be the same in every pytest-xdist worker.
            concrete = (
                path.replace("{subject_id}", str(UNKNOWN_SUBJECT))
                .replace("{key}", "newsletter")
                .replace("{task}", str(UNKNOWN_SUBJECT))
            )
            found.append((method.upper(), concrete, operation.get("x-scope")))
    return found


OPERATIONS = operations()


def test_the_document_lists_every_operation_with_security():
    document = ninja_api.get_openapi_schema(path_prefix="/api/")
    assert document["openapi"].startswith("3.1")
    assert len(OPERATIONS) == 11  # 6 for consents, 5 for rights tasks
    for item in document["paths"].values():
        for operation in item.values():
            assert operation["security"] == [{"KeyAuth": []}]


def call(client, method, path, headers):
    if method == "GET":
        return client.get(path, **headers)
    return client.post(path, "{}", content_type="application/json", **headers)


def refused(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == status
    return response.json()


@pytest.mark.parametrize(("method", "path", "scope"), OPERATIONS)
def test_every_operation_refuses_bad_keys(client, staff, purposes, method, path, scope):
    refused(call(client, method, path, {}), 401)
    refused(call(client, method, path, {"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"}), 401)
    refused(call(client, method, path, bearer("clz_00000000_wrong")), 401)
    revoked = services.api_key_create(name="Old", scopes=list(ApiScope.values), acting_user=staff)
    services.api_key_revoke(key=revoked.key, acting_user=staff)
    assert refused(call(client, method, path, bearer(revoked.secret)), 401)["type"].endswith(
        "key-revoked"
    )
    expired = make_key(staff, list(ApiScope.values))
    ApiKey.objects.filter(secret_hash=services.secret_hash(expired)).update(
        expires_at=timezone.now()
    )
    assert refused(call(client, method, path, bearer(expired)), 401)["type"].endswith("key-expired")
    if scope:
        others = [s for s in ApiScope.values if s != scope]
        body = refused(call(client, method, path, bearer(make_key(staff, others))), 403)
        assert body["scope"] == scope
    # Refusals of known keys are in the call log; unknown secrets leave no row.
    assert ApiCall.objects.count() == (3 if scope else 2)


def test_a_key_is_limited_per_key(client, staff, purposes, settings):
    settings.API_RATE_LIMITS = "2/m/key"
    first, second = make_key(staff), make_key(staff)
    for _ in range(2):
        assert client.get("/api/v1/inventory", **bearer(first)).status_code == 200
    response = client.get("/api/v1/inventory", **bearer(first))
    body = refused(response, 429)
    assert body["type"].endswith("rate-limited")
    assert 0 < int(response["Retry-After"]) <= 60
    # Another key has its own allowance.
    assert client.get("/api/v1/inventory", **bearer(second)).status_code == 200


def test_last_use_is_written_at_most_once_a_minute(client, staff, purposes):
    secret = make_key(staff)
    key = ApiKey.objects.get()
    assert key.last_used_at is None
    client.get("/api/v1/inventory", **bearer(secret))
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None
    client.get("/api/v1/inventory", **bearer(secret))
    key.refresh_from_db()
    assert key.last_used_at == first


def test_only_a_hash_of_the_secret_is_stored(staff, db):
    new = services.api_key_create(name="Store", scopes=["consents:read"], acting_user=staff)
    row = ApiKey.objects.values().get()
    assert new.secret.startswith(row["prefix"] + "_")
    assert len(new.secret) > 40
    assert new.secret not in str(row)
    assert row["secret_hash"] == services.secret_hash(new.secret)


@pytest.mark.parametrize(
    ("scopes", "expires_in"),
    [([], None), (["everything"], None), (["consents:read"], -1)],
)
def test_bad_keys_are_not_made(staff, db, scopes, expires_in):
    expires_at = timezone.now() + timedelta(days=expires_in) if expires_in else None
    with pytest.raises(services.ApiKeyError):
        services.api_key_create(name="X", scopes=scopes, expires_at=expires_at, acting_user=staff)
    assert not ApiKey.objects.exists()


def test_only_staff_make_keys(customer, db):
    from rights.audit import AuditError

    with pytest.raises(AuditError):
        services.api_key_create(name="X", scopes=["consents:read"], acting_user=customer)
    assert not ApiKey.objects.exists()


def test_start_up_stops_on_a_malformed_api_rate_limit():
    import os
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "API_RATE_LIMITS": "lots"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "API_RATE_LIMITS='lots'" in result.stderr
