"""The demo shop as a connected system: a webhook endpoint and an API key for
the receiver that `make run` starts (integrations/examples/consent_sync.py),
made through the services staff use, and their secrets in
VAR_DIR/demo-shop.json (readable by its owner only) for the receiver to read.

seed() converges: run again, it keeps the endpoint (its URL follows
DEMO_SHOP_WEBHOOK_URL) and the key while the file still holds the key's
secret; a key whose secret was lost (the file deleted) is revoked and
replaced, since only its hash is kept."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured

from integrations.api import services as api_services
from integrations.models import ApiKey, ApiScope, WebhookEndpoint
from integrations.webhooks import services as webhook_services
from portal import events

NAME = "Demo shop"
SCOPES = [ApiScope.CONSENTS_READ, ApiScope.AUDIENCE_READ, ApiScope.RIGHTS_HANDLE]
# What the shop acts on; rights_request.assigned and .cancelled reach a
# system's own endpoint whatever it chose, and are named here where the portal has them.
EVENTS = [
    events.CONSENT_GRANTED,
    events.CONSENT_WITHDRAWN,
    events.CONSENT_REFUSED,
    events.CONSENT_LAPSED,
    events.GPC_OPT_OUT,
    events.ACCOUNT_ERASED,
    events.RIGHTS_REQUEST_ASSIGNED,
    events.RIGHTS_REQUEST_CANCELLED,
]
STATE_FILE = "demo-shop-copy.json"


def config_path() -> Path:
    return Path(settings.VAR_DIR) / "demo-shop.json"


def _acting_user():
    """The demo's superuser: the services record who registered the endpoint
    and made the key."""
    user = (
        get_user_model()
        .objects.filter(is_superuser=True, is_staff=True, is_active=True)
        .order_by("pk")
        .first()
    )
    if user is None:
        raise ImproperlyConfigured("The demo shop is registered by a superuser: there is none.")
    return user


def _write(path: Path, data: dict) -> None:
    """Atomically, mode 0600 from the start (mkstemp): it holds two secrets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _endpoint(acting_user) -> WebhookEndpoint:
    url = settings.DEMO_SHOP_WEBHOOK_URL
    wanted = [kind for kind in events.KINDS if kind in EVENTS]  # in the order the services keep
    endpoint = WebhookEndpoint.objects.filter(name=NAME).order_by("pk").first()
    if endpoint is None:
        return webhook_services.endpoint_create(
            name=NAME, url=url, events=wanted, acting_user=acting_user
        ).endpoint
    if endpoint.url != url or endpoint.events != wanted or not endpoint.is_active:
        endpoint = webhook_services.endpoint_update(
            endpoint=endpoint,
            name=NAME,
            url=url,
            events=wanted,
            is_active=True,
            acting_user=acting_user,
        )
    return endpoint


def _key(acting_user, known_secret: str | None) -> tuple[ApiKey, str]:
    keys = [key for key in ApiKey.objects.filter(name=NAME) if key.usable()]
    if known_secret:
        digest = api_services.secret_hash(known_secret)
        for key in keys:
            if key.secret_hash == digest and sorted(key.scopes) == sorted(SCOPES):
                return key, known_secret
    for key in keys:  # their secrets are lost: nobody may keep using them
        api_services.api_key_revoke(key=key, acting_user=acting_user)
    made = api_services.api_key_create(name=NAME, scopes=list(SCOPES), acting_user=acting_user)
    return made.key, made.secret


def seed() -> tuple[WebhookEndpoint, ApiKey]:
    """The shop's endpoint and key, and VAR_DIR/demo-shop.json for its receiver."""
    acting_user = _acting_user()
    path = config_path()
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        previous = {}
    endpoint = _endpoint(acting_user)
    key, secret = _key(acting_user, previous.get("api_key"))
    url = urlsplit(settings.DEMO_SHOP_WEBHOOK_URL)
    config = {
        "portal": settings.SITE_URL,
        "api_key": secret,
        "webhook_secret": endpoint.secrets(),
        "listen": f"{url.hostname}:{url.port or (443 if url.scheme == 'https' else 80)}",
        "path": url.path or "/",
        "state": STATE_FILE,
        "endpoint": str(endpoint.uuid),
        "key_prefix": key.prefix,
    }
    if config != previous:
        _write(path, config)
    os.chmod(path, 0o600)
    return endpoint, key
