"""The cache on Redis, kept serving while Redis is away.

allauth keeps its rate limits and TOTP replay protection in the cache, and it
calls the cache on every login and password reset. Django's RedisCache raises
when Redis cannot be reached, so a Redis outage turned every login into a 500.
This backend answers from the process's own memory instead, logs a warning
once per outage, and tries Redis again every few seconds. While it is degraded
the limits still hold, per process rather than shared, so logins keep working
and are still rate-limited. /health/ reports the state (portal/views.py).
"""

from __future__ import annotations

import logging
import time

from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# How long after a failure the next operation tries Redis again. Until then
# every call is answered from memory without paying another connect timeout.
RETRY_SECONDS = 5.0
UNREACHABLE = (RedisConnectionError, RedisTimeoutError)

# Per Redis location, the monotonic time of the last failure. Module-level
# because Django gives each thread its own cache object: an outage seen by one
# request thread spares the others the connect timeout.
_failed_at: dict[str, float] = {}


class FallbackRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._location = server if isinstance(server, str) else ",".join(server)
        # LocMemCache objects of the same name share their storage, so every
        # thread of the process falls back to the same memory.
        self._fallback = LocMemCache(
            f"clareza-fallback:{self._location}",
            {
                "TIMEOUT": params.get("TIMEOUT", 300),
                "KEY_PREFIX": params.get("KEY_PREFIX", ""),
                "VERSION": params.get("VERSION", 1),
                "OPTIONS": {"MAX_ENTRIES": 10_000},
            },
        )

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and the cache answers from memory."""
        return self._location in _failed_at

    def _call(self, method: str, *args, **kwargs):
        failed_at = _failed_at.get(self._location)
        if failed_at is None or time.monotonic() - failed_at >= RETRY_SECONDS:
            try:
                result = getattr(super(), method)(*args, **kwargs)
            except UNREACHABLE as exc:
                if failed_at is None:
                    logger.warning(
                        "The Redis cache is unreachable (%s: %s): rate limits and TOTP "
                        "replay checks fall back to this process's memory until it answers.",
                        type(exc).__name__,
                        exc,
                    )
                _failed_at[self._location] = time.monotonic()
            else:
                if failed_at is not None and _failed_at.pop(self._location, None) is not None:
                    logger.warning("The Redis cache answers again.")
                return result
        return getattr(self._fallback, method)(*args, **kwargs)

    def add(self, *args, **kwargs):
        return self._call("add", *args, **kwargs)

    def get(self, *args, **kwargs):
        return self._call("get", *args, **kwargs)

    def set(self, *args, **kwargs):
        return self._call("set", *args, **kwargs)

    def touch(self, *args, **kwargs):
        return self._call("touch", *args, **kwargs)

    def delete(self, *args, **kwargs):
        return self._call("delete", *args, **kwargs)

    def get_many(self, *args, **kwargs):
        return self._call("get_many", *args, **kwargs)

    def has_key(self, *args, **kwargs):
        return self._call("has_key", *args, **kwargs)

    def incr(self, *args, **kwargs):
        return self._call("incr", *args, **kwargs)

    def set_many(self, *args, **kwargs):
        return self._call("set_many", *args, **kwargs)

    def delete_many(self, *args, **kwargs):
        return self._call("delete_many", *args, **kwargs)

    def clear(self):
        return self._call("clear")
