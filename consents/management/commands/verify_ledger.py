from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from consents import ledger


class Command(BaseCommand):
    help = (
        "Prove that no consent event was changed, deleted, inserted or reordered: "
        "recompute the hash chain and check it against its signed head. "
        "Exits 0 when intact, 1 naming the first bad event otherwise."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--chunk-size", type=int, default=5000, help="events read per query")

    def handle(self, *args, chunk_size: int, **options) -> None:
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1.")
        verdict = ledger.verify(chunk_size=chunk_size)
        if not verdict.intact:
            raise CommandError(
                f"Ledger NOT intact: {verdict.problem}. "
                f"The first {verdict.count} event(s) verified before it."
            )
        self.stdout.write(self.style.SUCCESS(f"Ledger intact: {verdict.count} events verified."))
