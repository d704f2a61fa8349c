from __future__ import annotations

from celery import shared_task

from consents.services import newsletter_signups_purge_unconfirmed


@shared_task
def purge_unconfirmed_newsletter_signups() -> int:
    return newsletter_signups_purge_unconfirmed()
