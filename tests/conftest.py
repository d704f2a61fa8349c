from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.auth import get_user_model
from django.utils import translation

from portal.celery import app as celery_app

PASSWORD = "a-long-Test-passphrase-42"

# Argon2 spends about 100 ms of one core on each password by design; tests that
# make people and log them in spend it thousands of times. The portal's own
# setting (Argon2 first) is checked by tests/portal/test_passwords.py.
QUICK_HASHER = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def add_second_factor(user) -> str:
    """Give a person an authenticator app (TOTP) through allauth's own model
    helper; returns the secret, from which tests/portal/test_mfa.py computes codes."""
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def make_user(
    email: str,
    *,
    language: str = "en",
    staff: bool = False,
    verified: bool = True,
    second_factor: bool | None = None,
):
    """A person with a verified address. Staff get a second factor unless told
    otherwise: the admin opens only to staff who have one (STAFF_REQUIRE_MFA)."""
    User = get_user_model()
    user = User.objects.create_user(
        email=email, password=PASSWORD, language=language, is_staff=staff, is_superuser=staff
    )
    EmailAddress.objects.create(user=user, email=email, verified=verified, primary=True)
    if staff if second_factor is None else second_factor:
        add_second_factor(user)
    return user


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def customer(db):
    return make_user("customer@example.com")


@pytest.fixture
def other_customer(db):
    return make_user("other@example.com")


@pytest.fixture
def staff(db):
    return make_user("staff@example.com", staff=True)


@pytest.fixture(autouse=True)
def _quick_passwords(settings):
    settings.PASSWORD_HASHERS = QUICK_HASHER


@pytest.fixture(autouse=True)
def _default_language():
    """Each test starts and ends in the default language. A request by a
    Portuguese-speaking account activates pt-BR for the thread (as Django's
    LocaleMiddleware and ours do, request by request), and the test client's
    requests run in the test's thread: without this, a later test that reads a
    message outside any request would read it in Portuguese."""
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _eager_celery(request):
    """In-process tests run Celery tasks eagerly even when REDIS_URL points at a
    real broker; tests marked `worker` use a real worker process instead."""
    if request.node.get_closest_marker("worker"):
        yield
        return
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _own_checkpoint_export(settings, tmp_path_factory, monkeypatch):
    """Each test exports ledger checkpoints to a file of its own (and so does a
    worker it starts): the sealer refuses to sign a tree that a checkpoint
    exported earlier contradicts, and another test's or the demo's export would."""
    path = tmp_path_factory.mktemp("checkpoints") / "ledger-checkpoints.jsonl"
    settings.LEDGER_CHECKPOINT_FILE = path
    monkeypatch.setenv("LEDGER_CHECKPOINT_FILE", str(path))


@pytest.fixture(autouse=True)
def _own_export_root(settings, tmp_path_factory, monkeypatch):
    """Copies of people's data are written to a folder of each test's own (and of
    a worker it starts), never the demo's var/exports."""
    path = tmp_path_factory.mktemp("exports")
    settings.RIGHTS_EXPORT_ROOT = path
    monkeypatch.setenv("RIGHTS_EXPORT_ROOT", str(path))


@pytest.fixture(autouse=True)
def _process_caches_forgotten():
    """What a process keeps by primary key (notices: never changed, so never
    stale in production) goes stale in a test process when a flush resets the
    sequences and ids are given again: each test starts without it."""
    from consents import ledger
    from integrations.webhooks import delivery

    ledger._notices.clear()
    delivery.endpoints_changed()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate limits live in the cache: each test starts with none spent."""
    from django.conf import settings
    from django.core.cache import cache

    if settings.REDIS_URL:
        # Never flushdb: the Celery broker shares this Redis database.
        client = cache._cache.get_client(write=True)
        prefix = settings.CACHES["default"]["KEY_PREFIX"]
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
    else:
        cache.clear()
    yield


def switch_form(purpose_key: str, decision: str, **extra: str) -> dict[str, str]:
    """What the panel's switch for a purpose posts: the decision, and the hash of
    the purpose's current description (the text the person read)."""
    from consents.models import PurposeNotice

    notice = PurposeNotice.objects.filter(purpose__key=purpose_key).order_by("-version").first()
    return {"decision": decision, "notice": notice.content_hash if notice else "", **extra}


def flush_database() -> None:
    """Empty every table, as pytest-django does after a transactional test. On
    SQLite the append-only triggers (the ledger's, the frozen notices') would
    refuse that flush's DELETE (PostgreSQL flushes with TRUNCATE, which they
    leave alone), so on SQLite every trigger is lifted for the flush and put
    back as it was, in the same transaction."""
    from django.core.management import call_command
    from django.db import connection, transaction

    with transaction.atomic():
        triggers = []
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
                triggers = cursor.fetchall()
                for name, _sql in triggers:
                    cursor.execute(f'DROP TRIGGER "{name}"')
        call_command("flush", verbosity=0, interactive=False)
        with connection.cursor() as cursor:
            for _name, sql in triggers:
                cursor.execute(sql)


@pytest.fixture
def flushed_after(transactional_db):
    """A transactional test whose data the append-only triggers would stop
    pytest-django's own flush from removing on SQLite: flushed here first."""
    yield
    flush_database()
