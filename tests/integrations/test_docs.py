"""The OpenAPI document and the readable page beside it, under the portal's CSP."""

from __future__ import annotations

import re


def test_the_document_is_openapi_31(client, db):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert "/api/v1/decisions" in document["paths"]


def test_the_page_lists_every_operation_with_no_script(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    for path in (
        "/api/v1/subjects/{subject_id}/consents",
        "/api/v1/decisions",
        "/api/v1/purposes/{key}/audience/changes",
        "/api/v1/inventory",
    ):
        assert path in html
    assert 'id="problem-notice-stale"' in html
    assert "decisions:write" in html
    # No CDN, no inline script or style: the portal's strict CSP holds.
    csp = response["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "script-src 'self'" in csp
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert " style=" not in html and "<style" not in html
    assert not re.search(r'(src|href)="https?://(?!127\.0\.0\.1|testserver)', html)


def test_the_page_speaks_portuguese(client, db):
    response = client.get("/api/docs/", HTTP_ACCEPT_LANGUAGE="pt-BR")
    assert "Operações".encode() in response.content


def test_the_page_refuses_post(client, db):
    assert client.post("/api/docs/").status_code == 405
