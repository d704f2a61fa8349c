"""Who calls: the API key in `Authorization: Bearer <secret>`, checked before
any operation runs, with the scope the operation needs and the key's rate
limit (consents.ratelimit, the cache every other limit uses)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from ninja.security import HttpBearer

from consents import ratelimit
from integrations.api.compiled import Compiled
from integrations.api.problems import ApiProblem
from integrations.api.services import secret_hash
from integrations.models import ApiKey

# last_used_at is written at most this often per key, not on every call.
LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True)
class CallingKey:
    """What a call needs of its key (request.auth)."""

    pk: int
    scopes: list[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def __post_init__(self) -> None:
        if isinstance(self.scopes, str):  # a raw read of the JSON column
            object.__setattr__(self, "scopes", json.loads(self.scopes))


_keys = Compiled(
    lambda digest: ApiKey.objects.filter(secret_hash=digest).values_list(
        "pk", "scopes", "expires_at", "revoked_at", "last_used_at"
    ),
    "0" * 64,
)


@functools.cache
def _query_parameters() -> dict[str, frozenset[str]]:
    """The query parameters each operation's document allows, by operation id
    (which is also its URL name), read once per process."""
    from integrations.api.views import api

    allowed = {}
    for item in api.get_openapi_schema().get("paths", {}).values():
        for operation in item.values():
            names = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
            allowed[operation.get("operationId", "")] = frozenset(names)
    return allowed


def _known_query_only(request) -> None:
    """The document allows no other query parameter: a misspelt one (?limt=10)
    is refused, not silently ignored."""
    if not request.GET:
        return
    match = request.resolver_match
    allowed = _query_parameters().get(match.url_name if match else "")
    if allowed is None:
        return
    unknown = sorted(set(request.GET) - allowed)
    if unknown:
        raise ApiProblem(
            "validation",
            errors=[{"loc": ["query", name], "msg": "Unknown parameter"} for name in unknown],
        )


class KeyAuth(HttpBearer):
    """An API key holding `scope` (None: any valid key)."""

    openapi_scheme = "bearer"

    def __init__(self, scope: str | None = None) -> None:
        super().__init__()
        self.scope = scope

    def __call__(self, request) -> CallingKey | None:
        # ninja's own logs the whole header under DEBUG: a secret has no place in a log.
        scheme, _space, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.authenticate(request, token.strip())

    def authenticate(self, request, token: str) -> CallingKey:
        found = _keys.rows(secret_hash(token))
        if not found:
            raise ApiProblem("unauthenticated", headers={"WWW-Authenticate": "Bearer"})
        key = CallingKey(*found[0])
        # From here on the call is the key's, and the call log records it.
        request.api_key_id = key.pk
        now = timezone.now()
        if key.revoked_at is not None:
            raise ApiProblem("key-revoked", headers={"WWW-Authenticate": "Bearer"})
        if key.expires_at is not None and key.expires_at <= now:
            raise ApiProblem("key-expired", headers={"WWW-Authenticate": "Bearer"})
        if self.scope is not None and self.scope not in key.scopes:
            raise ApiProblem(
                "insufficient-scope",
                f"This operation needs the scope “{self.scope}”.",
                scope=self.scope,
            )
        wait = ratelimit.consume(
            request, action="api", rates=settings.API_RATE_LIMITS, key=str(key.pk)
        )
        if wait is not None:
            raise ApiProblem(
                "rate-limited",
                f"Retry in {wait} seconds.",
                headers={"Retry-After": str(wait)},
            )
        _known_query_only(request)
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_GRANULARITY:
            # Compare-and-set: concurrent calls write it once.
            ApiKey.objects.filter(pk=key.pk, last_used_at=key.last_used_at).update(last_used_at=now)
        return key
