"""schemathesis against the API's own OpenAPI document, in process (WSGI):
no server error, every answer matches the document (status, media type,
body), and authentication is enforced on every operation (its ignored_auth
check calls each one without the key)."""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from integrations.api.rights import EXAMPLE_TASK
from integrations.api.services import secret_hash
from integrations.api.views import EXAMPLE_PURPOSE, EXAMPLE_SUBJECT
from integrations.models import ApiKey, ApiScope, ConnectedSystem, SystemTask
from portal.wsgi import application
from rights import services as rights_services
from rights.models import Kind
from tests.integrations.conftest import grant, make_key


@pytest.fixture
def _wsgi_keeps_the_test_connection():
    """The test's transaction must survive each call, as Django's test client
    arranges: the WSGI handler would close the connection at each request."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def full_key(_wsgi_keeps_the_test_connection, staff, customer, purposes, settings):
    settings.API_RATE_LIMITS = "100000/m/key"
    # The person and purpose the document's examples name exist, so that the
    # examples reach real answers (200s), not only 404s.
    customer.subject_id = uuid.UUID(EXAMPLE_SUBJECT)
    customer.save(update_fields=["subject_id"])
    grant(customer, purposes[EXAMPLE_PURPOSE])
    secret = make_key(staff, list(ApiScope.values))
    # The key speaks for a system with a task of the id the document's examples
    # name, so that the rights operations reach real answers too.
    request = rights_services.request_create(user=customer, kind=Kind.ACCESS)
    system = ConnectedSystem.objects.create(
        name="Shop",
        key="shop",
        kinds=["copy"],
        api_key=ApiKey.objects.get(secret_hash=secret_hash(secret)),
    )
    SystemTask.objects.create(
        uuid=uuid.UUID(EXAMPLE_TASK), request=request, system=system, kind="copy"
    )
    return secret


# Loaded at collection, through the WSGI app: the document needs no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_keeps_to_its_document(case, full_key):
    # A case made to break the headers (the key left out or mangled) goes as it
    # was made: sending the key over it would turn it into a valid request that
    # the negative-data check then expects refused.
    broken_headers = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
    case.call_and_validate(
        headers={} if broken_headers else {"Authorization": f"Bearer {full_key}"},
        # Generated ids name nobody, so a 404 answers most valid requests; the
        # document lists it, and the other checks hold the answer to it.
        excluded_checks=[positive_data_acceptance],
    )
