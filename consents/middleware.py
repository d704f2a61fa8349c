from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _

from consents.services import RequestFacts, gpc_apply


class GlobalPrivacyControlMiddleware:
    """Sets request.gpc for a `Sec-GPC: 1` request (exactly "1"; any other value
    is ignored), and for a logged-in customer withdraws any standing grant for a
    sale or sharing purpose, telling them so. Nothing else is touched."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.gpc = request.headers.get("Sec-GPC") == "1"
        user = getattr(request, "user", None)
        if request.gpc and user is not None and user.is_authenticated and not user.is_staff:
            withdrawn = gpc_apply(
                subject_id=user.subject_id, facts=RequestFacts.from_request(request)
            )
            for purpose in withdrawn:
                messages.info(
                    request,
                    _(
                        "Your browser sends a Global Privacy Control signal, so we stopped "
                        "“%(purpose)s”. You can turn it on again in your choices if you want it."
                    )
                    % {"purpose": purpose.display_name},
                )
        return self.get_response(request)
