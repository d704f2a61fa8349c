from __future__ import annotations

from django.core.management.base import BaseCommand
from django.utils import timezone

from rights.models import OPEN_STATUSES, Kind, RightsRequest
from rights.services import erasures_due


class Command(BaseCommand):
    help = (
        "Carry out now, as the hourly beat task does, every erasure whose grace period "
        "has ended (closed accounts, newsletter subscriptions). --dry-run only lists them "
        "(request id and date, nothing personal)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="list what would be erased; change nothing"
        )

    def handle(self, *args, dry_run: bool, **options) -> None:
        now = timezone.now()
        if dry_run:
            due = RightsRequest.objects.filter(
                kind=Kind.ERASURE, status__in=OPEN_STATUSES, erase_after__lte=now
            ).order_by("erase_after", "pk")
            for request in due:
                self.stdout.write(f"{request.uuid}: due since {request.erase_after:%Y-%m-%d %H:%M}")
            self.stdout.write(f"total: {due.count()} would be erased (dry run)")
            return
        self.stdout.write(f"total: {erasures_due(now=now)} erased")
