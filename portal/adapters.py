from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import translation
from django.utils.functional import lazy
from django.utils.translation import gettext

from portal.mail import outbound_email_queue
from portal.ratelimits import longest_period, wait_text


@dataclass(frozen=True)
class Site:
    """What allauth's email templates call the site: the controller's name and
    the portal's public host, not whatever Host header a request carried."""

    name: str
    domain: str


def _site() -> Site:
    return Site(name=settings.CONTROLLER_NAME, domain=urlsplit(settings.SITE_URL).netloc)


def _language_for(email: str, fallback: str) -> str:
    """The stored language of whoever owns this address (primary or secondary)."""
    language = (
        get_user_model()
        .objects.filter(Q(email__iexact=email) | Q(emailaddress__email__iexact=email))
        .values_list("language", flat=True)
        .first()
    )
    return language or fallback


def _too_many_login_attempts() -> str:
    seconds = longest_period(["login_failed"])
    if not seconds:
        return gettext("Too many failed login attempts. Try again later.")
    return gettext("Too many failed login attempts. Try again in %(wait)s.") % {
        "wait": wait_text(seconds)
    }


class AccountAdapter(DefaultAccountAdapter):
    """allauth, with every email rendered in the recipient's stored language and
    delivered through the outbox instead of inside the request."""

    # Say how long to wait, from the login_failed limit, in the reader's language.
    error_messages = {
        **DefaultAccountAdapter.error_messages,
        "too_many_login_attempts": lazy(_too_many_login_attempts, str)(),
    }

    def save_user(self, request, user, form, commit=True):
        user.language = getattr(request, "LANGUAGE_CODE", None) or translation.get_language()
        return super().save_user(request, user, form, commit=commit)

    def post_login(self, request, user, **kwargs):
        """Hand the account's language to the browser, so that it stays after logout."""
        response = super().post_login(request, user, **kwargs)
        if user.language and hasattr(response, "set_cookie"):
            response.set_cookie(
                settings.LANGUAGE_COOKIE_NAME,
                user.language,
                max_age=settings.LANGUAGE_COOKIE_AGE,
                secure=settings.LANGUAGE_COOKIE_SECURE,
                samesite=settings.LANGUAGE_COOKIE_SAMESITE,
                httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
            )
        return response

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        language = _language_for(email, translation.get_language() or settings.LANGUAGE_CODE)
        with translation.override(language):
            # allauth passes the request in its own context, not in this dict.
            request = context.get("request") or allauth_context.request
            ctx = {"email": email, "request": request, "current_site": _site(), **context}
            message = self.render_mail(template_prefix, email, ctx)
        html = ""
        for content, mimetype in getattr(message, "alternatives", []):
            if mimetype == "text/html":
                html = content
        outbound_email_queue(
            to=email, subject=message.subject, body_text=message.body, body_html=html
        )
