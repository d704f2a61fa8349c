"""Clareza's settings: one file, read from the environment.

With nothing set, it runs the local demo: SQLite, Celery tasks run eagerly and
email printed to the console; `make run` adds TASK_BROKER=filesystem, so that a
real worker sends the demo's email. DATABASE_URL, REDIS_URL and EMAIL_URL move it
to PostgreSQL, a Redis broker with real workers, and SMTP. README.md lists every
variable.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from portal.env import (
    cache_from_redis_url,
    database_from_url,
    email_from_url,
    env_bool,
    env_conn_max_age,
    env_decimal,
    env_int,
    env_list,
    env_str,
    env_url,
    redis_url,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# What the portal keeps on disk beside the database: the signing keys, and for
# the demo its broker messages, cache and beat schedule.
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEMO_SECRET_KEY = "clareza-local-demo-secret-key-do-not-use-in-production"  # noqa: S105

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = secret_key("SECRET_KEY", DEMO_SECRET_KEY, debug=DEBUG)

SITE_URL = env_url("SITE_URL", "http://127.0.0.1:8000")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = [SITE_URL]

# Who answers for the data (GDPR Art. 13(1)(a-b), LGPD Art. 9 and 41).
CONTROLLER_NAME = env_str("CONTROLLER_NAME", "Loja Clareza Demo Ltda.")
CONTROLLER_EMAIL = env_str("CONTROLLER_EMAIL", "privacy@example.com")
CONTROLLER_ADDRESS = env_str("CONTROLLER_ADDRESS", "Rua Exemplo 100, São Paulo - SP, Brasil")
CONTROLLER_PHONE = env_str("CONTROLLER_PHONE", "+55 11 4000-0000")
DPO_NAME = env_str("DPO_NAME", "Encarregada: Maria Souza")
DPO_EMAIL = env_str("DPO_EMAIL", "dpo@example.com")
for _name, _value in (("CONTROLLER_EMAIL", CONTROLLER_EMAIL), ("DPO_EMAIL", DPO_EMAIL)):
    if "@" not in _value:
        raise ImproperlyConfigured(f"{_name}={_value!r} is not an email address.")

# Receipts and the ledger's chain head are signed with EC P-256 keys of their
# own, kept as PEM files in SIGNING_KEY_DIR (made on first use, rotated with
# `manage.py rotate_signing_key`); every one is published at
# /.well-known/jwks.json. RECEIPT_SIGNING_KEY (a PEM), when set, is the one
# that signs, the files' keys being earlier ones.
SIGNING_KEY_DIR = Path(env_str("SIGNING_KEY_DIR", str(VAR_DIR / "signing-keys")))
# Signed checkpoints of the ledger: appended here (JSON lines) and emailed to the DPO.
LEDGER_CHECKPOINT_FILE = Path(
    env_str("LEDGER_CHECKPOINT_FILE", str(VAR_DIR / "ledger-checkpoints.jsonl"))
)
LEDGER_CHECKPOINT_MINUTES = env_int("LEDGER_CHECKPOINT_MINUTES", 60, minimum=1)
# Decisions are sealed into the ledger's Merkle tree by a beat task this many
# seconds apart; /health/ reports an error when one waits longer than the delay.
LEDGER_SEAL_SECONDS = env_int("LEDGER_SEAL_SECONDS", 5, minimum=1)
LEDGER_SEAL_MAX_DELAY = timedelta(
    seconds=env_int("LEDGER_SEAL_MAX_DELAY_SECONDS", 60, minimum=LEDGER_SEAL_SECONDS)
)
RECEIPT_SIGNING_KEY = env_str("RECEIPT_SIGNING_KEY", "").replace("\\n", "\n")
# The date /.well-known/gpc.json states the GPC support was last reviewed.
GPC_LAST_UPDATE = env_str("GPC_LAST_UPDATE", "2026-11-29")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "django_htmx",
    "csp",
    "template_partials.apps.SimpleAppConfig",
    "portal",
    "consents",
    "policies",
    "rights",
    "insight",
    "integrations",
    # The demo shop: what a company plugs in, reading consent through the API's services.
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "portal.middleware.SecurityHeadersMiddleware",
    # One row per API call, after the answer is final (integrations.api).
    "integrations.api.middleware.ApiCallLogMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.middleware.UserLanguageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "portal.middleware.StaffSecondFactorMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "consents.middleware.GlobalPrivacyControlMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

_TEMPLATE_LOADERS = [
    "django.template.loaders.filesystem.Loader",
    "django.template.loaders.app_directories.Loader",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            # "page.html#partial" names a {% partialdef %} (django-template-partials);
            # templates are cached except while developing.
            "loaders": [
                (
                    "template_partials.loader.Loader",
                    _TEMPLATE_LOADERS
                    if DEBUG
                    else [("django.template.loaders.cached.Loader", _TEMPLATE_LOADERS)],
                )
            ],
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
                "portal.context_processors.portal",
                "policies.views.pending_for",
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    }
]

DATABASES = {
    "default": {
        **database_from_url("DATABASE_URL", "sqlite:///db.sqlite3", BASE_DIR),
        # 0 while developing, 60 with DEBUG off (portal/env.py says why); a
        # kept connection is checked before reuse, so a restarted server costs
        # no request an error.
        "CONN_MAX_AGE": env_conn_max_age("DATABASE_CONN_MAX_AGE", debug=DEBUG),
        "CONN_HEALTH_CHECKS": True,
    }
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The one statement Clareza asks to prepare, a decision's call
    # (consents.ledger.decide), is then planned once per connection rather than
    # once per decision; Django's own statements bind on the client and are never
    # prepared. Off (0) behind a pooler in transaction mode that cannot keep
    # prepared statements (PgBouncer before 1.21).
    DATABASES["default"]["OPTIONS"].setdefault(
        "prepare_threshold", 5 if env_bool("DATABASE_PREPARED_STATEMENTS", True) else None
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = redis_url("REDIS_URL")
# Every cache key starts with it: two portals sharing one Redis database need two.
CACHE_KEY_PREFIX = env_str("CACHE_KEY_PREFIX", "clareza")
# "filesystem": Celery's broker is kombu's filesystem transport under VAR_DIR, so
# that the demo (`make run`) has a real worker process and no server to install.
# (Not CELERY_BROKER: the celery command reads that variable as its --broker URL.)
TASK_BROKER = env_str("TASK_BROKER", "")
if TASK_BROKER not in {"", "filesystem"}:
    raise ImproperlyConfigured(
        f"TASK_BROKER={TASK_BROKER!r} is not supported: leave it unset or use filesystem."
    )
if TASK_BROKER and REDIS_URL:
    raise ImproperlyConfigured(
        "TASK_BROKER=filesystem and REDIS_URL are both set: with REDIS_URL, Redis is the broker."
    )
if REDIS_URL:
    CACHES = {"default": cache_from_redis_url(REDIS_URL, prefix=CACHE_KEY_PREFIX)}
elif TASK_BROKER:
    # The demo runs runserver and a worker side by side (and runserver restarts on
    # every code change): a cache in one process's memory would give each its own
    # rate-limit counters. Files under VAR_DIR are one cache for all of them.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
else:
    # One process runs everything, tasks included (eager): its memory is the cache.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_USER_MODEL = "portal.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"

# django-allauth: email is the login, verified before the account is usable.
ACCOUNT_ADAPTER = "portal.adapters.AccountAdapter"
# The sign-up form carries one unticked box per optional purpose (consents app).
ACCOUNT_SIGNUP_FORM_CLASS = "consents.forms.SignupConsentForm"
ACCOUNT_FORMS = {"signup": "consents.signup.AtomicSignupForm"}
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED = False
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Clareza] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if SITE_URL.startswith("https://") else "http"
ACCOUNT_REAUTHENTICATION_TIMEOUT = 300
ACCOUNT_RATE_LIMITS = {
    # allauth's defaults, written out so that they are visible and reviewed.
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "confirm_email": "1/3m/key",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "change_password": "5/m/user",
    "manage_email": "10/m/user",
    "reauthenticate": "10/m/user",
}
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# The newsletter form emails the address it is given: per client, and per
# address (kept as a hash), in allauth's syntax and cache (consents.ratelimit).
NEWSLETTER_RATE_LIMITS = "20/h/ip,3/h/key"
# Calls per API key (integrations.api), same syntax; "key" is the API key.
API_RATE_LIMITS = env_str("API_RATE_LIMITS", "600/m/key")
if not re.fullmatch(r"\d+/\d*[smhd]/key(,\d+/\d*[smhd]/key)*", API_RATE_LIMITS.replace(" ", "")):
    raise ImproperlyConfigured(
        f"API_RATE_LIMITS={API_RATE_LIMITS!r} is not like 600/m/key (amount/period/key, "
        "comma-separated; period: s, m, h or d, optionally after a number)."
    )
# Days the API's call log (integrations.ApiCall: which system read or recorded
# whose consents, when, with what answer) keeps a call before the retention
# task deletes it: a year lets a person's copy and staff answering a request
# or investigating an incident see a year of calls, without the log becoming
# a lasting record of who was read. The database refuses to delete a call
# younger than 30 days whatever the task asks (0005_api_call_retention).
API_CALLS_KEPT_DAYS = env_int("API_CALLS_KEPT_DAYS", 365, minimum=30)

MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
# The admin opens only to staff with an authenticator app or a security key
# (portal.middleware.StaffSecondFactorMiddleware). `make run` turns it off for
# the demo; production refuses to start without it, rather than warn: a warning
# scrolls away in a log, and this switch is what stands between one stolen
# staff password and every customer's data.
STAFF_REQUIRE_MFA = env_bool("STAFF_REQUIRE_MFA", True)
if not DEBUG and not STAFF_REQUIRE_MFA:
    raise ImproperlyConfigured(
        "STAFF_REQUIRE_MFA=0 is for the local demo only; it cannot be turned off when DEBUG is off."
    )
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_PASSKEY_SIGNUP_ENABLED = False
MFA_TOTP_ISSUER = env_str("MFA_TOTP_ISSUER", "Clareza")
# Browsers only offer WebAuthn on https or on localhost over http.
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG
# Activity tracking would write to the database on every request; the sessions
# page still shows where and when each session started, and ends any of them.
USERSESSIONS_TRACK_ACTIVITY = False

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("pt-br", _("Português (Brasil)"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SECURE = not DEBUG
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_HTTPONLY = True
TIME_ZONE = env_str("TIME_ZONE", "America/Sao_Paulo")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Email. The sender is the controller's name at the portal's own address.
globals().update(email_from_url("EMAIL_URL"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", f"Clareza <no-reply@{ALLOWED_HOSTS[0]}>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Security headers. shared/NOTES.md lists what an A+ grade needs.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not DEBUG
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "manifest-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=(), interest-cohort=(), browsing-topics=(), "
    "publickey-credentials-create=(self), publickey-credentials-get=(self)"
)

# Celery. With REDIS_URL tasks go to a Redis broker and real workers; with
# TASK_BROKER=filesystem (the demo) to a worker through files under VAR_DIR;
# with neither they run eagerly in the process that queues them (the fast tests).
# Settings here are deliberate (shared/NOTES.md): a task is acknowledged only after
# it ran, and re-queued when its worker dies.
CELERY_BROKER_URL = REDIS_URL or ("filesystem://localhost//" if TASK_BROKER else "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not (REDIS_URL or TASK_BROKER)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "clareza")
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Longer than the hard time limit, so a running task is never handed to a
    # second worker; short enough that a lost one comes back within minutes.
    "visibility_timeout": 600,
}
if TASK_BROKER == "filesystem":
    # One folder is both the way in and the way out. A worker takes a message by
    # moving it into processed/ (a rename on the same disk: only one taker wins);
    # the message is gone from the queue then, not at the ack, so a killed
    # worker's task is redelivered by the outbox sweeps, not by the broker.
    _broker_dir = VAR_DIR / "celery"
    _folders = {
        "data_folder_in": _broker_dir / "messages",
        "data_folder_out": _broker_dir / "messages",
        "processed_folder": _broker_dir / "processed",
        "control_folder": _broker_dir / "control",
    }
    for _folder in _folders.values():
        _folder.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS |= {key: str(path) for key, path in _folders.items()}
    CELERY_BROKER_TRANSPORT_OPTIONS |= {"store_processed": True, "polling_interval": 0.5}
    # Remote control broadcasts to every worker that ever bound a queue here; the
    # demo's one worker needs none of it.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
    CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
# Insight (insight/): the staff dashboard's figures. A published count is 0 or
# at least this many people; smaller cells, and those that would give them back
# by subtraction, are hidden (insight/suppression.py).
INSIGHT_MIN_CELL = env_int("INSIGHT_MIN_CELL", 10, minimum=2)
# Differential privacy for released figures (insight/privacy.py): the epsilon
# that releases may spend in each calendar month, unless staff set another for
# that month in the admin; the epsilon a release offers by default; and how many
# cells of one release a person may count in (their other cells are left out),
# which is the L1 sensitivity the noise is calibrated to. With these defaults a
# release adds Laplace noise of scale 5 (95% of figures within +-15): a monthly
# count of a few hundred people keeps its trend.
INSIGHT_DP_EPSILON_PER_MONTH = env_decimal(
    "INSIGHT_DP_EPSILON_PER_MONTH", "4", minimum="0", maximum="100"
)
INSIGHT_DP_EPSILON_PER_RELEASE = env_decimal(
    "INSIGHT_DP_EPSILON_PER_RELEASE", "1", minimum="0.01", maximum="100"
)
INSIGHT_DP_CELLS_PER_PERSON = env_int("INSIGHT_DP_CELLS_PER_PERSON", 5, minimum=1)
# How often the beat folds new ledger events into the rollups.
INSIGHT_REFRESH_MINUTES = env_int("INSIGHT_REFRESH_MINUTES", 15, minimum=1)
# The auditor's evidence export (insight/evidence.py): ZIPs under
# RIGHTS_EXPORT_ROOT/evidence, deleted this many days after they are ready; one
# build may run this long (a million events take minutes).
INSIGHT_EVIDENCE_DAYS = env_int("INSIGHT_EVIDENCE_DAYS", 7, minimum=1)
INSIGHT_EVIDENCE_TIME_LIMIT_SECONDS = env_int(
    "INSIGHT_EVIDENCE_TIME_LIMIT_SECONDS", 3600, minimum=120
)

CELERY_BEAT_SCHEDULE = {
    "sweep-outbox": {
        "task": "portal.tasks.outbox_sweep",
        "schedule": timedelta(minutes=1),
    },
    "expire-changed-grants": {
        "task": "policies.tasks.expire_changed_grants",
        "schedule": timedelta(hours=1),
    },
    "purge-unconfirmed-newsletter-signups": {
        "task": "consents.tasks.purge_unconfirmed_newsletter_signups",
        "schedule": timedelta(hours=1),
    },
    "expire-outbox-private-payloads": {
        "task": "portal.tasks.outbox_expire_private_payloads",
        "schedule": timedelta(hours=1),
    },
    "ledger-seal": {
        "task": "consents.tasks.ledger_seal",
        "schedule": timedelta(seconds=LEDGER_SEAL_SECONDS),
    },
    "retention-enforce": {
        "task": "rights.tasks.retention_enforce",
        "schedule": timedelta(days=1),
    },
    "ledger-checkpoint": {
        "task": "consents.tasks.ledger_checkpoint",
        "schedule": timedelta(minutes=LEDGER_CHECKPOINT_MINUTES),
    },
    "insight-refresh": {
        "task": "insight.tasks.insight_refresh",
        "schedule": timedelta(minutes=INSIGHT_REFRESH_MINUTES),
    },
    "rights-requests-due": {
        "task": "rights.tasks.requests_due_digest",
        "schedule": crontab(hour=8, minute=0),
    },
    # Accounts and newsletter subscriptions whose grace period has ended are erased.
    "rights-erasures-due": {
        "task": "rights.tasks.erasures_due",
        "schedule": timedelta(hours=1),
    },
}

# The outbox (portal/outbox.py), for every kind of outgoing work. The old
# POLICY_NOTIFICATION_* variables are still read when the OUTBOX_* one is unset.
# Rows one task claims and works through (one SMTP connection for an email batch).
OUTBOX_BATCH = env_int(
    "OUTBOX_BATCH", env_int("POLICY_NOTIFICATION_BATCH", 200, minimum=1), minimum=1
)
# Batch tasks working at once on a fan-out (a policy version's notices).
OUTBOX_PARALLEL_SENDERS = env_int(
    "OUTBOX_PARALLEL_SENDERS", env_int("POLICY_PARALLEL_SENDERS", 2, minimum=1), minimum=1
)
# A claimed row is leased to one worker this long, renewed while its batch runs;
# a killed worker's rows come back to the sweep after it.
OUTBOX_LEASE = timedelta(
    seconds=env_int(
        "OUTBOX_LEASE_SECONDS",
        env_int("POLICY_NOTIFICATION_LEASE_SECONDS", 300, minimum=1),
        minimum=1,
    )
)
# Tries before a row ends failed (backoff 30 s, doubling: about two hours in all).
OUTBOX_MAX_ATTEMPTS = env_int("OUTBOX_MAX_ATTEMPTS", 8, minimum=1)
# How long new rows wait for the task queued when they were written before the
# sweep treats them as lost (after a broker outage, say).
OUTBOX_GRACE = timedelta(
    seconds=env_int(
        "OUTBOX_GRACE_SECONDS",
        env_int("POLICY_NOTIFICATION_GRACE_SECONDS", 120, minimum=1),
        minimum=1,
    )
)
# How long an unsent email keeps its body: the longest any link in it works
# (newsletter confirmation 7 days; verification and password reset 3). A sent
# email's body is cleared at once; tests/portal/test_outbound_email.py checks this
# covers every link lifetime.
OUTBOX_UNSENT_KEPT = timedelta(days=7)

# Retention (rights/retention.py, the daily beat task retention_enforce): the
# periods the privacy page and the record of processing state, read from here.
# Sent outbox rows (recipient, subject, times: the body is gone already) are
# deleted this long after they were sent. Never before the links in a policy
# email expire: the one-click stop and acknowledge links name their row.
POLICY_LINK_DAYS = env_int("POLICY_LINK_DAYS", 60, minimum=1)
OUTBOX_SENT_KEPT = timedelta(
    days=env_int("OUTBOX_SENT_KEPT_DAYS", max(90, POLICY_LINK_DAYS), minimum=POLICY_LINK_DAYS)
)
# Rows that ended failed (with their error, for staff to see and retry) are
# deleted this long after they were written; at least as long as an unsent
# email keeps its body, so that the hourly expiry sees them first.
OUTBOX_FAILED_KEPT = timedelta(
    days=env_int("OUTBOX_FAILED_KEPT_DAYS", 30, minimum=OUTBOX_UNSENT_KEPT.days)
)
# Rows deleted in one transaction (each batch locks only its own rows).
RETENTION_BATCH = env_int("RETENTION_BATCH", 1000, minimum=1)

# Policy updates. A material change takes effect at least this many days after
# it is published, so that people can decide before it applies.
POLICY_MATERIAL_NOTICE_DAYS = env_int("POLICY_MATERIAL_NOTICE_DAYS", 30, minimum=0)
# How long the links in a policy email work without logging in: POLICY_LINK_DAYS,
# above, beside the outbox's retention that depends on it.

# Rights requests (rights/). How long each jurisdiction gives to answer: LGPD
# 15 days (Art. 19 II); GDPR one month, extendable once by two further months
# with reasons given inside the first month (Art. 12(3)). See rights/deadlines.py.
RIGHTS_DEADLINES = {
    "lgpd": {"days": env_int("RIGHTS_LGPD_DAYS", 15, minimum=1)},
    "gdpr": {
        "months": env_int("RIGHTS_GDPR_MONTHS", 1, minimum=1),
        "extension_months": env_int("RIGHTS_GDPR_EXTENSION_MONTHS", 2, minimum=0),
    },
}
# The law a request falls under unless the person or staff choose the other.
RIGHTS_DEFAULT_JURISDICTION = env_str("RIGHTS_DEFAULT_JURISDICTION", "lgpd")
if RIGHTS_DEFAULT_JURISDICTION not in RIGHTS_DEADLINES:
    raise ImproperlyConfigured(
        f"RIGHTS_DEFAULT_JURISDICTION={RIGHTS_DEFAULT_JURISDICTION!r} is not one of "
        f"{', '.join(RIGHTS_DEADLINES)}."
    )
# Open requests due within this many days are highlighted in the staff queue
# and listed in the DPO's daily email, with the overdue ones.
RIGHTS_DUE_SOON_DAYS = env_int("RIGHTS_DUE_SOON_DAYS", 3, minimum=0)
# Days between closing an account (or asking for a newsletter subscription's
# erasure) and the erasure, during which the person can cancel.
RIGHTS_ERASURE_GRACE_DAYS = env_int("RIGHTS_ERASURE_GRACE_DAYS", 7, minimum=0)
# Days a finished request (done, refused, cancelled) is kept as proof that it
# was answered, then deleted by the retention task: five years by default, the
# period in which a consumer claim can be brought in Brazil (CDC Art. 27).
RIGHTS_REQUESTS_KEPT_DAYS = env_int("RIGHTS_REQUESTS_KEPT_DAYS", 1825, minimum=30)
# Copies of a person's data (rights/exports.py): the ZIPs are written under this
# private folder, never one that the web server serves (static files), and
# deleted this many days after they are ready, when the download link stops working.
RIGHTS_EXPORT_ROOT = Path(env_str("RIGHTS_EXPORT_ROOT", str(VAR_DIR / "exports"))).resolve()
RIGHTS_EXPORT_DAYS = env_int("RIGHTS_EXPORT_DAYS", 7, minimum=1)
# How long one build may run (a ledger of tens of thousands of decisions, each
# with its signed receipt, outlasts an ordinary task's CELERY_TASK_TIME_LIMIT).
RIGHTS_EXPORT_TIME_LIMIT_SECONDS = env_int("RIGHTS_EXPORT_TIME_LIMIT_SECONDS", 1800, minimum=120)
for _served in [STATIC_ROOT, BASE_DIR / "static"]:
    _served = Path(_served).resolve()
    if _served == RIGHTS_EXPORT_ROOT or _served in RIGHTS_EXPORT_ROOT.parents:
        raise ImproperlyConfigured(
            f"RIGHTS_EXPORT_ROOT={RIGHTS_EXPORT_ROOT} is inside {_served}, which is served "
            "to anyone: choose a private folder."
        )

# The staff audit trail (rights/audit.py). Rows are kept this many days, then
# deleted by the retention task. Five years is the period LGPD's regulation asks
# of the other security record the portal would keep, the register of incidents
# (Art. 48; Resolution CD/ANPD 15/2024: "at least 5 years"), and covers the
# five-year limitation of consumer claims in Brazil that an access could be
# questioned in. The database itself refuses to delete a row younger than 365
# days whatever the task asks (0004_audit), hence the minimum.
AUDIT_KEPT_DAYS = env_int("AUDIT_KEPT_DAYS", 5 * 365 + 1, minimum=365)
# A reason staff give to open one person's data (when no open request of that
# person explains it) covers their further looks at that person's data, in the
# same session, for this many minutes; each look still writes its own row.
AUDIT_REASON_MINUTES = env_int("AUDIT_REASON_MINUTES", 30, minimum=1)

# Webhooks (integrations/webhooks/). Delays after each failed try of a
# delivery, in seconds: about a day in all (24.6 h), growing until capped at 8 h.
_retry = env_list(
    "WEBHOOK_RETRY_SECONDS", ["10", "60", "300", "1800", "7200", "21600", "28800", "28800"]
)
if not all(_s.isdigit() for _s in _retry):
    raise ImproperlyConfigured(
        f"WEBHOOK_RETRY_SECONDS={','.join(_retry)!r} is not a comma-separated list of seconds."
    )
WEBHOOK_RETRY_SECONDS = [int(_s) for _s in _retry]
# Host names or IP networks (10.1.2.0/24) webhooks may reach although they are
# private, loopback or link-local; in development (DEBUG) only loopback and
# these are contacted at all, so that a demo never posts to a real system.
WEBHOOK_ALLOWED_HOSTS = env_list("WEBHOOK_ALLOWED_HOSTS", [])
# POSTs in flight at once per batch (one endpoint's deliveries, each thread
# on a kept-alive connection of its own).
WEBHOOK_PARALLEL_POSTS = env_int("WEBHOOK_PARALLEL_POSTS", 4, minimum=1)
# Seconds to connect and between bytes of the answer, and in all for one try.
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1)
# An endpoint whose every try has failed for this long is disabled (staff are
# emailed) as soon as one of its deliveries fails for good.
WEBHOOK_DISABLE_AFTER_HOURS = env_int("WEBHOOK_DISABLE_AFTER_HOURS", 24, minimum=0)
# Endpoints' secrets are kept sealed (AES-GCM) with keys in this folder, outside
# the database (integrations/webhooks/sealing.py): made on first use (0600),
# rotated with `manage.py rotate_webhook_sealing_key`. Back it up with the
# signing keys, apart from the database's backups.
WEBHOOK_SEALING_KEY_DIR = Path(env_str("WEBHOOK_SEALING_KEY_DIR", str(SIGNING_KEY_DIR / "sealing")))
# How long the old secret still signs after a rotation, by default.
WEBHOOK_SECRET_OVERLAP_HOURS = env_int("WEBHOOK_SECRET_OVERLAP_HOURS", 24, minimum=0)
# Messages, their deliveries and attempts are deleted this long after they were made.
WEBHOOK_KEPT_DAYS = env_int("WEBHOOK_KEPT_DAYS", 30, minimum=2)
# How long a process trusts its list of the event kinds active endpoints want
# (saving an endpoint clears it in that process at once).
WEBHOOK_ENDPOINTS_CACHE_SECONDS = env_int("WEBHOOK_ENDPOINTS_CACHE_SECONDS", 2, minimum=0)
# Where the demo shop's receiver (integrations/examples/consent_sync.py, started
# by `make run`) listens; seed_demo registers it as a webhook endpoint.
DEMO_SHOP_WEBHOOK_URL = env_url("DEMO_SHOP_WEBHOOK_URL", "http://127.0.0.1:8001/webhooks/clareza")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
