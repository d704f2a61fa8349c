"""Periodic work of the policies. Their notices are sent by the outbox's tasks
(portal/tasks.py), through the handler in policies/notices.py."""

from __future__ import annotations

from celery import shared_task

from consents.services import reconsent_lapse_due


@shared_task
def expire_changed_grants() -> int:
    """On the effective date of a re-consent request (a policy version that
    changes purposes, or a purpose whose processing widened), the grants not
    given again since lapse (method: expiry)."""
    return reconsent_lapse_due()
