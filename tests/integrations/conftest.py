from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from consents.demo import seed_inventory
from consents.models import Decision, Method
from consents.services import consent_record
from integrations.api import services
from integrations.models import ApiScope
from tests.integrations.webhook_receiver import Receiver

ALL_SCOPES = [ApiScope.CONSENTS_READ, ApiScope.DECISIONS_WRITE, ApiScope.AUDIENCE_READ]


@pytest.fixture
def receiver(settings):
    # pytest-django runs with DEBUG off: production's rules, loopback allowed by name.
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def purposes(db):
    return {p.key: p for p in seed_inventory()}


def make_key(staff, scopes=None, **extra) -> str:
    """A key made as staff make it; returns the secret."""
    return services.api_key_create(
        name="Shop checkout", scopes=list(scopes or ALL_SCOPES), acting_user=staff, **extra
    ).secret


@pytest.fixture
def secret(staff):
    return make_key(staff)


def bearer(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@pytest.fixture
def api(client, secret):
    """The test client with a valid key on every request."""

    class Api:
        def get(self, path, data=None, key=secret):
            return client.get(path, data, **bearer(key))

        def post(self, path, body, key=secret):
            return client.post(path, body, content_type="application/json", **bearer(key))

    return Api()


def grant(person, purpose, method=Method.PANEL):
    return consent_record(
        subject_id=person.subject_id, purpose=purpose, decision=Decision.GRANTED, method=method
    )


def withdraw(person, purpose):
    return consent_record(
        subject_id=person.subject_id,
        purpose=purpose,
        decision=Decision.WITHDRAWN,
        method=Method.PANEL,
    )


def later(**delta):
    return timezone.now() + timedelta(**delta)
