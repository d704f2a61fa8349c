"""The readable page beside the OpenAPI document: every operation, its scope,
parameters, body and answers, rendered on the server from the same document
(no CDN, no script: the portal's CSP stays as strict as everywhere)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext, gettext_noop
from django.views.decorators.http import require_safe

from integrations.api.problems import PROBLEMS, problem_type
from integrations.api.views import api

# The answers' descriptions ninja writes (HTTP's reason phrases), and where a
# parameter goes, for makemessages: the page translates them with the rest.
_WORDS = (
    gettext_noop("OK"),
    gettext_noop("Created"),
    gettext_noop("Bad Request"),
    gettext_noop("Unauthorized"),
    gettext_noop("Forbidden"),
    gettext_noop("Not Found"),
    gettext_noop("Conflict"),
    gettext_noop("Unprocessable Entity"),
    gettext_noop("Unprocessable Content"),  # 422's phrase from Python 3.13 (RFC 9110)
    gettext_noop("Too Many Requests"),
    gettext_noop("path"),
    gettext_noop("query"),
    gettext_noop("header"),
)


def _t(text: str) -> str:
    """A text of the document (English, marked with gettext_noop where it is
    written) in the reader's language; one without a translation as it is."""
    return gettext(text) if text else ""


def _schema_name(schema: dict) -> str:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else schema.get("type", "")


def _operations(document: dict) -> list[dict]:
    operations = []
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            body = operation.get("requestBody", {}).get("content", {})
            body_schema = next(iter(body.values()), {}).get("schema", {}) if body else {}
            operations.append(
                {
                    "id": operation.get("operationId", ""),
                    "method": method.upper(),
                    "path": path,
                    "summary": _t(operation.get("summary", "")),
                    "description": _t(operation.get("description", "")),
                    "scope": operation.get("x-scope", ""),
                    "parameters": [
                        {
                            "name": p["name"],
                            "where": _t(p["in"]),
                            "required": p.get("required", False),
                            "type": _schema_name(p.get("schema", {})),
                            "description": _t(
                                p.get("description", "")
                                or p.get("schema", {}).get("description", "")
                            ),
                        }
                        for p in operation.get("parameters", [])
                    ],
                    "body": _schema_name(body_schema),
                    "responses": [
                        {
                            "status": status,
                            "description": _t(response.get("description", "")),
                            "schema": _schema_name(
                                next(iter(response.get("content", {}).values()), {}).get(
                                    "schema", {}
                                )
                            ),
                        }
                        for status, response in operation.get("responses", {}).items()
                    ],
                }
            )
    return operations


def _schemas(document: dict) -> list[dict]:
    result = []
    either = " " + gettext("or") + " "  # "string or null"
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        required = set(schema.get("required", []))
        fields = []
        for field, spec in schema.get("properties", {}).items():
            kinds = [_schema_name(s) for s in spec.get("anyOf", [])] or [_schema_name(spec)]
            if spec.get("enum"):
                kinds = [" | ".join(f"“{v}”" for v in spec["enum"])]
            if spec.get("type") == "array":
                kinds = [
                    gettext("list of %(type)s") % {"type": _schema_name(spec.get("items", {}))}
                ]
            fields.append(
                {
                    "name": field,
                    "type": either.join(k for k in kinds if k),
                    "required": field in required,
                    "description": _t(spec.get("description", "")),
                }
            )
        result.append({"name": name, "fields": fields})
    return result


@require_safe
def page(request: HttpRequest) -> HttpResponse:
    document = api.get_openapi_schema()
    problems = [
        {"code": code, "status": status, "title": _t(title), "type": problem_type(code)}
        for code, (status, title) in PROBLEMS.items()
    ]
    return render(
        request,
        "integrations/api_docs.html",
        {
            "info": document.get("info", {}),
            "openapi_version": document.get("openapi", ""),
            "operations": _operations(document),
            "schemas": _schemas(document),
            "problems": problems,
        },
    )
