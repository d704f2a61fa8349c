from __future__ import annotations

from celery import shared_task

from consents import ledger
from consents.services import ledger_checkpoint_make, newsletter_signups_purge_unconfirmed


@shared_task
def purge_unconfirmed_newsletter_signups() -> int:
    return newsletter_signups_purge_unconfirmed()


@shared_task(ignore_result=True, expires=60)
def ledger_seal() -> int:
    """Beat, every LEDGER_SEAL_SECONDS: fold the decisions recorded since the
    last run into the ledger's Merkle tree and sign its new head."""
    return ledger.seal().sealed


@shared_task
def ledger_checkpoint() -> int | None:
    """Beat, every LEDGER_CHECKPOINT_MINUTES: sign the ledger's size and root
    and send them outside the database; nothing when nothing was appended."""
    checkpoint = ledger_checkpoint_make()
    return checkpoint.size if checkpoint else None
