from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from consents import ledger


class Command(BaseCommand):
    help = (
        "Prove that no consent event was changed, deleted, inserted or reordered: "
        "recompute the hash chain and check it against its signed head and against every "
        "signed checkpoint (those in the database and those given with --checkpoints). "
        "Exits 0 when intact, 1 naming the first bad event otherwise."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--chunk-size", type=int, default=5000, help="events read per query")
        parser.add_argument(
            "--checkpoints",
            action="append",
            default=[],
            metavar="PATH",
            help="checkpoints kept outside the database: the JSON-lines export "
            "(LEDGER_CHECKPOINT_FILE) or a saved /.well-known/clareza-ledger-checkpoints.json; "
            "repeatable",
        )

    def handle(self, *args, chunk_size: int, checkpoints: list[str], **options) -> None:
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1.")
        paths = tuple(Path(p) for p in checkpoints)
        for path in paths:
            if not path.is_file():
                raise CommandError(f"--checkpoints {path}: no such file.")
        verdict = ledger.verify(chunk_size=chunk_size, checkpoint_files=paths)
        for reason in verdict.untrusted:
            self.stderr.write(f"Untrusted checkpoint: {reason}")
        if not verdict.intact:
            raise CommandError(
                f"Ledger NOT intact: {verdict.problem}. "
                f"The first {verdict.count} event(s) verified before it."
            )
        if verdict.untrusted:
            raise CommandError(
                f"Ledger intact against {verdict.checkpoints} signed checkpoint(s), but "
                f"{len(verdict.untrusted)} checkpoint(s) carry no valid signature of this "
                "ledger and were not trusted: someone wrote them."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Ledger intact: {verdict.count} events verified"
                + (
                    f" against {verdict.checkpoints} signed checkpoint(s)."
                    if verdict.checkpoints
                    else "."
                )
            )
        )
