"""Beat tasks of the rights app."""

from __future__ import annotations

from celery import shared_task

# Requests -----------------------------------------------------------------------


@shared_task(name="rights.tasks.requests_due_digest")
def requests_due_digest() -> int:
    """Daily: email the DPO the open requests overdue or due soon (none, no email)."""
    from rights.services import requests_due_notify

    return requests_due_notify()


# Retention ----------------------------------------------------------------------


@shared_task
def retention_enforce() -> int:
    """Beat, daily: erase what no purpose or stated period keeps any more
    (rights/retention.py). Idempotent: a second run finds nothing."""
    from portal import artifacts
    from rights.exports import stray_files_remove
    from rights.retention import retention_enforce as enforce

    total = enforce().total
    # Files of copies that no row names any more (a worker killed mid-build),
    # and those of the other kinds of built file (the auditor's evidence).
    stray_files_remove()
    for sweep in artifacts.stray_sweeps:
        sweep()
    return total


# Erasure ------------------------------------------------------------------------


@shared_task(name="rights.tasks.erasures_due")
def erasures_due() -> int:
    """Beat, hourly: erase the people whose grace period has ended
    (rights.services.erasure_carry_out, one transaction each)."""
    from rights.services import erasures_due as run

    return run()
