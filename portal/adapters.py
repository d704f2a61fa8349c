from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import translation
from django.utils.functional import lazy
from django.utils.translation import gettext

from portal.mail import outbound_email_queue, render_email
from portal.ratelimits import longest_period, wait_text
from portal.validators import validate_email_length


@dataclass(frozen=True)
class Site:
    """What allauth's email templates call the site: the controller's name and
    the portal's public host, not whatever Host header a request carried."""

    name: str
    domain: str


def _site() -> Site:
    return Site(name=settings.CONTROLLER_NAME, domain=urlsplit(settings.SITE_URL).netloc)


def _on_site_url(value, request) -> object:
    """allauth builds its links (verification, password reset, sign-up) from the
    Host of the request that caused the email. Links in emails name the portal's
    public address instead, SITE_URL, like every other email and receipt does:
    a request that reached it as localhost, or through an internal name, must
    not mail that name to a customer."""
    if request is None or not isinstance(value, str):
        return value
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or parts.netloc != request.get_host():
        return value
    return settings.SITE_URL + urlunsplit(("", "", parts.path, parts.query, parts.fragment))


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

    def clean_email(self, email: str) -> str:
        """Sign-up, adding an address and password reset all pass here: an
        address longer than the columns is refused, never truncated."""
        validate_email_length(email)
        return super().clean_email(email)

    def save_user(self, request, user, form, commit=True):
        user.language = getattr(request, "LANGUAGE_CODE", None) or translation.get_language()
        return super().save_user(request, user, form, commit=commit)

    def post_login(self, request, user, **kwargs):
        """Speak the account's language from the login on, and hand it to the
        browser, so that it stays after logout."""
        if user.language:
            # allauth writes "Successfully signed in as…" now, in this request,
            # which began before anyone was logged in (so in the browser's
            # language); UserLanguageMiddleware only applies from the next one.
            translation.activate(user.language)
            request.LANGUAGE_CODE = translation.get_language()
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
            ctx = {key: _on_site_url(value, request) for key, value in ctx.items()}
            # The portal's one renderer, as for every other email: plain text
            # not escaped, HTML escaped and in the recipient's language.
            subject, text, html = render_email(template_prefix, ctx, language=language)
            subject = self.format_email_subject(subject)
        outbound_email_queue(
            to=email,
            subject=subject,
            body_text=text.strip(),
            body_html=html,
            template=template_prefix,
        )
