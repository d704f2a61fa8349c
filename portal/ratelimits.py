"""How long someone stopped by a rate limit must wait, from the limits that
guard the page they used (ACCOUNT_RATE_LIMITS): the 429 page and the login
form say it, and 429 answers carry Retry-After."""

from __future__ import annotations

from allauth.account import app_settings as account_settings
from allauth.core.internal.ratelimit import parse_rates
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import ngettext

# allauth's URL names, and the rate-limit actions that guard each page.
ACTIONS_BY_URL_NAME = {
    "account_login": ["login"],  # login_failed answers in the form, not with a 429
    "account_signup": ["signup"],
    "account_reset_password": ["reset_password"],
    "account_reset_password_from_key": ["reset_password_from_key"],
    "account_change_password": ["change_password"],
    "account_set_password": ["change_password"],
    "account_email": ["manage_email"],
    "account_email_verification_sent": ["confirm_email"],
    "account_confirm_email": ["confirm_email"],
    "account_reauthenticate": ["reauthenticate"],
    "mfa_reauthenticate": ["reauthenticate"],
}


def longest_period(actions: list[str]) -> int | None:
    """Seconds of the longest window among these actions' limits: once it has
    passed, every attempt counted against them has expired."""
    rates = []
    for action in actions:
        rates += parse_rates(account_settings.RATE_LIMITS.get(action))
    return int(max(rate.duration for rate in rates)) if rates else None


def wait_text(seconds: int) -> str:
    if seconds < 60:
        return ngettext("%(count)d second", "%(count)d seconds", seconds) % {"count": seconds}
    if seconds < 3600:
        minutes = -(-seconds // 60)
        return ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes}
    hours = -(-seconds // 3600)
    return ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours}


def handler429(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """allauth calls ROOT_URLCONF.handler429 when a limit stops a request."""
    match = getattr(request, "resolver_match", None)
    actions = ACTIONS_BY_URL_NAME.get(match.url_name if match else "", [])
    seconds = longest_period(actions)
    response = render(
        request, "429.html", {"wait": wait_text(seconds) if seconds else ""}, status=429
    )
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
