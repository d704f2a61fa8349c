"""PostgreSQL refuses a NUL byte in a text parameter: the API refuses it first,
with a 422 problem, rather than answer 500 (found by schemathesis)."""

from __future__ import annotations

from consents.models import ConsentEvent
from integrations.models import ApiCall


def test_nul_bytes_and_odd_characters_are_refused_before_any_query(api, customer, purposes):
    answers = [
        api.get("/api/v1/purposes/a%00b/audience"),
        api.get("/api/v1/purposes/a%00b/audience/changes", {"cursor": "Yy4xLjI"}),
        api.get("/api/v1/purposes/newsletter/audience", {"cursor": "a\x00"}),
        api.get("/api/v1/purposes/newsletter/audience/changes", {"cursor": "a b"}),
        api.post("/api/v1/consents/lookup", {"email": "a\x00b@example.com"}),
        api.post(
            "/api/v1/decisions",
            {
                "subject_id": str(customer.subject_id),
                "purpose": "news\x00letter",
                "decision": "granted",
                "notice_version": 1,
                "method": "checkout",
            },
        ),
    ]
    for response in answers:
        assert response.status_code == 422, response.content
        assert response["Content-Type"] == "application/problem+json"
    assert ConsentEvent.objects.count() == 0
    assert list(ApiCall.objects.values_list("status", flat=True)) == [422] * len(answers)
