"""allauth's sign-up form, saved all or nothing (ACCOUNT_FORMS["signup"]).

The consent boxes come from consents.forms.SignupConsentForm, which allauth
builds its form on. This subclass lives apart because allauth's forms module
imports that base class while it loads."""

from __future__ import annotations

from allauth.account.forms import SignupForm
from django.db import transaction
from django.template.response import TemplateResponse

from consents.services import ConsentError


class AtomicSignupForm(SignupForm):
    def try_save(self, request):
        """The account and its consent choices are saved together. If a notice
        changed or a purpose was retired in the moment between checking the form
        and saving it, nothing is kept and the form comes back with the reason."""
        try:
            with transaction.atomic():
                return super().try_save(request)
        except ConsentError as exc:
            self.add_error(None, str(exc))
            self.setup_consents(gpc=self.gpc)
            response = TemplateResponse(request, "account/signup.html", {"form": self}, status=400)
            return None, response
