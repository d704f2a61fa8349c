"""The API's readable page and its call log in the admin, in Portuguese: the
operations' texts, the schemas' fields and the problems' titles are
translated on /api/docs/ (the OpenAPI document itself stays English), and the
call log's columns have Portuguese names."""

from __future__ import annotations

import json

from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from integrations.api.problems import PROBLEMS
from integrations.api.views import api
from integrations.models import ApiCall
from tests.integrations.conftest import bearer

ENGLISH = [
    "A person's current consents, by subject id",
    "Record a decision made in another channel",
    "Everyone who may be contacted or processed for a purpose now",
    "The purpose's key, as in the inventory.",
    "The API key was revoked",
    "Unauthorized",
    "Too Many Requests",
]
PORTUGUESE = [
    "Os consentimentos atuais de uma pessoa, pelo identificador do titular",
    "Registrar uma decisão tomada em outro canal",
    "Todos que podem ser contatados ou ter seus dados tratados para uma finalidade agora",
    "A chave da finalidade, como no inventário.",
    "A chave de API foi revogada",
    "Não autenticado",
    "Requisições demais",
    "lista de ",
]


def test_the_docs_page_reads_in_portuguese(client, db):
    html = client.get(reverse("api_docs"), HTTP_ACCEPT_LANGUAGE="pt-BR").content.decode()
    html = html.replace("&#x27;", "'")
    for text in PORTUGUESE:
        assert text in html, text
    for text in ENGLISH:
        assert text not in html, text
    # Every text of the document the page shows has its translation.
    document = api.get_openapi_schema()
    texts = [title for _status, title in PROBLEMS.values()]
    for item in document["paths"].values():
        for operation in item.values():
            texts += [operation.get("summary", ""), operation.get("description", "")]
            texts += [r["description"] for r in operation["responses"].values()]
    for schema in document["components"]["schemas"].values():
        texts += [f.get("description", "") for f in schema.get("properties", {}).values()]
    with translation.override("pt-br"):
        untranslated = [t for t in texts if t and gettext(t) == t and t != "OK"]
    assert untranslated == []


def test_the_docs_page_reads_in_english_and_the_document_stays_english(client, db):
    html = client.get(reverse("api_docs"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    html = html.replace("&#x27;", "'")
    for text in ENGLISH:
        assert text in html, text
    document = client.get("/api/schema/", HTTP_ACCEPT_LANGUAGE="pt-BR").content.decode()
    assert (
        "A person's current consents, by subject id"
        in json.loads(document)["paths"]["/api/v1/subjects/{subject_id}/consents"]["get"]["summary"]
    )
    assert "Os consentimentos" not in document


def test_the_call_log_has_portuguese_column_names(client, staff, customer, secret):
    answer = client.get(f"/api/v1/subjects/{customer.subject_id}/consents", **bearer(secret))
    assert answer.status_code == 200
    assert ApiCall.objects.count() == 1
    staff.language = "pt-br"
    staff.save(update_fields=["language"])
    client.force_login(staff)
    html = client.get(
        reverse("admin:integrations_apicall_changelist"), HTTP_ACCEPT_LANGUAGE="pt-BR"
    ).content.decode()
    for header in ("Quando", "Chave de API", "Método", "Operação", "Status HTTP", "Finalidade"):
        assert f">{header}<" in html or f">{header}</a>" in html, header
    for header in ("Operation", "Method", ">Status<", ">At<", ">Key<"):
        assert header not in html, header
    call = ApiCall.objects.get()
    page = client.get(
        reverse("admin:integrations_apicall_change", args=[call.pk]), HTTP_ACCEPT_LANGUAGE="pt-BR"
    ).content.decode()
    assert "Operação" in page and "Operation:" not in page
    assert str(customer.subject_id) not in page  # the person is kept, not shown
