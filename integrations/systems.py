"""Rights requests carried to the company's connected systems.

- Fan-out (rights.waiting's `reach`, called by rights.services in the
  transaction of the change): a copy, an objection or a restriction reaches
  its systems when it is opened; an erasure when it is carried out, since the
  person can cancel it until then. Which systems: for a copy or an
  erasure, every active system that handles the kind; for an objection or a
  restriction, those that also hold a data category that one of the request's
  purposes uses. Each gets one SystemTask. A system with a webhook endpoint is
  sent a signed `rights_request.assigned` message through the one outbox, to
  its own endpoint only (whatever events that endpoint chose); a system
  without one has its task wait in the admin, with the person's addresses
  for whoever carries it out (cleared when the task ends: for an erasure they
  are gone from the portal already).
- Answers: the system through the API with its own key (integrations.api.rights),
  or staff in the admin for it (acting_user, with an audit row). When the last
  task of a request is confirmed, rights.services.request_systems_answered
  decides whether the request is complete.
- rights asks who a request still waits for through rights.waiting, which this
  module fills from IntegrationsConfig.ready(); a request cancelled or refused
  calls off its tasks the same way, and each system with an endpoint whose
  task is called off is sent `rights_request.cancelled` (to its own endpoint,
  in that transaction), so that it stops before its next API call meets a
  409. rights never imports this module.
- Times a system reads (due_at, cancelled_at) are UTC, "...Z", to the second,
  whichever time zone the value was made in.

Lock order: the rights request, then its tasks (two systems confirming the
last two tasks at once must not each see the other still open).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from integrations.models import ApiKey, ApiScope, ConnectedSystem, SystemTask, TaskKind
from integrations.models import TaskStatus as Status
from integrations.models.systems import WAITING_STATUSES
from integrations.models.webhooks import WebhookEndpoint, WebhookMessage
from portal import events
from rights import audit
from rights import services as rights_services
from rights.models import AuditAction, Kind, RightsRequest

logger = logging.getLogger(__name__)

ASSIGNED = events.RIGHTS_REQUEST_ASSIGNED
CANCELLED = events.RIGHTS_REQUEST_CANCELLED
DONE_MAX = 5000
REASON_MAX = 5000
# What a system may return for a person's copy, as JSON text.
DATA_MAX_BYTES = 1_000_000

# The kind a system reads, per kind of rights request (rectification reaches none).
TASK_KIND = {
    Kind.ACCESS: TaskKind.COPY,
    Kind.ERASURE: TaskKind.ERASURE,
    Kind.OBJECTION: TaskKind.OBJECTION,
    Kind.RESTRICTION: TaskKind.RESTRICTION,
}


class SystemsError(ValueError):
    """A change the rules refuse; the message is for staff or the calling system."""


class TaskClosed(SystemsError):
    """The task is already completed or cancelled (the API answers 409)."""


def _staff(acting_user) -> None:
    if acting_user is None or not acting_user.is_staff:
        raise SystemsError(_("Only staff can do this."))


# Declaring systems ------------------------------------------------------------------


def _clean_system(*, name: str, key: str, kinds: list[str], api_key: ApiKey | None) -> tuple:
    name = (name or "").strip()
    key = (key or "").strip()
    if not name:
        raise SystemsError(_("Give the system a name."))
    if not key:
        raise SystemsError(_("Give the system a key."))
    unknown = [kind for kind in kinds if kind not in TaskKind.values]
    if unknown:
        raise SystemsError(_("Unknown kinds of request: %(kinds)s") % {"kinds": ", ".join(unknown)})
    if api_key is not None and (
        ApiScope.RIGHTS_HANDLE not in api_key.scopes or api_key.revoked_at is not None
    ):
        raise SystemsError(
            _("The system's API key must be in use and hold the scope “rights:handle”.")
        )
    return name, key, [kind for kind in TaskKind.values if kind in kinds]


def system_save(
    *,
    system: ConnectedSystem | None = None,
    name: str,
    key: str,
    kinds: list[str],
    description: str = "",
    contact_email: str = "",
    data_categories=(),
    webhook_endpoint: WebhookEndpoint | None = None,
    api_key: ApiKey | None = None,
    is_active: bool = True,
    acting_user,
) -> ConnectedSystem:
    """Declare a system, or change one (system given), with its audit row."""
    _staff(acting_user)
    name, key, kinds = _clean_system(name=name, key=key, kinds=list(kinds), api_key=api_key)
    with transaction.atomic():
        if system is None or system.pk is None:
            system = ConnectedSystem()
        else:
            system = ConnectedSystem.objects.select_for_update().get(pk=system.pk)
        if ConnectedSystem.objects.filter(key=key).exclude(pk=system.pk).exists():
            raise SystemsError(_("Another system already has this key."))
        if (
            api_key is not None
            and ConnectedSystem.objects.filter(api_key=api_key).exclude(pk=system.pk).exists()
        ):
            raise SystemsError(_("This API key already speaks for another system."))
        system.name, system.key, system.kinds = name[:100], key, kinds
        system.description = (description or "").strip()
        system.contact_email = (contact_email or "").strip()
        system.webhook_endpoint, system.api_key = webhook_endpoint, api_key
        system.is_active = is_active
        system.save()
        system.data_categories.set(list(data_categories))
        audit.record(
            acting_user=acting_user,
            action=AuditAction.SYSTEM_SAVE,
            target=audit.target_of(system),
            details={
                "kinds": kinds,
                "data_categories": sorted(c.key for c in system.data_categories.all()),
                "webhook_endpoint": str(webhook_endpoint.uuid) if webhook_endpoint else None,
                "api_key": api_key.prefix if api_key else None,
                "is_active": is_active,
            },
        )
    return system


# Fan-out ----------------------------------------------------------------------------


def concerned_systems(request: RightsRequest) -> list[ConnectedSystem]:
    """The active systems a request reaches (see the module's docstring)."""
    kind = TASK_KIND.get(request.kind)
    if kind is None:
        return []
    systems = ConnectedSystem.objects.filter(is_active=True)
    if request.kind in (Kind.OBJECTION, Kind.RESTRICTION):
        systems = systems.filter(data_categories__purposes__rights_requests=request).distinct()
    return [
        s
        for s in systems.select_related("webhook_endpoint").order_by("name", "pk")
        if kind in s.kinds
    ]


def utc_moment(moment: datetime) -> datetime:
    """A time as systems read it: in UTC, to the second. A request made in
    this process holds its due_at in the portal's zone (-03:00), one read
    from the database in UTC: the same instant must read the same."""
    return moment.astimezone(UTC).replace(microsecond=0)


def utc_text(moment: datetime) -> str:
    """utc_moment in ISO 8601 with "Z", as the API's JSON writes it too."""
    return utc_moment(moment).isoformat().replace("+00:00", "Z")


def task_payload(task: SystemTask) -> dict:
    """What a system reads of a task: the `data` of a rights_request.assigned
    message, and the fields the API's Task shares with it."""
    request = task.request
    return {
        "task": str(task.uuid),
        "request": str(request.uuid),
        "kind": task.kind,
        "subject_id": str(request.subject_id),
        "purposes": sorted(p.key for p in request.purposes.all()),
        "due_at": utc_text(request.due_at),
        "system": task.system.key,
    }


def cancelled_payload(task: SystemTask, *, reason: str, now: datetime) -> dict:
    """The `data` of a rights_request.cancelled message: which task is called
    off, and why (rights.waiting.CLOSED_REASONS)."""
    return {
        "task": str(task.uuid),
        "request": str(task.request.uuid),
        "kind": task.kind,
        "subject_id": str(task.request.subject_id),
        "reason": reason,
        "cancelled_at": utc_text(now),
        "system": task.system.key,
    }


def _send(task: SystemTask, kind: str, data: dict, *, now: datetime) -> None:
    """The signed message to the system's own endpoint, through the outbox, in
    the caller's transaction (the same body on every retry)."""
    from integrations.webhooks.delivery import delivery_queue

    body = json.dumps(
        {"type": kind, "timestamp": now.isoformat(), "data": data},
        separators=(",", ":"),
        sort_keys=True,
    )
    message = WebhookMessage.objects.create(event_type=kind, body=body, created_at=now)
    delivery_queue(message=message, endpoint=task.system.webhook_endpoint)


def tasks_fan_out(
    *, request: RightsRequest, emails=(), now: datetime | None = None
) -> list[SystemTask]:
    """One task per system the request concerns (none twice), each sent to
    its system's endpoint when it has one; in the caller's transaction."""
    now = now or timezone.now()
    addresses = ", ".join(sorted({e.lower() for e in emails if e}))
    kind = TASK_KIND.get(request.kind)
    made = []
    already = set(SystemTask.objects.filter(request=request).values_list("system_id", flat=True))
    for system in concerned_systems(request):
        if system.pk in already:
            continue
        task = SystemTask.objects.create(
            request=request,
            system=system,
            kind=kind,
            created_at=now,
            # Only a person needs the address; a system finds people by subject id.
            person_emails=addresses if system.webhook_endpoint is None else "",
        )
        task.request, task.system = request, system
        if system.webhook_endpoint is not None:
            _send(task, ASSIGNED, task_payload(task), now=now)
        made.append(task)
    if made:
        logger.info("request %s sent to %s", request.uuid, ", ".join(t.system.key for t in made))
    return made


# What rights asks (rights.waiting) ---------------------------------------------------


def reach(request: RightsRequest, *, emails=(), now: datetime) -> None:
    tasks_fan_out(request=request, emails=emails, now=now)


def waiting_on(request_ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    rows = (
        SystemTask.objects.filter(request_id__in=request_ids, status__in=WAITING_STATUSES)
        .order_by("system__name", "pk")
        .values_list("request_id", "system__name")
    )
    for request_id, name in rows:
        found.setdefault(request_id, []).append(name)
    return found


def last_answer_at(request_id: int) -> datetime | None:
    return SystemTask.objects.filter(request_id=request_id, status=Status.COMPLETED).aggregate(
        last=Max("completed_at")
    )["last"]


def listed(request_id: int) -> list[dict]:
    from django.urls import reverse

    rows = (
        SystemTask.objects.filter(request_id=request_id)
        .select_related("system")
        .order_by("system__name", "pk")
    )
    return [
        {
            "system": task.system.name,
            "kind": task.get_kind_display(),
            "status": task.get_status_display(),
            "status_code": task.status,
            "manual": task.system.webhook_endpoint_id is None,
            "done": task.done,
            "failure": task.failure,
            "completed_at": task.completed_at,
            "url": reverse("admin:integrations_systemtask_change", args=[task.pk]),
        }
        for task in rows
    ]


def tasks_cancel(request_ids: list[int], now: datetime, *, reason: str) -> int:
    """The requests ended without their systems (cancelled, refused, or ended
    by the person's erasure): their waiting tasks are called off, and each
    system with an endpoint is told, in the caller's transaction (a rollback
    tells nobody). The caller holds the requests' locks, which a system's
    answer takes first: no task is answered between the read and the update."""
    waiting = SystemTask.objects.filter(request_id__in=request_ids, status__in=WAITING_STATUSES)
    told = list(
        waiting.filter(system__webhook_endpoint__isnull=False)
        .select_related("request", "system__webhook_endpoint")
        .select_for_update(of=("self",))
        .order_by("pk")
    )
    count = waiting.update(status=Status.CANCELLED, cancelled_at=now, person_emails="")
    for task in told:
        _send(task, CANCELLED, cancelled_payload(task, reason=reason, now=now), now=now)
    if told:
        logger.info("tasks called off (%s): told %s", reason, ", ".join(t.system.key for t in told))
    return count


# Answers ----------------------------------------------------------------------------


def _who(acting_user, api_key_id: int | None) -> None:
    if api_key_id is None:
        _staff(acting_user)
    elif acting_user is not None:
        raise SystemsError("a task is answered by staff or by a system's key, not both")


def _locked(task: SystemTask) -> tuple[RightsRequest, SystemTask]:
    """The task's request, then the task, each under its row lock."""
    request_id = SystemTask.objects.filter(pk=task.pk).values_list("request_id", flat=True).get()
    request = RightsRequest.objects.select_for_update().get(pk=request_id)
    locked = SystemTask.objects.select_for_update().select_related("system").get(pk=task.pk)
    locked.request = request
    return request, locked


def _closed(task: SystemTask) -> TaskClosed:
    if task.status == Status.CANCELLED:
        return TaskClosed(_("This task was cancelled: the request ended."))
    return TaskClosed(_("This task is already completed."))


def _audit(task: SystemTask, action: str, *, acting_user, **details) -> None:
    audit.record(
        acting_user=acting_user,
        action=action,
        request=task.request,
        target=audit.target_of(task),
        details={"system": task.system.key, "status": task.status, **details},
    )


def task_acknowledge(*, task: SystemTask, api_key_id: int) -> SystemTask:
    """The system (its key) says it has the task in hand. Again: nothing
    changes. (Staff have nothing to acknowledge: they record the outcome.)"""
    with transaction.atomic():
        _request, locked = _locked(task)
        if locked.status == Status.ACKNOWLEDGED:
            return locked
        if locked.status != Status.OPEN:
            if locked.status == Status.FAILED:
                raise TaskClosed(_("This task was reported failed: complete it once done."))
            raise _closed(locked)
        locked.status = Status.ACKNOWLEDGED
        locked.acknowledged_at = timezone.now()
        locked.save(update_fields=["status", "acknowledged_at"])
    return locked


def _clean_text(text: str, *, limit: int, missing: str) -> str:
    text = (text or "").strip()
    if not text:
        raise SystemsError(missing)
    if len(text) > limit:
        raise SystemsError(_("Keep it under %(limit)s characters.") % {"limit": limit})
    if "\x00" in text:
        raise SystemsError(_("The text holds a character that cannot be stored."))
    return text


def _clean_data(data) -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SystemsError(_("The data must be a JSON object."))
    text = json.dumps(data, ensure_ascii=False)
    if len(text.encode()) > DATA_MAX_BYTES:
        raise SystemsError(
            _("The data is too large (at most %(limit)s bytes).") % {"limit": DATA_MAX_BYTES}
        )
    if "\\u0000" in text:
        raise SystemsError(_("The data holds a character that cannot be stored."))
    return data


def task_complete(
    *,
    task: SystemTask,
    done: str,
    data: dict | None = None,
    acting_user=None,
    api_key_id: int | None = None,
    now: datetime | None = None,
) -> SystemTask:
    """The system (its key) or staff for it (acting_user) record what was done,
    and for a copy what the system holds. A failed task can be completed once
    it is done after all. The request's last task confirmed: rights decides
    whether the request is complete."""
    _who(acting_user, api_key_id)
    done = _clean_text(done, limit=DONE_MAX, missing=_("Say what was done."))
    data = _clean_data(data)
    now = now or timezone.now()
    with transaction.atomic():
        request, locked = _locked(task)
        if locked.status in (Status.COMPLETED, Status.CANCELLED):
            raise _closed(locked)
        locked.status = Status.COMPLETED
        locked.completed_at = now
        locked.done, locked.data = done, data
        locked.completed_by = acting_user
        locked.completed_by_key_id = api_key_id
        locked.person_emails = ""  # done: nobody needs to find the person any more
        locked.save(
            update_fields=[
                "status", "completed_at", "done", "data", "completed_by", "completed_by_key",
                "person_emails",
            ]
        )  # fmt: skip
        if acting_user is not None:
            _audit(locked, AuditAction.SYSTEM_TASK_COMPLETE, acting_user=acting_user)
        if not SystemTask.objects.filter(request=request, status__in=WAITING_STATUSES).exists():
            rights_services.request_systems_answered(
                request=request, acting_user=acting_user, now=now
            )
    return locked


def task_fail(
    *, task: SystemTask, reason: str, acting_user=None, api_key_id: int | None = None
) -> SystemTask:
    """The system could not do it, and says why. The request still waits for
    it: staff see the failure and settle it (the system tries again and
    completes, or a person does it and records it)."""
    _who(acting_user, api_key_id)
    reason = _clean_text(reason, limit=REASON_MAX, missing=_("Say why it could not be done."))
    with transaction.atomic():
        _request, locked = _locked(task)
        if locked.status not in (Status.OPEN, Status.ACKNOWLEDGED):
            if locked.status == Status.FAILED:
                raise TaskClosed(_("This task was already reported failed."))
            raise _closed(locked)
        locked.status = Status.FAILED
        locked.failed_at = timezone.now()
        locked.failure = reason
        locked.completed_by = acting_user
        locked.completed_by_key_id = api_key_id
        locked.save(
            update_fields=["status", "failed_at", "failure", "completed_by", "completed_by_key"]
        )
        if acting_user is not None:
            _audit(locked, AuditAction.SYSTEM_TASK_FAIL, acting_user=acting_user)
    return locked


# Reads ------------------------------------------------------------------------------


def system_for_key(api_key_id: int) -> ConnectedSystem | None:
    """The system a key speaks for (active or not: a paused system still answers)."""
    return ConnectedSystem.objects.filter(api_key_id=api_key_id).first()


def tasks_of(system: ConnectedSystem, *, waiting_only: bool):
    rows = SystemTask.objects.filter(system=system)
    if waiting_only:
        rows = rows.filter(status__in=WAITING_STATUSES)
    return rows.select_related("request", "system").prefetch_related("request__purposes")


# The person's copy, and erasure -------------------------------------------------------


def _copy_rows(person):
    return SystemTask.objects.filter(request__subject_id=person.subject_id)


def _copy_section(person):
    rows = _copy_rows(person).select_related("system", "request").order_by("created_at", "pk")
    for task in rows.iterator(chunk_size=200):
        yield {
            "system": task.system.name,
            "request": str(task.request.uuid),
            "kind": task.kind,
            "status": task.status,
            "sent_at": task.created_at,
            "completed_at": task.completed_at,
            "done": task.done or None,
            "failure": task.failure or None,
            "data": task.data or None,
        }


def _answers(person):
    return SystemTask.objects.filter(request__subject_id__in=person.subject_ids).filter(
        ~Q(data={}) | ~Q(done="") | ~Q(failure="") | ~Q(person_emails="")
    )


def _answers_erase(person, rows) -> int:
    """What the systems returned about the person (their copy's data, texts
    that may quote them) goes; each task stays as proof that it was done.
    (The erasure's own tasks are made after this, with the addresses a
    person needs to carry them out.)"""
    return rows.update(data={}, done="", failure="", person_emails="")


def register() -> None:
    """From IntegrationsConfig.ready()."""
    from rights import erasure, export_sections, waiting

    waiting.register(
        waiting.Party(
            reach=reach,
            waiting_on=waiting_on,
            last_answer_at=last_answer_at,
            closed=tasks_cancel,
            listed=listed,
        )
    )
    S = export_sections
    export_sections.register(
        S.Section(
            "connected_systems",
            gettext_lazy("What our other systems did and returned"),
            gettext_lazy(
                "Each of the company's other systems that one of your requests reached: what "
                "it was asked, what it did, and for a copy what it holds about you."
            ),
            (
                S.Column("system", S.STRING, gettext_lazy("System")),
                S.Column("request", S.STRING, gettext_lazy("Request id")),
                S.Column("kind", S.STRING, gettext_lazy("What it was asked")),
                S.Column("status", S.STRING, gettext_lazy("Status")),
                S._datetime("sent_at", gettext_lazy("Sent on")),
                S._datetime("completed_at", gettext_lazy("Confirmed on")),
                S.Column("done", S.STRING, gettext_lazy("What it did")),
                S.Column("failure", S.STRING, gettext_lazy("Why it could not")),
                S.Column("data", S.JSON, gettext_lazy("What it holds about you")),
            ),
            _copy_section,
            count=lambda person: _copy_rows(person).count(),
        ),
        after="api_calls",
    )
    # The system's answers can only be cleared after the request is emptied:
    # the key sorts before "rights-requests" to no harm, both run in one transaction.
    erasure.register(
        erasure.Holder(
            "system-answers",
            gettext_lazy("What our other systems returned about you (each task stays as proof)"),
            _answers,
            _answers_erase,
        )
    )


# The demo ---------------------------------------------------------------------------


def seed_demo_systems(
    *, shop_endpoint: WebhookEndpoint | None = None, shop_key: ApiKey | None = None
) -> list[ConnectedSystem]:
    """The demo's two systems (idempotent): the shop, reached by webhook and
    answering through the API with its key, and a CRM that has no endpoint,
    whose tasks a person carries out and records in the admin."""
    from consents.models import DataCategory

    if shop_key is not None and ApiScope.RIGHTS_HANDLE not in shop_key.scopes:
        # The shop could not answer its tasks: say so now, not at its first call.
        raise SystemsError("the demo shop's API key needs the scope rights:handle")
    specs = [
        (
            "shop",
            "Shop",
            "The online shop: orders, addresses, interests and browsing.",
            ["name", "email", "postal-address", "orders", "interests", "browsing"],
            shop_endpoint,
            shop_key,
        ),
        (
            "crm",
            "CRM",
            "Customer service's CRM: contacts and survey answers. No endpoint: its tasks "
            "wait in the admin for a person to carry out and record.",
            ["name", "email", "survey-answers"],
            None,
            None,
        ),
    ]
    made = []
    with transaction.atomic():
        for key, name, description, categories, endpoint, api_key in specs:
            system, _created = ConnectedSystem.objects.update_or_create(
                key=key,
                defaults={
                    "name": name,
                    "description": description,
                    "contact_email": f"{key}@example.com",
                    "kinds": list(TaskKind.values),
                    "webhook_endpoint": endpoint,
                    "api_key": api_key,
                    "is_active": True,
                },
            )
            system.data_categories.set(DataCategory.objects.filter(key__in=categories))
            made.append(system)
    return made
