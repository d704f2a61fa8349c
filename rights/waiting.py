"""What a rights request waits for beyond the portal: the company's other
systems that must confirm before it is complete (integrations.systems keeps
them). Registered from that app's AppConfig.ready(), so that rights never
imports it:

    from rights import waiting
    waiting.register(waiting.Party(reach=..., waiting_on=..., last_answer_at=..., closed=...))

- reach(request, emails, now): the request is to reach the systems now (a copy,
  an objection or a restriction when it is opened; an erasure when it is
  carried out here, with the addresses the person was known by, which a person
  doing a manual task needs to find them and which are gone from the portal
  by then). Runs in the caller's transaction.
- waiting_on(request_ids) -> {request id: [names still to confirm]}; a request
  with nobody waiting is absent.
- last_answer_at(request_id) -> when the latest confirmation came (None if none),
  so that a copy built before it is known to lack it.
- listed(request_id) -> [{"system", "kind", "status", "status_code", "manual",
  "done", "failure", "completed_at", "url"}]: what each reached, for the
  request's admin page (labels in the active language).
- closed(request_ids, now, reason) -> the requests ended without them: whatever
  they still had to do is called off, and `reason` (one of CLOSED_REASONS)
  says why, for the systems told of it. Runs in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

# Why requests ended without their systems (closed()'s reason), as a system reads it.
CANCELLED = "cancelled"  # by the person
REFUSED = "refused"  # by staff
ENDED_BY_ERASURE = "ended_by_erasure"  # the person's data was erased: their other requests end
CLOSED_REASONS = (CANCELLED, REFUSED, ENDED_BY_ERASURE)


@dataclass(frozen=True)
class Party:
    reach: Callable[..., object]
    waiting_on: Callable[[list[int]], dict[int, list[str]]]
    last_answer_at: Callable[[int], datetime | None]
    closed: Callable[..., int]
    listed: Callable[[int], list[dict]]


_parties: list[Party] = []


def register(party: Party) -> None:
    if party not in _parties:
        _parties.append(party)


def reach(request, *, emails: Iterable[str], now: datetime) -> None:
    emails = tuple(e for e in emails if e)
    for party in _parties:
        party.reach(request, emails=emails, now=now)


def waiting_on_many(request_ids: Iterable[int]) -> dict[int, list[str]]:
    """Who each request still waits for (absent: nobody)."""
    ids = list(request_ids)
    found: dict[int, list[str]] = {}
    if not ids:
        return found
    for party in _parties:
        for request_id, names in party.waiting_on(ids).items():
            if names:
                found.setdefault(request_id, []).extend(names)
    return found


def waiting_on(request_id: int) -> list[str]:
    return waiting_on_many([request_id]).get(request_id, [])


def last_answer_at(request_id: int) -> datetime | None:
    moments = [m for party in _parties if (m := party.last_answer_at(request_id)) is not None]
    return max(moments) if moments else None


def listed(request_id: int) -> list[dict]:
    return [row for party in _parties for row in party.listed(request_id)]


def closed(request_ids: Iterable[int], *, now: datetime, reason: str) -> int:
    if reason not in CLOSED_REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    ids = list(request_ids)
    if not ids:
        return 0
    return sum(party.closed(ids, now, reason=reason) for party in _parties)
