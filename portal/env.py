"""Reading settings from the environment.

Every helper names the variable in its error, so that a typo in a deployment
stops start-up with a message that says what to fix, instead of a traceback
from deep inside a database driver.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    return (os.environ if environ is None else environ).get(name)


def env_str(name: str, default: str = "", *, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value.strip()


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean: use one of 1, true, yes, on, 0, false, no, off."
    )


def env_int(
    name: str, default: int, *, minimum: int = 0, environ: Mapping[str, str] | None = None
) -> int:
    value = _raw(name, environ)
    if value is None or not value.strip():
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name}={value!r} must be at least {minimum}.")
    return number


def env_decimal(
    name: str,
    default: str,
    *,
    minimum: str,
    maximum: str,
    environ: Mapping[str, str] | None = None,
) -> Decimal:
    """A decimal number such as 0.5, within [minimum, maximum]."""
    value = _raw(name, environ)
    text = default if value is None or not value.strip() else value.strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number such as 0.5.") from None
    if not number.is_finite() or not Decimal(minimum) <= number <= Decimal(maximum):
        raise ImproperlyConfigured(f"{name}={value!r} must be between {minimum} and {maximum}.")
    return number


def secret_key(
    name: str, default: str, *, debug: bool, environ: Mapping[str, str] | None = None
) -> str:
    """The signing key. With DEBUG off, refuse the demo default and every key that
    `check --deploy` would flag (Django's security.W009): a warning nobody reads
    is no protection for sessions, password-reset links and signed receipts."""
    value = env_str(name, default, environ=environ)
    if debug:
        return value
    weak = (
        value == default
        or len(value) < SECRET_KEY_MIN_LENGTH
        or len(set(value)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
        or value.startswith(SECRET_KEY_INSECURE_PREFIX)
    )
    if weak:
        raise ImproperlyConfigured(
            f"{name} must be set to a random value of at least {SECRET_KEY_MIN_LENGTH} "
            f"characters, with at least {SECRET_KEY_MIN_UNIQUE_CHARACTERS} different ones and "
            f"not starting with {SECRET_KEY_INSECURE_PREFIX!r}, when DEBUG is off: "
            'python -c "import secrets; print(secrets.token_urlsafe(64))"'
        )
    return value


def env_conn_max_age(
    name: str, *, debug: bool, environ: Mapping[str, str] | None = None
) -> int | None:
    """Seconds a database connection is kept for the next request; "None" keeps
    it for ever. 0 while developing: runserver opens a thread per request, and
    every kept connection of a finished thread stays open until PostgreSQL
    refuses new ones (shared/NOTES.md). 60 in production, where a fixed pool of
    gunicorn workers reuses them."""
    value = _raw(name, environ)
    if value is not None and value.strip().lower() == "none":
        return None
    return env_int(name, 0 if debug else 60, minimum=0, environ=environ)


def env_list(
    name: str, default: list[str], *, environ: Mapping[str, str] | None = None
) -> list[str]:
    value = _raw(name, environ)
    if value is None:
        return default
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise ImproperlyConfigured(f"{name} is set but empty: give a comma-separated list.")
    return items


def env_url(
    name: str,
    default: str,
    *,
    schemes: tuple[str, ...] = ("http", "https"),
    environ: Mapping[str, str] | None = None,
) -> str:
    value = env_str(name, default, environ=environ)
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        wanted = " or ".join(f"{s}://" for s in schemes)
        raise ImproperlyConfigured(f"{name}={value!r} is not a URL starting with {wanted}.")
    return value.rstrip("/")


def database_from_url(
    name: str, default: str, base_dir: Path, *, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Parse DATABASE_URL: sqlite:///relative/path, sqlite:////absolute/path or
    postgres://user:password@host:port/dbname?sslmode=require."""
    value = env_str(name, default, environ=environ)
    parts = urlsplit(value)
    if parts.scheme == "sqlite":
        path = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
        if not path:
            raise ImproperlyConfigured(f"{name}={value!r} names no SQLite file.")
        file = Path(path) if Path(path).is_absolute() else base_dir / path
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(file),
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname:
            raise ImproperlyConfigured(f"{name}={value!r} names no database after the host.")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{name}={value!r} has an invalid port.") from None
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": dbname,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "OPTIONS": options,
        }
    raise ImproperlyConfigured(
        f"{name}={value!r} is not supported: use postgres://user@host:5432/dbname "
        "or sqlite:///file.sqlite3."
    )


def redis_url(name: str, *, environ: Mapping[str, str] | None = None) -> str:
    value = env_str(name, "", environ=environ)
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a Redis URL: use redis://host:6379/0 (or rediss:// for TLS)."
        )
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} has an invalid port.") from None
    return value


def cache_from_redis_url(url: str, *, prefix: str = "clareza") -> dict[str, Any]:
    """The default cache: on Redis when REDIS_URL is set, else this process's memory.
    Rate limits and TOTP replay protection live in the cache, so several
    processes must share it (shared/NOTES.md, allauth); portal/cache.py keeps
    logins working while Redis is away. `prefix` starts every key: two
    portals sharing one Redis database need two."""
    if not url:
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    return {
        "BACKEND": "portal.cache.FallbackRedisCache",
        "LOCATION": url,
        "KEY_PREFIX": prefix,
        # An unreachable Redis costs a request at most this long (seconds).
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }


def email_from_url(name: str, *, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse EMAIL_URL: console://, smtp://host:port, smtp+tls://user:pass@host:port
    (STARTTLS) or smtp+ssl://user:pass@host:port (implicit TLS)."""
    value = env_str(name, "console://", environ=environ)
    parts = urlsplit(value)
    if parts.scheme == "console":
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if parts.scheme in {"smtp", "smtp+tls", "smtp+ssl"}:
        if not parts.hostname:
            raise ImproperlyConfigured(f"{name}={value!r} names no SMTP host.")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{name}={value!r} has an invalid port.") from None
        default_port = {"smtp": 25, "smtp+tls": 587, "smtp+ssl": 465}[parts.scheme]
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": parts.hostname,
            "EMAIL_PORT": port or default_port,
            "EMAIL_HOST_USER": unquote(parts.username or ""),
            "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
            "EMAIL_USE_TLS": parts.scheme == "smtp+tls",
            "EMAIL_USE_SSL": parts.scheme == "smtp+ssl",
            "EMAIL_TIMEOUT": 20,
        }
    raise ImproperlyConfigured(
        f"{name}={value!r} is not supported: use console://, smtp://host:25, "
        "smtp+tls://user:password@host:587 or smtp+ssl://user:password@host:465."
    )
