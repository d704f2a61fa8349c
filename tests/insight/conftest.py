from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.utils import timezone

from consents.demo import seed_inventory
from consents.ledger import seal


def local(*args) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(settings.TIME_ZONE))


@pytest.fixture
def purposes(db):
    return {p.key: p for p in seed_inventory()}


@pytest.fixture
def at(monkeypatch):
    """at(moment): decisions recorded from now on carry that time."""

    from consents import services

    in_database = services._record_in_database

    def move(moment: datetime) -> None:
        monkeypatch.setattr(timezone, "now", lambda: moment)
        # On PostgreSQL a decision takes the database's clock unless given a time.
        monkeypatch.setattr(
            services,
            "_record_in_database",
            lambda **kwargs: in_database(**{**kwargs, "created_at": moment}),
        )

    return move


@pytest.fixture
def sealed():
    """Seal what was recorded (the rollup folds only committed events)."""
    return seal
