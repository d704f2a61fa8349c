"""Domain events: the one place where an app says "this happened" for others
to act on (webhooks, later other integrations), without importing them.

A service calls publish() inside its own transaction, after its change:

    events.publish(events.CONSENT_GRANTED, {"subject_id": ..., "purpose": ...})

and every subscriber runs there and then, in that transaction, so that what
it writes (outbox rows) commits or rolls back with the change: a rolled-back
change announces nothing, and a committed one cannot be lost. Subscribers
are registered from an AppConfig.ready() (integrations registers the
webhooks' fan-out). A subscriber must be quick: it writes rows, it never
contacts anything.

Payloads are minimal and never name a person: the ledger's opaque subject id,
a purpose's key, a notice's version, a decision, a time. Times are ISO 8601.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

CONSENT_GRANTED = "consent.granted"
CONSENT_WITHDRAWN = "consent.withdrawn"
CONSENT_REFUSED = "consent.refused"
CONSENT_LAPSED = "consent.lapsed"
GPC_OPT_OUT = "consent.gpc_opt_out"
POLICY_VERSION_PUBLISHED = "policy.version_published"
RIGHTS_REQUEST_OPENED = "rights_request.opened"
RIGHTS_REQUEST_DUE = "rights_request.due"
RIGHTS_REQUEST_COMPLETED = "rights_request.completed"
# Sent only to the connected system a request's task is assigned to, at its own
# endpoint (integrations.systems), never published to every endpoint; and
# likewise when that task is called off (the request cancelled or refused).
RIGHTS_REQUEST_ASSIGNED = "rights_request.assigned"
RIGHTS_REQUEST_CANCELLED = "rights_request.cancelled"
ACCOUNT_ERASED = "account.erased"

# Every kind, in the order staff see them, with what it means.
KINDS = {
    CONSENT_GRANTED: _("Consent granted"),
    CONSENT_WITHDRAWN: _("Consent withdrawn"),
    CONSENT_REFUSED: _("Consent refused"),
    CONSENT_LAPSED: _("Consent lapsed (not confirmed after a change, or purpose retired)"),
    GPC_OPT_OUT: _("Opted out by Global Privacy Control"),
    POLICY_VERSION_PUBLISHED: _("Policy version published"),
    RIGHTS_REQUEST_OPENED: _("Rights request opened"),
    RIGHTS_REQUEST_DUE: _("Rights request due soon or overdue (daily)"),
    RIGHTS_REQUEST_COMPLETED: _("Rights request completed"),
    RIGHTS_REQUEST_ASSIGNED: _(
        "Rights request assigned to a connected system (sent to that system's endpoint only)"
    ),
    RIGHTS_REQUEST_CANCELLED: _(
        "Rights request's task called off for a connected system (the request was cancelled "
        "or refused; sent to that system's endpoint only)"
    ),
    ACCOUNT_ERASED: _("Account erased"),
}


@dataclass(frozen=True)
class Event:
    kind: str
    payload: dict
    at: datetime = field(default_factory=timezone.now)


Subscriber = Callable[[Event], None]
_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> None:
    """Call `subscriber(event)` for every event published (from an
    AppConfig.ready()). Subscribing the same function again does nothing."""
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def unsubscribe(subscriber: Subscriber) -> None:
    if subscriber in _subscribers:
        _subscribers.remove(subscriber)


def _wants(subscriber: Subscriber, kind: str) -> bool:
    wants = getattr(subscriber, "wants", None)
    return wants is None or wants(kind)


def wanted(kind: str) -> bool:
    """Whether publishing `kind` would do anything. A subscriber may say which
    kinds it wants, cheaply (a `wants(kind)` attribute that runs no query as a
    rule); one that does not say wants them all. A caller that would open a
    transaction only to publish in it skips both when nobody wants the kind:
    a consent granted is then one statement in autocommit."""
    return any(_wants(subscriber, kind) for subscriber in _subscribers)


def publish(kind: str, payload: dict, *, at: datetime | None = None) -> Event:
    """Tell every subscriber, inside the caller's transaction."""
    if kind not in KINDS:
        raise LookupError(f"unknown event kind {kind!r}")
    event = Event(kind=kind, payload=payload, at=at or timezone.now())
    if not _subscribers:
        return event
    if not transaction.get_connection().in_atomic_block:
        # Outside a transaction a subscriber's rows would commit apart from the
        # change: a crash between the two would lose the event or invent one.
        raise RuntimeError("events are published inside the transaction of their change")
    for subscriber in list(_subscribers):
        if _wants(subscriber, kind):
            subscriber(event)
    return event


def consent_kind(*, decision: str, method: str) -> str:
    """The event a ledger decision is: a withdrawal by expiry is a lapse, one by
    Global Privacy Control an opt-out; every payload also carries the decision
    itself, so a receiver that stops processing on "withdrawn" sees all three."""
    if decision == "granted":
        return CONSENT_GRANTED
    if decision == "refused":
        return CONSENT_REFUSED
    if method == "expiry":
        return CONSENT_LAPSED
    if method == "gpc":
        return GPC_OPT_OUT
    return CONSENT_WITHDRAWN
