"""Rate limits for forms that email an address someone typed (the newsletter).

Kept in the Django cache, like allauth's own limits (ACCOUNT_RATE_LIMITS), and
written in the same syntax: "20/h/ip,3/h/key" allows 20 requests an hour per
client and 3 per address. The client is the address allauth's adapter finds,
so ALLAUTH_TRUSTED_PROXY_COUNT applies here too; an address is kept only as a
hash. Each rate counts in a window that opens at its first request, so the
wait until it closes can be told to the person."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from dataclasses import dataclass

from allauth.account.adapter import get_adapter
from django.core.cache import cache
from django.utils.translation import ngettext

logger = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    amount: int
    seconds: int
    per: str  # "ip" or "key"

    def __str__(self) -> str:
        return f"{self.amount}/{self.seconds}s/{self.per}"


def parse_rates(rates: str) -> list[Rate]:
    """allauth's syntax: amount/duration/per, comma-separated; duration is a
    number (default 1) followed by s, m, h or d."""
    parsed = []
    for part in filter(None, (p.strip() for p in rates.split(","))):
        amount, duration, per = part.split("/")
        if per not in ("ip", "key"):
            raise ValueError(f"unknown rate limit scope {per!r} in {part!r}")
        count = float(duration[:-1]) if duration[:-1] else 1
        parsed.append(Rate(int(amount), int(count * _UNITS[duration[-1]]), per))
    return parsed


def client_address(request) -> str:
    """The client as allauth sees it; an IPv6 client is its /64, as allauth does."""
    address = get_adapter(request).get_client_ip(request)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


def _count(cache_key: str, seconds: int, now: float) -> tuple[int, float]:
    """One more request in the window at cache_key: (requests so far, window start)."""
    for _attempt in range(2):
        cache.add(f"{cache_key}:start", now, timeout=seconds)
        cache.add(cache_key, 0, timeout=seconds)
        try:
            count = cache.incr(cache_key)
        except ValueError:  # the window closed between add and incr: open a new one
            continue
        return count, cache.get(f"{cache_key}:start", now)
    return 1, now


def consume(request, *, action: str, rates: str, key: str) -> int | None:
    """Count this request against every rate. Returns the seconds to wait when
    one is exceeded (the caller then changes nothing), else None.

    With the cache down the request is allowed and the outage logged: the
    limits are a brake, and a form must not answer 500 because of them."""
    now = time.time()
    waits = []
    sources = {"key": hashlib.sha256(key.encode()).hexdigest()}
    parsed = parse_rates(rates)
    if any(rate.per == "ip" for rate in parsed):
        sources["ip"] = client_address(request)  # a proxy misconfiguration raises, as in allauth
    try:
        for rate in parsed:
            cache_key = f"rl:{action}:{rate}:{rate.per}:{sources[rate.per]}"
            count, started = _count(cache_key, rate.seconds, now)
            if count > rate.amount:
                waits.append(max(1, math.ceil(started + rate.seconds - now)))
    except Exception:
        logger.warning("rate limit %s not applied: cache unavailable", action, exc_info=True)
        return None
    return max(waits) if waits else None


def wait_text(seconds: int) -> str:
    """How long to wait, in words, rounded up to the minute (or the hour)."""
    minutes = math.ceil(seconds / 60)
    if minutes <= 90:
        return ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes}
    hours = math.ceil(minutes / 60)
    return ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours}
