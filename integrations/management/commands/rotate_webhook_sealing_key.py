from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from integrations.webhooks import sealing, services


class Command(BaseCommand):
    help = (
        "Make a new key for sealing webhook secrets at rest (in WEBHOOK_SEALING_KEY_DIR) "
        "and seal every endpoint's secrets again with it. Receivers notice nothing: the "
        "secrets themselves do not change. Then lists the keys still in use; the files "
        "of the others can be removed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--reseal-only",
            action="store_true",
            help="Seal again with the newest key without making a new one (e.g. after a "
            "rotation that another process raced).",
        )

    def handle(self, *args, **options) -> None:
        if not options["reseal_only"]:
            kid = sealing.key_rotate()
            self.stdout.write(f"New sealing key {kid} in {settings.WEBHOOK_SEALING_KEY_DIR}.")
        used = services.secrets_reseal()
        current = sealing.current_kid()
        for kid, count in sorted(used.items()):
            marker = " (newest)" if kid == current else " (could not be sealed again)"
            self.stdout.write(f"  key {kid}: {count} endpoint(s){marker}")
        others = sorted(set(used) - {current})
        if others:
            self.stdout.write(
                self.style.WARNING(
                    "Some secrets could not be unsealed; rotate those endpoints' secrets "
                    "in the admin."
                )
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    "Every endpoint's secret is sealed with the newest key; the other key "
                    "files can be removed."
                )
            )
