"""Standard Webhooks signatures (https://www.standardwebhooks.com/):
`whsec_` + base64 secrets, and `v1,<base64 HMAC-SHA256>` of
`webhook-id.webhook-timestamp.body`. During a rotation's overlap both the new
and the old secret sign, space-separated in one header, so that a receiver
holding either verifies. The tests verify with the `standardwebhooks` package,
as a receiver would."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as random

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(random.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(secret: str, *, webhook_id: str, timestamp: int, body: str) -> str:
    digest = hmac.new(
        _key(secret), f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256
    ).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(*, webhook_id: str, timestamp: int, body: str, secrets: list[str]) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "Clareza-Webhooks/1",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            sign(secret, webhook_id=webhook_id, timestamp=timestamp, body=body)
            for secret in secrets
        ),
    }
