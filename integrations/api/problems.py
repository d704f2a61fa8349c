"""RFC 9457 problem details: the one shape of every error the API answers."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpResponse
from django.utils.translation import gettext_noop
from ninja import Schema

MEDIA_TYPE = "application/problem+json"

# code: (status, title). The type of a problem is the docs page's anchor for it.
# Titles are answered in English; /api/docs/ shows them translated.
PROBLEMS: dict[str, tuple[int, str]] = {
    "bad-request": (400, gettext_noop("The request is malformed")),
    "invalid-cursor": (400, gettext_noop("The cursor is not one this API gave")),
    "unauthenticated": (401, gettext_noop("A valid API key is required")),
    "key-revoked": (401, gettext_noop("The API key was revoked")),
    "key-expired": (401, gettext_noop("The API key has expired")),
    "insufficient-scope": (403, gettext_noop("The API key lacks the scope this operation needs")),
    "not-a-system": (403, gettext_noop("The API key speaks for no connected system")),
    "not-found": (404, gettext_noop("Not found")),
    "unknown-subject": (404, gettext_noop("No such person")),
    "unknown-purpose": (404, gettext_noop("No such purpose")),
    "notice-stale": (409, gettext_noop("The notice shown is not the current one")),
    "purpose-retired": (409, gettext_noop("The purpose is no longer offered")),
    "not-on-consent": (422, gettext_noop("The purpose does not rest on consent")),
    "no-notice": (409, gettext_noop("The purpose has no published notice")),
    "task-closed": (409, gettext_noop("The task is already completed, failed or cancelled")),
    "validation": (422, gettext_noop("The request does not match the schema")),
    "rate-limited": (429, gettext_noop("Too many requests for this API key")),
}


class Problem(Schema):
    """An error (RFC 9457). `type` links to the explanation on /api/docs/."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict] | None = None
    scope: str | None = None
    current_notice_version: int | None = None


def problem_type(code: str) -> str:
    return f"{settings.SITE_URL}/api/docs/#problem-{code}"


class ApiProblem(Exception):
    """Raised anywhere in an operation (or its authentication): answered as a
    problem document, and nothing the operation began is kept."""

    def __init__(self, code: str, detail: str = "", *, headers: dict | None = None, **extra):
        self.code = code
        self.status, self.title = PROBLEMS[code]
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra
        super().__init__(self.detail)


def problem_response(problem: ApiProblem) -> HttpResponse:
    body = {
        "type": problem_type(problem.code),
        "title": problem.title,
        "status": problem.status,
        "detail": str(problem.detail),
        **problem.extra,
    }
    response = HttpResponse(
        json.dumps(body, ensure_ascii=False), status=problem.status, content_type=MEDIA_TYPE
    )
    for name, value in problem.headers.items():
        response[name] = value
    return response
