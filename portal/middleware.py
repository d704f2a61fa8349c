from __future__ import annotations

from collections.abc import Callable

from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _


class SecurityHeadersMiddleware:
    """Headers Django does not send by itself: Permissions-Policy and
    Cross-Origin-Resource-Policy (shared/NOTES.md, A+ on the Observatory)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        return response


class UserLanguageMiddleware:
    """A logged-in customer sees the portal in the language stored on their
    account, whatever the browser says; visitors get LocaleMiddleware's choice."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.language:
            translation.activate(user.language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)


class StaffSecondFactorMiddleware:
    """The admin opens only to staff who have a second factor (an authenticator
    app or a security key); the others are sent to set one up first. Recovery
    codes alone do not count: they are a way back, not a factor.
    STAFF_REQUIRE_MFA=0 relaxes this for the local demo only."""

    FACTORS = [Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN]

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        match = request.resolver_match
        if (
            not settings.STAFF_REQUIRE_MFA
            or match is None
            or "admin" not in match.namespaces
            or match.url_name == "logout"
        ):
            return None
        user = request.user
        if not (user.is_authenticated and user.is_staff):
            return None  # the admin sends them to its login, which is allauth's
        if Authenticator.objects.filter(user=user, type__in=self.FACTORS).exists():
            return None
        messages.warning(
            request,
            _(
                "The administration opens only once your account has a second factor. "
                "Set up an authenticator app, keep your recovery codes, then open it again."
            ),
        )
        return HttpResponseRedirect(reverse("mfa_activate_totp"))
