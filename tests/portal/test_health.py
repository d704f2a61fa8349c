from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import override_settings

from tests.portal.test_settings import _start

# A Django test client inside a separate process: the unreachable database has
# to be the one the settings were built with, so it cannot be faked in-process.
HEALTH_IN_A_SUBPROCESS = """
import json
from django.test import Client
response = Client().get("/health/")
print("HEALTH " + json.dumps({"status": response.status_code, "body": response.json()}))
"""


@pytest.mark.django_db
def test_health_is_ok_when_the_database_and_redis_answer(client):
    response = client.get("/health/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    expected_checks = {"database": "ok", "cache": "ok", "ledger": "ok"}
    if settings.REDIS_URL:
        expected_checks["redis"] = "ok"
    assert response.json() == {"status": "ok", "checks": expected_checks}


@pytest.mark.django_db
@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_health_is_degraded_and_names_redis_when_the_broker_is_unreachable(client):
    response = client.get("/health/")

    # The outbox keeps email until the broker is back: the portal still serves.
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "error: ConnectionError"


def test_health_is_503_and_names_the_database_when_it_is_unreachable():
    result = _start(
        {"DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere", "REDIS_URL": ""},
        "shell",
        "-c",
        HEALTH_IN_A_SUBPROCESS,
    )

    assert result.returncode == 0, result.stderr + result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("HEALTH ")]
    assert len(lines) == 1, result.stdout
    outcome = json.loads(lines[0].removeprefix("HEALTH "))
    assert outcome["status"] == 503
    assert outcome["body"] == {
        "status": "error",
        "checks": {"database": "error: OperationalError", "cache": "ok"},
    }


@pytest.mark.django_db
def test_health_refuses_post(client):
    response = client.post("/health/")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
