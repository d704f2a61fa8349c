"""With the Redis cache down, logins and password resets keep working (rate
limits fall back to the process's memory), a warning is logged, and /health/
says the cache is degraded. Never a 500."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import SESSION_KEY
from django.core import mail
from django.test import override_settings

from portal.env import cache_from_redis_url


def redis_cache_down(database: int):
    """The portal's cache setting pointed at a port where nothing listens, so every
    connection is refused at once. The outage state and the fallback memory are
    per Redis location: a database number of its own gives each test fresh ones."""
    url = f"redis://127.0.0.1:1/{database}"
    return override_settings(CACHES={"default": cache_from_redis_url(url)})


@pytest.mark.django_db
@redis_cache_down(1)
def test_login_and_password_reset_answer_normally_with_the_redis_cache_down(
    client, customer, password, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.WARNING, logger="portal.cache")

    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'name="password"' in page.content

    wrong = client.post("/accounts/login/", {"login": customer.email, "password": "wrong"})
    assert wrong.status_code == 200  # the form again, with its error
    assert SESSION_KEY not in client.session

    logged_in = client.post("/accounts/login/", {"login": customer.email, "password": password})
    assert logged_in.status_code == 302
    assert logged_in["Location"] == "/"
    assert SESSION_KEY in client.session

    client.logout()
    with django_capture_on_commit_callbacks(execute=True):
        reset = client.post("/accounts/password/reset/", {"email": customer.email})
    assert reset.status_code == 302
    assert reset["Location"] == "/accounts/password/reset/done/"
    assert [m.to for m in mail.outbox] == [[customer.email]]
    assert "/accounts/password/reset/key/" in mail.outbox[0].body

    warnings = [r for r in caplog.records if r.name == "portal.cache"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # once per outage
    assert "unreachable" in warnings[0].getMessage()


@pytest.mark.django_db
@redis_cache_down(2)
def test_rate_limits_still_hold_per_process_with_the_redis_cache_down(client, customer, password):
    # "login": 30 posts a minute from one address (settings.ACCOUNT_RATE_LIMITS).
    for _ in range(30):
        wrong = {"login": "nobody@example.com", "password": "not-the-password"}
        assert client.post("/accounts/login/", wrong).status_code == 200

    response = client.post("/accounts/login/", {"login": customer.email, "password": password})

    assert response.status_code == 429
    assert SESSION_KEY not in client.session


@pytest.mark.django_db
@redis_cache_down(3)
def test_health_reports_the_cache_degraded_and_stays_200(client):
    response = client.get("/health/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"].startswith("degraded")
