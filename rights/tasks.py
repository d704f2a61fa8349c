"""Beat tasks of the rights app."""

from __future__ import annotations

from celery import shared_task

# Requests -----------------------------------------------------------------------


# Retention ----------------------------------------------------------------------


@shared_task
def retention_enforce() -> int:
    """Beat, daily: erase what no purpose or stated period keeps any more
    (rights/retention.py). Idempotent: a second run finds nothing."""
    from rights.retention import retention_enforce as enforce

    return enforce().total
