"""Erasure benchmark, on PostgreSQL: what one person's erasure costs, and how
that grows with everyone else's login sessions.

An erasure (rights.services.user_erase: withdrawals in the ledger, every
registered holder, the account) reads every row of the session table once,
to find sessions of the account that allauth did not list. This measures,
for a person with two grants, an address, an interest, 100 emails and a
listed session, with S other people's sessions in the table (default 1,000
and 100,000):

1. the erasure's time against a plain DELETE of exactly the same rows (the
   statements already know which rows), on the same data, in the same run;
2. the erasure at S large against S small: how much the session scan adds.

Usage: python bench/erasure.py [--small 1000] [--large 100000] [--repeat 5]
Needs PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/clareza_bench).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _setup import fresh_database


def _sessions(count: int) -> None:
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    store = SessionStore()
    expire = timezone.now() + timedelta(days=14)
    Session.objects.bulk_create(
        (
            Session(
                session_key=secrets.token_hex(16),
                session_data=store.encode({"_auth_user_id": str(10_000_000 + i)}),
                expire_date=expire,
            )
            for i in range(count)
        ),
        batch_size=5000,
    )


def _person(number: int, purposes: dict):
    """A customer with grants, data, emails and a listed session."""
    from allauth.account.models import EmailAddress
    from allauth.usersessions.models import UserSession
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from consents.models import Decision, Method, PersonalDatum
    from consents.services import consent_record
    from portal.mail import outbound_email_queue

    email = f"person{number}@example.com"
    user = get_user_model().objects.create_user(email=email, password=None)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    for key in ("newsletter", "recommendations"):
        consent_record(
            subject_id=user.subject_id,
            purpose=purposes[key],
            decision=Decision.GRANTED,
            method=Method.PANEL,
        )
    PersonalDatum.objects.create(subject_id=user.subject_id, field="postal_address", value="Rua")
    for i in range(100):
        outbound_email_queue(
            to=email, subject=f"Email {i}", body_text="Hello", template="bench", subject_id=None
        )
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session.create()
    UserSession.objects.create(
        user=user, session_key=session.session_key, ip="127.0.0.1", user_agent="bench"
    )
    return user


def _plain_delete(user) -> None:
    """The same rows, deleted by statements that already know them."""
    from allauth.usersessions.models import UserSession
    from django.contrib.sessions.models import Session
    from django.db import transaction

    from consents.models import PersonalDatum
    from portal.models import OutboxItem

    keys = list(UserSession.objects.filter(user=user).values_list("session_key", flat=True))
    with transaction.atomic():
        Session.objects.filter(session_key__in=keys).delete()
        PersonalDatum.objects.filter(subject_id=user.subject_id).delete()
        OutboxItem.objects.filter(recipient=user.email).delete()
        user.delete()  # cascades to allauth's rows


def _time(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    fresh_database("erasure")
    from django.contrib.auth import get_user_model

    from consents.demo import seed_inventory
    from rights.services import user_erase

    purposes = {p.key: p for p in seed_inventory()}
    staff = get_user_model().objects.create_user(
        email="staff@example.com", password=None, is_staff=True
    )
    results = {}
    loaded = 0
    number = 0
    for size in (args.small, args.large):
        _sessions(size - loaded)
        loaded = size
        erase_times, plain_times = [], []
        for _ in range(args.repeat):
            number += 1
            user = _person(number, purposes)
            erase_times.append(_time(lambda u=user: user_erase(user=u, acting_user=staff)))
            number += 1
            user = _person(number, purposes)
            plain_times.append(_time(lambda u=user: _plain_delete(u)))
        erase, plain = statistics.median(erase_times), statistics.median(plain_times)
        results[size] = erase
        print(
            f"{size:>9,} other sessions: erasure {erase * 1000:8.1f} ms, plain DELETE of "
            f"the same rows {plain * 1000:7.1f} ms, ratio {erase / plain:5.1f}"
        )
    print(
        f"erasure at {args.large:,} sessions / at {args.small:,}: "
        f"{results[args.large] / results[args.small]:.1f}"
    )


if __name__ == "__main__":
    main()
