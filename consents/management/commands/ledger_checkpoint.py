from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from consents.ledger import LedgerIntegrityError
from consents.models import LedgerCheckpoint
from consents.services import ledger_checkpoint_make


class Command(BaseCommand):
    help = (
        "Sign a checkpoint of the consent ledger (its size and root) now, append it to "
        "LEDGER_CHECKPOINT_FILE and email it to the DPO. Nothing new when nothing was "
        "appended since the last one."
    )

    def handle(self, *args, **options) -> None:
        last = LedgerCheckpoint.objects.order_by("-size").values_list("pk", flat=True).first()
        try:
            checkpoint = ledger_checkpoint_make()
        except LedgerIntegrityError as exc:
            raise CommandError(f"No checkpoint: the ledger does not verify: {exc}.") from None
        if checkpoint is None:
            self.stdout.write("The ledger is empty: nothing to checkpoint.")
            return
        if checkpoint.pk == last:
            self.stdout.write(
                f"Nothing was appended since the checkpoint of {checkpoint.size} events made at "
                f"{checkpoint.created_at.isoformat()}: no new checkpoint."
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Checkpoint of {checkpoint.size} events, root {checkpoint.root}, made at "
                f"{checkpoint.created_at.isoformat()}; exported to "
                f"{settings.LEDGER_CHECKPOINT_FILE} and emailed to {settings.DPO_EMAIL}."
            )
        )
