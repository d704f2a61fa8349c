"""The operations of /api/v1/, and the NinjaAPI that serves them with their
OpenAPI 3.1 document at /api/schema/.

Each operation names the scope its key needs (KeyAuth), notes the person and
the purpose it concerned on the request for the call log (middleware.py),
and answers errors as problem documents (problems.py).

The document stays in English (one document for every reader); its texts are
marked for translation with gettext_noop, and /api/docs/ shows them in the
reader's language (docs.py)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext_noop
from ninja import Field, NinjaAPI, Path, Query, Schema, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError

from consents.views import privacy_document
from integrations.api import selectors, services
from integrations.api.auth import KeyAuth
from integrations.api.problems import MEDIA_TYPE, ApiProblem, Problem, problem_response
from integrations.api.rights import router as rights_router
from integrations.models import ApiScope

DESCRIPTION = """\
The consent API of this Clareza portal, for the company's other systems.

Every operation needs an API key (`Authorization: Bearer <key>`), which staff
create in the admin with the scopes it may use. Errors are RFC 9457 problem
documents (`application/problem+json`). Emails never go in a URL: a person is
looked up by address through a POST body.
"""


class ClarezaApi(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        """ninja writes every response as application/json; errors here are
        problem documents, and the document says so."""
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if int(status) >= 400 and "application/json" in content:
                        content[MEDIA_TYPE] = content.pop("application/json")
        return schema


api = ClarezaApi(
    title="Clareza API",
    version="1",
    description=DESCRIPTION,
    openapi_url="/schema/",
    docs_url=None,  # the readable page is docs.py's: no CDN, no inline script
    urls_namespace="api",
)


# Errors, all in one shape ---------------------------------------------------------


@api.exception_handler(ApiProblem)
def _problem(request: HttpRequest, exc: ApiProblem) -> HttpResponse:
    return problem_response(exc)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return problem_response(
        ApiProblem(
            "unauthenticated",
            "Send an API key as `Authorization: Bearer <key>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    )


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = [
        {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", ""))}
        for error in exc.errors
    ]
    return problem_response(ApiProblem("validation", errors=errors))


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    code = {400: "bad-request", 404: "not-found", 422: "validation"}.get(exc.status_code)
    if code is None:
        raise exc
    return problem_response(ApiProblem(code, str(exc)))


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return problem_response(ApiProblem("not-found"))


# Examples in the document: a reader's starting point, and the values the
# schemathesis test gives its data (tests/integrations/test_schemathesis.py).
EXAMPLE_SUBJECT = "3f0c6b1e-8f6a-4d2b-9a51-0c1e7d2b5a90"
EXAMPLE_PURPOSE = "newsletter"
SubjectId = Annotated[uuid.UUID, Path(example=EXAMPLE_SUBJECT)]
# A purpose's key is a slug; a cursor is base64url. Checked before any query:
# PostgreSQL refuses a NUL byte in a text parameter with an error, not an answer.
SLUG = r"^[-a-zA-Z0-9_]+$"
CURSOR = r"^[-a-zA-Z0-9_]+$"
PurposeKey = Annotated[str, Path(example=EXAMPLE_PURPOSE, max_length=50, pattern=SLUG)]

ERRORS = {400: Problem, 401: Problem, 403: Problem, 422: Problem, 429: Problem}


def _errors(*codes: int) -> dict[int, type]:
    return {**ERRORS, **dict.fromkeys(codes, Problem)}


# A person's consents ------------------------------------------------------------


class ConsentOut(Schema):
    purpose: str = Field(description=gettext_noop("The purpose's key, as in the inventory."))
    decision: Literal["granted", "withdrawn", "refused"]
    granted: bool
    processing_allowed: bool = Field(
        description=gettext_noop(
            "Granted, purpose in use, and no objection or restriction stops it."
        )
    )
    purpose_retired: bool
    objection_or_restriction: bool
    notice_version: int = Field(
        description=gettext_noop("The version of the notice the decision was made on.")
    )
    notice_sha256: str
    method: str = Field(description=gettext_noop("How the decision was collected."))
    decided_at: datetime
    receipt: uuid.UUID = Field(description=gettext_noop("The ledger event: its receipt's id."))


class PersonConsents(Schema):
    subject_id: uuid.UUID
    consents: list[ConsentOut]


class EmailLookup(Schema):
    email: str = Field(
        min_length=3,
        max_length=254,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description=gettext_noop("The person's address."),
        examples=["customer@example.com"],
    )


def _consents_of(request: HttpRequest, subject_id: uuid.UUID | None) -> dict:
    consents = selectors.person_consents(subject_id) if subject_id else None
    if consents is None:
        raise ApiProblem("unknown-subject", "The portal knows no such person.")
    request.api_subject_id = subject_id
    return {"subject_id": subject_id, "consents": consents}


@api.get(
    "/v1/subjects/{subject_id}/consents",
    response={200: PersonConsents, **_errors(404)},
    auth=KeyAuth(ApiScope.CONSENTS_READ),
    operation_id="consents_by_subject",
    summary=gettext_noop("A person's current consents, by subject id"),
    tags=["consents"],
    openapi_extra={"x-scope": ApiScope.CONSENTS_READ.value},
)
def consents_by_subject(request: HttpRequest, subject_id: SubjectId):
    return _consents_of(request, subject_id)


@api.post(
    "/v1/consents/lookup",
    response={200: PersonConsents, **_errors(404)},
    auth=KeyAuth(ApiScope.CONSENTS_READ),
    operation_id="consents_by_email",
    summary=gettext_noop(
        "A person's current consents, by email address (in the body, never the URL)"
    ),
    tags=["consents"],
    openapi_extra={"x-scope": ApiScope.CONSENTS_READ.value},
)
def consents_by_email(request: HttpRequest, body: EmailLookup):
    return _consents_of(request, selectors.subject_by_email(body.email))


# Decisions made in another channel -------------------------------------------------


class DecisionIn(Schema):
    subject_id: uuid.UUID = Field(examples=[EXAMPLE_SUBJECT])
    purpose: str = Field(
        max_length=50,
        pattern=SLUG,
        description=gettext_noop("The purpose's key."),
        examples=[EXAMPLE_PURPOSE],
    )
    decision: Literal["granted", "withdrawn", "refused"]
    notice_version: int = Field(
        ge=1,
        le=2_000_000_000,
        description=gettext_noop("The version of the notice shown in the channel."),
        examples=[1],
    )
    method: Literal["checkout", "call_centre", "in_store"] = Field(
        description=gettext_noop("The channel where the person decided.")
    )


class DecisionOut(Schema):
    recorded: bool = Field(
        description=gettext_noop("False when it repeated the standing decision.")
    )
    subject_id: uuid.UUID
    purpose: str
    decision: Literal["granted", "withdrawn", "refused"] | None = Field(
        description=gettext_noop("What the ledger recorded (unticking a grant withdraws it).")
    )
    notice_version: int
    receipt: uuid.UUID | None
    decided_at: datetime | None


@api.post(
    "/v1/decisions",
    response={200: DecisionOut, 201: DecisionOut, **_errors(404, 409)},
    auth=KeyAuth(ApiScope.DECISIONS_WRITE),
    operation_id="decision_record",
    summary=gettext_noop("Record a decision made in another channel"),
    description=gettext_noop(
        "Refused with a problem document, and nothing recorded, when the notice version "
        "is not the current one (409 notice-stale), the purpose is retired (409 "
        "purpose-retired) or does not rest on consent (422 not-on-consent)."
    ),
    tags=["decisions"],
    openapi_extra={"x-scope": ApiScope.DECISIONS_WRITE.value},
)
def decision_record(request: HttpRequest, body: DecisionIn):
    request.api_subject_id = body.subject_id
    request.api_purpose = body.purpose
    recorded = services.decision_record(
        subject_id=body.subject_id,
        purpose_key=body.purpose,
        decision=body.decision,
        notice_version=body.notice_version,
        method=body.method,
    )
    event = recorded.event
    answer = {
        "recorded": event is not None,
        "subject_id": body.subject_id,
        "purpose": body.purpose,
        "decision": event.decision if event else None,
        "notice_version": recorded.notice.version,
        "receipt": event.uuid if event else None,
        "decided_at": event.created_at if event else None,
    }
    return Status(201 if event is not None else 200, answer)


# The audience of a purpose ----------------------------------------------------------


class AudienceMember(Schema):
    subject_id: uuid.UUID
    email: str | None = Field(
        None,
        description=gettext_noop(
            "Only where the purpose uses email addresses and the key has audience:email."
        ),
    )


class AudiencePageOut(Schema):
    purpose: str
    items: list[AudienceMember]
    next_cursor: str | None = Field(
        description=gettext_noop("The next page's cursor; null on the last page.")
    )
    changes_cursor: str | None = Field(
        description=gettext_noop(
            "On the last page: where /audience/changes starts, to sync from here on."
        )
    )


class AudienceChange(Schema):
    subject_id: uuid.UUID
    in_audience: bool = Field(
        description=gettext_noop("Whether the person may be contacted for it now.")
    )
    email: str | None = None


class ChangesPageOut(Schema):
    purpose: str
    items: list[AudienceChange]
    next_cursor: str = Field(description=gettext_noop("Where the next call starts."))
    more: bool = Field(description=gettext_noop("True when more changes wait: call again at once."))


class AudienceParams(Schema):
    cursor: str | None = Field(None, max_length=200, pattern=CURSOR)
    limit: int = Field(1000, ge=1, le=10_000)


class ChangesParams(Schema):
    cursor: str = Field(max_length=200, pattern=CURSOR)
    limit: int = Field(1000, ge=1, le=10_000)


def _json(body: dict) -> HttpResponse:
    # Pages of thousands of rows skip ninja's validation of the output (the
    # tests and schemathesis hold them to the schema).
    return HttpResponse(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        content_type="application/json",
    )


def _email_allowed(request: HttpRequest, uses_email: bool) -> bool:
    return uses_email and ApiScope.AUDIENCE_EMAIL in request.auth.scopes


@api.get(
    "/v1/purposes/{key}/audience",
    response={200: AudiencePageOut, **_errors(404, 409)},
    auth=KeyAuth(ApiScope.AUDIENCE_READ),
    operation_id="audience_list",
    summary=gettext_noop("Everyone who may be contacted or processed for a purpose now"),
    description=gettext_noop(
        "People with a standing grant and no objection or restriction for it, by pages "
        "(cursor pagination). The last page's changes_cursor starts /audience/changes."
    ),
    tags=["audience"],
    openapi_extra={"x-scope": ApiScope.AUDIENCE_READ.value},
)
def audience_list(request: HttpRequest, key: PurposeKey, params: Query[AudienceParams]):
    request.api_purpose = key
    purpose, uses_email = selectors.audience_purpose(key)
    with_email = _email_allowed(request, uses_email)
    page = selectors.audience_page(
        purpose, cursor=params.cursor, limit=params.limit, with_email=with_email
    )
    # Written out rather than through json.dumps of 10,000 dicts: a subject id
    # is hex and hyphens, and only an address needs escaping.
    if with_email:
        items = ",".join(
            f'{{"subject_id":"{s}","email":{json.dumps(e, ensure_ascii=False)}}}'
            for s, e in page.rows
        )
    else:
        items = ",".join(f'{{"subject_id":"{s}"}}' for s, _e in page.rows)
    head = json.dumps({"purpose": purpose.key}, ensure_ascii=False)[:-1]
    tail = json.dumps({"next_cursor": page.next_cursor, "changes_cursor": page.changes_cursor})[1:]
    return HttpResponse(f'{head},"items":[{items}],{tail}', content_type="application/json")


@api.get(
    "/v1/purposes/{key}/audience/changes",
    response={200: ChangesPageOut, **_errors(404, 409)},
    auth=KeyAuth(ApiScope.AUDIENCE_READ),
    operation_id="audience_changes",
    summary=gettext_noop("Who joined or left a purpose's audience since a cursor"),
    description=gettext_noop(
        "Each person whose decision on the purpose changed since the cursor, who made an "
        "objection or a restriction covering it since, or whose objection or restriction "
        "covering it was lifted since, once, with whether they are in the audience now. A "
        "page holds at most `limit` decisions, `limit` such requests and `limit` lifts."
    ),
    tags=["audience"],
    openapi_extra={"x-scope": ApiScope.AUDIENCE_READ.value},
)
def audience_changes(request: HttpRequest, key: PurposeKey, params: Query[ChangesParams]):
    request.api_purpose = key
    purpose, uses_email = selectors.audience_purpose(key)
    with_email = _email_allowed(request, uses_email)
    page = selectors.audience_changes(
        purpose, cursor=params.cursor, limit=params.limit, with_email=with_email
    )
    items = []
    for subject, present, email in page.rows:
        item: dict[str, Any] = {"subject_id": str(subject), "in_audience": present}
        if with_email and present:
            item["email"] = email
        items.append(item)
    return _json(
        {
            "purpose": purpose.key,
            "items": items,
            "next_cursor": page.next_cursor,
            "more": page.more,
        }
    )


# The inventory ------------------------------------------------------------------------


@api.get(
    "/v1/inventory",
    response={200: dict[str, Any], 401: Problem, 403: Problem, 429: Problem},
    auth=KeyAuth(),
    operation_id="inventory",
    summary=gettext_noop("The data inventory: what /privacy.json says"),
    tags=["inventory"],
)
def inventory(request: HttpRequest):
    return privacy_document()


# Rights requests assigned to a connected system ---------------------------------------

api.add_router("/v1/rights", rights_router)
