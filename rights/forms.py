from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from consents.selectors import active_purposes
from rights.models import Channel, IdentityCheck, Jurisdiction, Kind
from rights.services import DETAILS_MAX, REASON_MAX


class RequestForm(forms.Form):
    """A request from the control panel. The purposes matter only for an
    objection or a restriction; the service says so when others are ticked."""

    # Erasure is asked by closing the account (after reauthenticating), not here.
    kind = forms.ChoiceField(
        label=_("What are you asking for?"),
        choices=[c for c in Kind.choices if c[0] != Kind.ERASURE],
        widget=forms.RadioSelect,
    )
    purposes = forms.ModelMultipleChoiceField(
        label=_("Which uses of your data (only to object or to restrict)"),
        queryset=active_purposes(),
        to_field_name="key",
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    details = forms.CharField(
        label=_("Details"),
        help_text=_("What should we know? For a correction: what is wrong and what is right."),
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=DETAILS_MAX,
        required=False,
    )
    jurisdiction = forms.ChoiceField(
        label=_("The law that protects you"),
        choices=Jurisdiction.choices,
        help_text=_("It sets how soon we must answer: 15 days in Brazil, one month in the EU."),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["jurisdiction"].initial = settings.RIGHTS_DEFAULT_JURISDICTION
        self.fields["purposes"].label_from_instance = lambda purpose: purpose.display_name


class StaffRequestForm(forms.Form):
    """A request that reached staff by letter, phone or email, entered on the
    person's behalf."""

    email = forms.EmailField(
        label=_("The person's email address"),
        help_text=_("Their account or newsletter address; a new one if we hold nothing."),
    )
    kind = forms.ChoiceField(label=_("Kind"), choices=Kind.choices)
    jurisdiction = forms.ChoiceField(label=_("Jurisdiction"), choices=Jurisdiction.choices)
    channel = forms.ChoiceField(
        label=_("Received by"),
        choices=[c for c in Channel.choices if c[0] not in (Channel.PORTAL, Channel.ADMIN)],
    )
    identity_check = forms.ChoiceField(
        label=_("Identity checked"), choices=[("", "---------"), *IdentityCheck.choices]
    )
    received_at = forms.DateTimeField(
        label=_("Received at"), help_text=_("When the letter, call or email reached us.")
    )
    purposes = forms.ModelMultipleChoiceField(
        label=_("Purposes affected (objection, restriction)"),
        queryset=active_purposes(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    details = forms.CharField(
        label=_("Details"), widget=forms.Textarea(attrs={"rows": 4}), max_length=DETAILS_MAX,
        required=False,
    )  # fmt: skip

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["jurisdiction"].initial = settings.RIGHTS_DEFAULT_JURISDICTION


class ReasonForm(forms.Form):
    """A staff decision: what to do, and the reason or answer sent to the person."""

    action = forms.ChoiceField(
        choices=[
            ("start", _("Start")),
            ("extend", _("Extend")),
            ("refuse", _("Refuse")),
            ("complete", _("Complete")),
        ]
    )
    reason = forms.CharField(
        label=_("Reason or answer (sent to the person)"),
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=REASON_MAX,
        required=False,
    )


class AuditReasonForm(forms.Form):
    """Why a staff member opens one person's data when no open request of
    theirs explains it (the audit trail keeps it, the person can read it)."""

    reason = forms.CharField(
        label=_("Why do you need to see this person's data?"),
        help_text=_(
            "For example: a complaint received by phone, a delivery problem, fraud. Leave out "
            "their name and contact details: the trail names the person by an opaque id."
        ),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=1000,
    )
