"""The call log: one ApiCall row per call made with a known key, written after
the answer, whatever it was (a refusal for scope or rate included)."""

from __future__ import annotations

import logging

from integrations.api.services import api_call_record

logger = logging.getLogger(__name__)


class ApiCallLogMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        key_id = getattr(request, "api_key_id", None)
        if key_id is not None:
            match = request.resolver_match
            api_call_record(
                key_id=key_id,
                operation=(match.url_name or "") if match else "",
                method=request.method,
                status=response.status_code,
                subject_id=getattr(request, "api_subject_id", None),
                purpose=getattr(request, "api_purpose", ""),
            )
        return response
