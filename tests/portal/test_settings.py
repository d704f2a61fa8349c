from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal.env import (
    database_from_url,
    email_from_url,
    env_bool,
    env_conn_max_age,
    env_decimal,
    env_int,
    env_list,
    env_url,
    redis_url,
    secret_key,
)

ROOT = Path(__file__).resolve().parents[2]


def test_it_reads_a_postgres_url():
    db = database_from_url(
        "DATABASE_URL", "", ROOT, environ={"DATABASE_URL": "postgres://u:p%40ss@db.local:6543/shop"}
    )
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "shop",
        "u",
        "p@ss",
        "db.local",
        "6543",
    )


def test_it_reads_relative_and_absolute_sqlite_paths():
    relative = database_from_url("DATABASE_URL", "sqlite:///db.sqlite3", ROOT, environ={})
    absolute = database_from_url(
        "DATABASE_URL", "", ROOT, environ={"DATABASE_URL": "sqlite:////srv/clareza/x.sqlite3"}
    )
    assert relative["NAME"] == str(ROOT / "db.sqlite3")
    assert absolute["NAME"] == "/srv/clareza/x.sqlite3"


def _epsilon(environ):
    return env_decimal(
        "INSIGHT_DP_EPSILON_PER_MONTH", "4", minimum="0", maximum="100", environ=environ
    )


def test_a_decimal_setting_reads_its_default_and_a_value():
    assert str(_epsilon({})) == "4"
    assert str(_epsilon({"INSIGHT_DP_EPSILON_PER_MONTH": " 2.5 "})) == "2.5"


@pytest.mark.parametrize(
    ("name", "value", "parse"),
    [
        (
            "DATABASE_URL",
            "mysql://root@localhost/db",
            lambda e: database_from_url("DATABASE_URL", "", ROOT, environ=e),
        ),
        (
            "DATABASE_URL",
            "postgres://localhost",
            lambda e: database_from_url("DATABASE_URL", "", ROOT, environ=e),
        ),
        (
            "DATABASE_URL",
            "postgres://h:port/db",
            lambda e: database_from_url("DATABASE_URL", "", ROOT, environ=e),
        ),
        ("REDIS_URL", "localhost:6379", lambda e: redis_url("REDIS_URL", environ=e)),
        ("REDIS_URL", "redis://h:99999999/0", lambda e: redis_url("REDIS_URL", environ=e)),
        ("EMAIL_URL", "smtp://", lambda e: email_from_url("EMAIL_URL", environ=e)),
        ("EMAIL_URL", "sendmail://x", lambda e: email_from_url("EMAIL_URL", environ=e)),
        ("DEBUG", "maybe", lambda e: env_bool("DEBUG", False, environ=e)),
        ("ALLOWED_HOSTS", " , ", lambda e: env_list("ALLOWED_HOSTS", [], environ=e)),
        ("SITE_URL", "example.com", lambda e: env_url("SITE_URL", "", environ=e)),
        ("SECURE_HSTS_SECONDS", "a year", lambda e: env_int("SECURE_HSTS_SECONDS", 0, environ=e)),
        ("SECURE_HSTS_SECONDS", "-5", lambda e: env_int("SECURE_HSTS_SECONDS", 0, environ=e)),
        ("INSIGHT_DP_EPSILON_PER_MONTH", "lots", lambda e: _epsilon(e)),
        ("INSIGHT_DP_EPSILON_PER_MONTH", "-1", lambda e: _epsilon(e)),
        ("INSIGHT_DP_EPSILON_PER_MONTH", "NaN", lambda e: _epsilon(e)),
        (
            "DATABASE_CONN_MAX_AGE",
            "forever",
            lambda e: env_conn_max_age("DATABASE_CONN_MAX_AGE", debug=False, environ=e),
        ),
        (
            "DATABASE_CONN_MAX_AGE",
            "-1",
            lambda e: env_conn_max_age("DATABASE_CONN_MAX_AGE", debug=True, environ=e),
        ),
    ],
)
def test_a_malformed_value_names_its_variable(name, value, parse):
    with pytest.raises(ImproperlyConfigured, match=name):
        parse({name: value})


