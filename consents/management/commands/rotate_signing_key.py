from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from consents import keys


class Command(BaseCommand):
    help = (
        "Make a new signing key for receipts and the ledger's chain head. Earlier "
        "keys stay in SIGNING_KEY_DIR and stay published at /.well-known/jwks.json, "
        "so that everything they signed still verifies."
    )

    def handle(self, *args, **options) -> None:
        before = keys.keyring().keys if keys._key_files() else {}
        key = keys.key_rotate()
        self.stdout.write(
            self.style.SUCCESS(
                f"New signing key {key.kid} in {settings.SIGNING_KEY_DIR}; "
                f"{len(before)} earlier key(s) stay published."
            )
        )
