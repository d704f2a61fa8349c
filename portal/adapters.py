from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.contrib.auth import get_user_model
from django.utils import translation

from portal.mail import outbound_email_queue


def _language_for(email: str, fallback: str) -> str:
    language = (
        get_user_model()
        .objects.filter(email__iexact=email)
        .values_list("language", flat=True)
        .first()
    )
    return language or fallback


class AccountAdapter(DefaultAccountAdapter):
    """allauth, with every email rendered in the recipient's stored language and
    delivered through the outbox instead of inside the request."""

    def save_user(self, request, user, form, commit=True):
        user.language = translation.get_language_from_request(request, check_path=False)
        if getattr(request, "LANGUAGE_CODE", None):
            user.language = request.LANGUAGE_CODE
        return super().save_user(request, user, form, commit=commit)

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        language = _language_for(email, translation.get_language() or "en")
        with translation.override(language):
            request = context.get("request")
            ctx = {"email": email, "request": request, **context}
            if "current_site" not in ctx:
                from django.contrib.sites.shortcuts import get_current_site

                ctx["current_site"] = get_current_site(request)
            message = self.render_mail(template_prefix, email, ctx)
        html = ""
        for content, mimetype in getattr(message, "alternatives", []):
            if mimetype == "text/html":
                html = content
        outbound_email_queue(
            to=email, subject=message.subject, body_text=message.body, body_html=html
        )