def test_it_reads_smtp_with_starttls_and_credentials():
    email = email_from_url(
        "EMAIL_URL", environ={"EMAIL_URL": "smtp+tls://mailer:s3cr%2Ft@smtp.example.com:2525"}
    )
    assert email["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (email["EMAIL_HOST"], email["EMAIL_PORT"]) == ("smtp.example.com", 2525)
    assert (email["EMAIL_HOST_USER"], email["EMAIL_HOST_PASSWORD"]) == ("mailer", "s3cr/t")
    assert email["EMAIL_USE_TLS"] is True
    assert email["EMAIL_USE_SSL"] is False


def test_email_defaults_to_the_console():
    assert email_from_url("EMAIL_URL", environ={})["EMAIL_BACKEND"].endswith("console.EmailBackend")


def _start(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_start_up_stops_on_a_malformed_variable():
    result = _start({"DATABASE_URL": "mysql://nope/db"}, "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured: DATABASE_URL='mysql://nope/db' is not supported" in result.stderr


def test_production_refuses_the_default_secret_key():
    result = _start({"DEBUG": "0"}, "check")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "x7Jq2-" + "k" * 30 + "-Vb9!pQ3zL0mN8rT5wY1uE4oI6aS2dF",
    "ALLOWED_HOSTS": "privacy.example.com",
    "SITE_URL": "https://privacy.example.com",
}


def test_check_deploy_is_clean_with_production_variables():
    result = _start(PRODUCTION, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


STRONG_KEY = PRODUCTION["SECRET_KEY"]


@pytest.mark.parametrize(
    "weak",
    [
        "a" * 60,  # long, but one character repeated
        "abcd" * 20,  # four different characters
        STRONG_KEY[:49],  # one character short
        "django-insecure-" + STRONG_KEY,  # what startproject writes for development
        "demo-default",  # the demo key itself
    ],
    ids=["repeated", "four-characters", "short", "django-insecure", "default"],
)
def test_production_refuses_a_secret_key_check_deploy_would_flag(weak):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY must be set"):
        secret_key("SECRET_KEY", "demo-default", debug=False, environ={"SECRET_KEY": weak})


def test_development_accepts_any_secret_key_and_production_a_strong_one():
    assert (
        secret_key("SECRET_KEY", "demo", debug=True, environ={"SECRET_KEY": "a" * 60}) == "a" * 60
    )
    assert secret_key("SECRET_KEY", "demo", debug=True, environ={}) == "demo"
    strong = secret_key("SECRET_KEY", "demo", debug=False, environ={"SECRET_KEY": STRONG_KEY})
    assert strong == STRONG_KEY


def test_production_does_not_start_with_a_repeated_character_key():
    result = _start({**PRODUCTION, "SECRET_KEY": "a" * 60}, "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set" in result.stderr


def test_connections_are_not_kept_while_developing_and_kept_a_minute_in_production():
    assert env_conn_max_age("DATABASE_CONN_MAX_AGE", debug=True, environ={}) == 0
    assert env_conn_max_age("DATABASE_CONN_MAX_AGE", debug=False, environ={}) == 60
    assert env_conn_max_age("X", debug=True, environ={"X": "300"}) == 300
    assert env_conn_max_age("X", debug=True, environ={"X": "None"}) is None


PRINT_CONNECTION = (
    "from django.conf import settings; d = settings.DATABASES['default']; "
    "print('CONN', d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS'])"
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DEBUG": "1", "DATABASE_URL": "postgres://u@db.local/shop"}, "CONN 0 True"),
        ({**PRODUCTION, "DATABASE_URL": "postgres://u@db.local/shop"}, "CONN 60 True"),
        ({**PRODUCTION, "DATABASE_CONN_MAX_AGE": "5"}, "CONN 5 True"),
    ],
    ids=["development", "production", "chosen"],
)
def test_the_database_connection_lifetime_follows_debug_unless_set(env, expected):
    result = _start(env, "shell", "-c", PRINT_CONNECTION)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout.splitlines()


PRINT_PREPARE = (
    "from django.conf import settings; "
    "print('PREPARE', settings.DATABASES['default']['OPTIONS'].get('prepare_threshold', '-'))"
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": "postgres://u@db.local/shop"}, "PREPARE 5"),
        (
            {"DATABASE_URL": "postgres://u@db.local/shop", "DATABASE_PREPARED_STATEMENTS": "0"},
            "PREPARE None",
        ),
        ({"DATABASE_URL": "sqlite:///var/x.sqlite3"}, "PREPARE -"),
    ],
    ids=["postgresql", "behind-a-pooler", "sqlite"],
)
def test_prepared_statements_are_allowed_on_postgresql_unless_switched_off(env, expected):
    result = _start({"DEBUG": "1", **env}, "shell", "-c", PRINT_PREPARE)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout.splitlines()
