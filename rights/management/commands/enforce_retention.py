from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from rights.retention import retention_enforce


class Command(BaseCommand):
    help = (
        "Apply every retention rule now, as the daily beat task does: personal data no "
        "purpose holds any more, then sent and failed emails, expired sessions and "
        "unconfirmed newsletter sign-ups and finished rights requests past their periods. "
        "--dry-run only counts."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be erased; change nothing"
        )
        parser.add_argument(
            "--batch", type=int, default=None, help="rows a transaction (RETENTION_BATCH)"
        )

    def handle(self, *args, dry_run: bool, batch: int | None, **options) -> None:
        if batch is not None and batch < 1:
            raise CommandError("--batch must be at least 1.")
        report = retention_enforce(dry_run=dry_run, batch=batch)
        verb = "would be erased" if dry_run else "erased"
        for key, count in report.counts.items():
            self.stdout.write(f"{key}: {count} {verb}")
        self.stdout.write(f"total: {report.total} {verb}" + (" (dry run)" if dry_run else ""))
