"""Beat task of the insight app."""

from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True, expires=600)
def insight_refresh() -> int:
    """Beat, every INSIGHT_REFRESH_MINUTES: fold the decisions sealed since the
    last run into the rollups, and take the current state's figures again."""
    from insight.rollup import insight_refresh as refresh

    folded, _figures = refresh()
    return folded
