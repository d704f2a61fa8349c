from __future__ import annotations

import secrets

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe
from django.views.i18n import set_language as django_set_language

from portal.services import user_language_set


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    context = {}
    if request.user.is_authenticated:
        from consents.value_exchange import benefits_for

        context["benefits"] = benefits_for(subject_id=request.user.subject_id)
    return render(request, "home.html", context)


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Django's set_language, which also stores the choice on the account so that
    emails reach the customer in the same language."""
    response = django_set_language(request)
    if request.user.is_authenticated:
        user_language_set(user=request.user, language=request.POST.get("language", ""))
    return response


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def _check_ledger() -> str:
    """The sealer refuses to extend a ledger whose last seal does not verify,
    and decisions must not wait longer than LEDGER_SEAL_MAX_DELAY to be sealed."""
    from consents.ledger import seal_problem

    try:
        problem = seal_problem()
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return f"error: {problem}" if problem else "ok"


def _check_redis() -> str:
    try:
        from redis import Redis

        with Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        ) as client:
            client.ping()
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


@never_cache
@require_safe
def live(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. No database, no cache: a load balancer may
    call it every second, and benchmarks use it as the bare-view baseline."""
    return HttpResponse("ok", content_type="text/plain")


def _check_cache() -> str:
    """A write and a read through the cache the portal uses. "degraded" when the
    Redis cache is away and the process answers from its own memory
    (portal/cache.py): logins work, rate limits hold per process only."""
    probe = secrets.token_hex(8)
    key = f"health-check:{probe}"  # its own key: probes of other processes run at once
    try:
        cache.set(key, probe, timeout=10)
        answered = cache.get(key) == probe
        cache.delete(key)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    if getattr(cache, "degraded", False):
        return "degraded: Redis unreachable, rate limits per process"
    return "ok" if answered else "error: value not kept"


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """503 only when the portal cannot serve (the database is down), so that a
    load balancer takes this server out. Redis down is "degraded" with 200: the
    cache falls back to process memory (portal/cache.py) and the outbox keeps
    email until the broker is back, so the portal still serves everyone, and
    taking every server out for a Redis outage would serve no one. Monitoring
    alerts on "status", not only on the HTTP code."""
    checks = {"database": _check_database(), "cache": _check_cache()}
    if checks["database"] == "ok":
        # A seal that does not verify stops the sealer; decisions waiting too
        # long to be sealed mean the beat is not running: say so loudly.
        checks["ledger"] = _check_ledger()
    if settings.REDIS_URL:
        checks["redis"] = _check_redis()
    if checks["database"] != "ok":
        status = "error"
    elif any(value != "ok" for value in checks.values()):
        status = "degraded"
    else:
        status = "ok"
    return JsonResponse(
        {"status": status, "checks": checks}, status=503 if status == "error" else 200
    )
