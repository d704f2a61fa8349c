"""The demo shop as a connected system (integrations.demo_shop.seed): its
webhook endpoint and API key made through the staff's services, and their
secrets in VAR_DIR/demo-shop.json for the receiver `make run` starts."""

from __future__ import annotations

import json
import stat

import pytest
from django.core.exceptions import ImproperlyConfigured

from integrations import demo_shop
from integrations.api.services import secret_hash
from integrations.models import ApiKey, WebhookEndpoint
from rights.models import AuditAction, AuditEntry


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]  # DEBUG is off in tests
    settings.DEMO_SHOP_WEBHOOK_URL = "http://127.0.0.1:8001/webhooks/clareza"
    settings.SITE_URL = "http://127.0.0.1:8000"
    return tmp_path


def config(var_dir) -> dict:
    return json.loads((var_dir / "demo-shop.json").read_text())


def test_it_registers_the_shop_and_writes_its_secrets_for_the_owner_only(var_dir, staff):
    endpoint, key = demo_shop.seed()

    written = config(var_dir)
    assert stat.S_IMODE((var_dir / "demo-shop.json").stat().st_mode) == 0o600
    assert endpoint.url == "http://127.0.0.1:8001/webhooks/clareza"
    assert written["webhook_secret"] == [endpoint.secret()]
    assert secret_hash(written["api_key"]) == key.secret_hash
    assert sorted(key.scopes) == ["audience:read", "consents:read", "rights:handle"]
    assert written["portal"] == "http://127.0.0.1:8000"
    assert (written["listen"], written["path"]) == ("127.0.0.1:8001", "/webhooks/clareza")
    assert {"consent.withdrawn", "consent.gpc_opt_out", "account.erased"} <= set(endpoint.events)
    # Made as staff make them: in the audit trail, by the superuser.
    actions = set(AuditEntry.objects.filter(actor=staff).values_list("action", flat=True))
    assert {AuditAction.API_KEY_CREATE, AuditAction.WEBHOOK_ENDPOINT_SAVE} <= actions


def test_running_it_again_changes_nothing(var_dir, staff):
    first = demo_shop.seed()
    before = (var_dir / "demo-shop.json").read_text()

    again = demo_shop.seed()

    assert (again[0].pk, again[1].pk) == (first[0].pk, first[1].pk)
    assert (var_dir / "demo-shop.json").read_text() == before
    assert WebhookEndpoint.objects.count() == ApiKey.objects.count() == 1


def test_a_lost_key_is_revoked_and_replaced_and_the_url_follows_the_setting(
    var_dir, staff, settings
):
    endpoint, key = demo_shop.seed()
    (var_dir / "demo-shop.json").unlink()
    settings.DEMO_SHOP_WEBHOOK_URL = "http://127.0.0.1:8002/hooks"

    again, new_key = demo_shop.seed()

    assert again.pk == endpoint.pk and again.url == "http://127.0.0.1:8002/hooks"
    assert new_key.pk != key.pk
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert secret_hash(config(var_dir)["api_key"]) == new_key.secret_hash
    assert config(var_dir)["listen"] == "127.0.0.1:8002"


def test_without_a_superuser_it_says_so(var_dir, db):
    with pytest.raises(ImproperlyConfigured, match="superuser"):
        demo_shop.seed()
