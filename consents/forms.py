"""The opt-in forms: one unticked box per optional purpose, nothing bundled."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.utils.translation import gettext_lazy as _

from consents import selectors
from consents.models import Method, Purpose, PurposeNotice
from consents.services import RequestFacts, consent_record_choices
from portal.validators import validate_email_length


@dataclass(frozen=True)
class Offer:
    """One purpose as a form shows it."""

    purpose: Purpose
    notice: PurposeNotice
    blocked_by_gpc: bool = False

    @property
    def field_id(self) -> str:
        return f"purpose-{self.purpose.key}"

    @property
    def notice_field(self) -> str:
        return f"notice_{self.purpose.key}"


class ConsentChoicesMixin(forms.Form):
    """Adds `purposes` (the keys ticked) and one hidden `notice_<key>` per
    purpose shown, carrying the hash of the exact text the person read.

    A posted key that was not offered (unknown, retired, not optional, or
    blocked by GPC), or a notice hash that is not the current one, makes the
    whole form invalid: nothing is recorded."""

    consent_scope = "signup"  # or "newsletter"

    purposes = forms.MultipleChoiceField(required=False, choices=())

    def setup_consents(self, *, gpc: bool) -> None:
        self.gpc = gpc
        offered, self.basis_purposes = selectors.form_purposes(scope=self.consent_scope)
        self.offers = [
            Offer(purpose, notice, blocked_by_gpc=gpc and purpose.is_sale_or_sharing)
            for purpose, notice in offered
        ]
        self.fields["purposes"].choices = [
            (o.purpose.key, o.purpose.display_name) for o in self.offers if not o.blocked_by_gpc
        ]
        self.fields["purposes"].error_messages["invalid_choice"] = _(
            "“%(value)s” is not a purpose you can choose here. Nothing was saved: "
            "please reload the page and choose again."
        )
        for offer in self.offers:
            self.fields[offer.notice_field] = forms.CharField(
                widget=forms.HiddenInput, initial=offer.notice.content_hash, required=False
            )

    @property
    def regular_offers(self) -> list[Offer]:
        return [o for o in self.offers if not o.purpose.data_categories_sensitive]

    @property
    def sensitive_offers(self) -> list[Offer]:
        return [o for o in self.offers if o.purpose.data_categories_sensitive]

    def ticked(self) -> set[str]:
        if self.is_bound:
            return set(self.data.getlist("purposes")) if hasattr(self.data, "getlist") else set()
        return set()

    def clean(self):
        cleaned = super().clean()
        changed = [
            o.purpose.display_name
            for o in self.offers
            if self.data.get(o.notice_field) != o.notice.content_hash
        ]
        if changed:
            raise forms.ValidationError(
                _(
                    "The description of %(purposes)s is not the one we hold now: it changed "
                    "while you were reading, or the form was altered. Nothing was saved: "
                    "please read it again and confirm your choices."
                ),
                code="notice_changed",
                params={"purposes": ", ".join(f"“{name}”" for name in changed)},
            )
        return cleaned

    def consent_choices(
        self,
    ) -> tuple[dict[Purpose, bool], dict[int, PurposeNotice], dict[int, str]]:
        chosen = set(self.cleaned_data.get("purposes") or [])
        choices = {o.purpose: o.purpose.key in chosen for o in self.offers}
        notices = {o.purpose.pk: o.notice for o in self.offers}
        refusal_methods = {o.purpose.pk: Method.GPC for o in self.offers if o.blocked_by_gpc}
        return choices, notices, refusal_methods


def _current_request():
    from allauth.core import context

    return getattr(context, "request", None)


class SignupConsentForm(ConsentChoicesMixin):
    """allauth's sign-up form is built on this class (ACCOUNT_SIGNUP_FORM_CLASS),
    so the boxes sit in the same form and are saved with the new account."""

    consent_scope = "signup"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        request = _current_request()
        self.setup_consents(gpc=bool(request is not None and getattr(request, "gpc", False)))

    def signup(self, request, user) -> None:
        choices, notices, refusal_methods = self.consent_choices()
        consent_record_choices(
            subject_id=user.subject_id,
            choices=choices,
            notices=notices,
            method=Method.SIGNUP,
            facts=RequestFacts.from_request(request),
            refusal_method=refusal_methods,
        )


class NewsletterForm(ConsentChoicesMixin):
    consent_scope = "newsletter"

    email = forms.EmailField(
        label=_("Email address"),
        # No maxlength attribute: a browser would cut a pasted address silently.
        max_length=None,
        validators=[validate_email_length],
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        help_text=_("We send one email to confirm it is yours. Nothing counts until you confirm."),
    )

    def __init__(self, *args, gpc: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setup_consents(gpc=gpc)

    def clean_email(self) -> str:
        # One address, however it is typed: the sign-up row and the rate limit key.
        return self.cleaned_data["email"].lower()

    def clean(self):
        cleaned = super().clean()
        if not self.errors and not cleaned.get("purposes"):
            raise forms.ValidationError(
                _(
                    "Choose at least one thing to subscribe to; "
                    "otherwise there is nothing to confirm."
                ),
                code="nothing_chosen",
            )
        return cleaned
