"""/api/v1/rights/: the tasks that rights requests gave a connected system.

The calling key is the system's own (ConnectedSystem.api_key), with the scope
rights:handle: a system sees and answers its own tasks only; another
system's task is answered 404, as one that does not exist. Every call is in
the call log with the person it concerned (middleware.py); the task keeps the
key that answered it. The changes are integrations.systems' services."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from django.http import HttpRequest
from django.utils.translation import gettext_noop
from ninja import Field, Path, Query, Router, Schema

from integrations import systems
from integrations.api.auth import KeyAuth
from integrations.api.problems import ApiProblem, Problem
from integrations.models import ApiScope, ConnectedSystem, SystemTask

router = Router(tags=["rights"])

AUTH = KeyAuth(ApiScope.RIGHTS_HANDLE)
EXTRA = {"x-scope": ApiScope.RIGHTS_HANDLE.value}
EXAMPLE_TASK = "8d7f2a4e-5b1c-4e0a-9f3d-2c6b1a0e9d47"
TaskId = Annotated[uuid.UUID, Path(example=EXAMPLE_TASK)]
ERRORS = {400: Problem, 401: Problem, 403: Problem, 404: Problem, 422: Problem, 429: Problem}
TEXT = r"^[^\x00]*$"  # PostgreSQL stores no NUL in text


class TaskOut(Schema):
    id: uuid.UUID = Field(description=gettext_noop("The task's id."))
    request: uuid.UUID = Field(description=gettext_noop("The rights request's id."))
    kind: Literal["copy", "erasure", "objection", "restriction"]
    subject_id: uuid.UUID = Field(
        description=gettext_noop("The person, by the portal's opaque id.")
    )
    purposes: list[str] = Field(
        description=gettext_noop(
            "For an objection or a restriction: the purposes' keys it concerns."
        )
    )
    due_at: datetime = Field(
        description=gettext_noop(
            "The request's deadline, which covers every system (UTC, to the second)."
        )
    )
    status: Literal["open", "acknowledged", "completed", "failed", "cancelled"]
    acknowledged_at: datetime | None
    completed_at: datetime | None
    done: str = Field(description=gettext_noop("What the system said it did."))
    failure: str = Field(description=gettext_noop("Why it could not, when it reported a failure."))


class TaskList(Schema):
    items: list[TaskOut]


class TasksParams(Schema):
    status: Literal["open", "all"] = Field(
        "open",
        description=gettext_noop(
            "open: every task not yet completed or cancelled (failed included)."
        ),
    )
    limit: int = Field(
        500, ge=1, le=1000, description=gettext_noop("At most this many, earliest due first.")
    )


class CompleteIn(Schema):
    done: str = Field(
        min_length=1,
        max_length=systems.DONE_MAX,
        pattern=TEXT,
        description=gettext_noop("What was done, in words a person reads."),
        examples=["Deleted the customer record and 3 orders' addresses."],
    )
    data: dict[str, Any] | None = Field(
        None,
        description=gettext_noop(
            "For a copy: what the system holds about the person (any JSON object)."
        ),
        examples=[{"orders": [{"id": "A-1001", "total": "42.00"}]}],
    )


class FailIn(Schema):
    reason: str = Field(
        min_length=1,
        max_length=systems.REASON_MAX,
        pattern=TEXT,
        examples=["The customer record is locked by an open dispute."],
    )


def _system(request: HttpRequest) -> ConnectedSystem:
    system = systems.system_for_key(request.auth.pk)
    if system is None:
        raise ApiProblem(
            "not-a-system",
            "This API key is not linked to a connected system: staff link it in the admin.",
        )
    return system


def _task(request: HttpRequest, task_id: uuid.UUID) -> SystemTask:
    system = _system(request)
    task = (
        SystemTask.objects.filter(uuid=task_id, system=system)
        .select_related("request", "system")
        .first()
    )
    if task is None:
        raise ApiProblem("not-found", "This system has no such task.")
    request.api_subject_id = task.request.subject_id
    return task


def _out(task: SystemTask) -> dict:
    payload = systems.task_payload(task)
    return {
        "id": task.uuid,
        "request": payload["request"],
        "kind": task.kind,
        "subject_id": payload["subject_id"],
        "purposes": payload["purposes"],
        "due_at": systems.utc_moment(task.request.due_at),
        "status": task.status,
        "acknowledged_at": task.acknowledged_at,
        "completed_at": task.completed_at,
        "done": task.done,
        "failure": task.failure,
    }


def _fresh(task: SystemTask) -> dict:
    """The task as it is now (the service returns it under its lock)."""
    again = SystemTask.objects.select_related("request", "system").get(pk=task.pk)
    return _out(again)


def _answer(call):
    try:
        return call()
    except systems.TaskClosed as exc:
        raise ApiProblem("task-closed", str(exc)) from None
    except systems.SystemsError as exc:
        raise ApiProblem("validation", str(exc)) from None


@router.get(
    "/tasks",
    response={200: TaskList, **ERRORS},
    auth=AUTH,
    operation_id="rights_tasks",
    url_name="rights_tasks",
    summary=gettext_noop("The tasks rights requests gave this system"),
    description=gettext_noop("Only the calling key's system's tasks, earliest due first."),
    openapi_extra=EXTRA,
)
def rights_tasks(request: HttpRequest, params: Query[TasksParams]):
    system = _system(request)
    rows = systems.tasks_of(system, waiting_only=params.status == "open")
    rows = rows.order_by("request__due_at", "pk")[: params.limit]
    return {"items": [_out(task) for task in rows]}


@router.get(
    "/tasks/{task}",
    response={200: TaskOut, **ERRORS},
    auth=AUTH,
    operation_id="rights_task",
    url_name="rights_task",
    summary=gettext_noop("One task of this system"),
    openapi_extra=EXTRA,
)
def rights_task(request: HttpRequest, task: TaskId):
    return _out(_task(request, task))


@router.post(
    "/tasks/{task}/acknowledge",
    response={200: TaskOut, **ERRORS, 409: Problem},
    auth=AUTH,
    operation_id="rights_task_acknowledge",
    url_name="rights_task_acknowledge",
    summary=gettext_noop("Say that the system has the task in hand"),
    description=gettext_noop(
        "Again on an acknowledged task: no change. On a closed or failed one: 409."
    ),
    openapi_extra=EXTRA,
)
def rights_task_acknowledge(request: HttpRequest, task: TaskId):
    found = _task(request, task)
    _answer(lambda: systems.task_acknowledge(task=found, api_key_id=request.auth.pk))
    return _fresh(found)


@router.post(
    "/tasks/{task}/complete",
    response={200: TaskOut, **ERRORS, 409: Problem},
    auth=AUTH,
    operation_id="rights_task_complete",
    url_name="rights_task_complete",
    summary=gettext_noop("Record what was done (and, for a copy, what the system holds)"),
    description=gettext_noop(
        "Completing a completed or cancelled task: 409 task-closed. When it is the "
        "request's last task, the request completes once the portal's part is done."
    ),
    openapi_extra=EXTRA,
)
def rights_task_complete(request: HttpRequest, task: TaskId, body: CompleteIn):
    found = _task(request, task)
    _answer(
        lambda: systems.task_complete(
            task=found, done=body.done, data=body.data, api_key_id=request.auth.pk
        )
    )
    return _fresh(found)


@router.post(
    "/tasks/{task}/fail",
    response={200: TaskOut, **ERRORS, 409: Problem},
    auth=AUTH,
    operation_id="rights_task_fail",
    url_name="rights_task_fail",
    summary=gettext_noop("Report that the system could not do it, and why"),
    description=gettext_noop("The request still waits for the system; staff see the failure."),
    openapi_extra=EXTRA,
)
def rights_task_fail(request: HttpRequest, task: TaskId, body: FailIn):
    found = _task(request, task)
    _answer(lambda: systems.task_fail(task=found, reason=body.reason, api_key_id=request.auth.pk))
    return _fresh(found)
