"""Every field of personal data the portal holds, and the data category (and so
the purposes) it exists for.

Minimal by construction: a field can only be written while a purpose that uses
its category holds (a purpose on another legal basis, or one the person has
granted), and it is erased as soon as none does.
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass, field

from django import forms
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from consents.models import (
    ConsentState,
    DataCategory,
    Decision,
    Interest,
    LegalBasis,
    PersonalDatum,
    ProductCategory,
)

ALLERGENS = [
    ("gluten", _("Gluten")),
    ("lactose", _("Lactose")),
    ("nuts", _("Tree nuts")),
    ("peanuts", _("Peanuts")),
    ("eggs", _("Eggs")),
    ("soy", _("Soy")),
    ("shellfish", _("Shellfish")),
]


def _no_control_characters(value: str) -> None:
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\r\t" for ch in value):
        raise forms.ValidationError(_("Remove the invisible control characters from this text."))


@dataclass(frozen=True)
class DataField:
    key: str
    category: str  # DataCategory.key
    label: Promise
    store: str  # "user", "datum" or "interests"
    editable: bool = True
    help_text: Promise | str = ""
    choices: list = field(default_factory=list)
    multiple: bool = False
    max_length: int = 150
    textarea: bool = False

    def form_field(self) -> forms.Field:
        if self.store == "interests":
            return forms.ModelMultipleChoiceField(
                queryset=ProductCategory.objects.order_by("order", "key"),
                to_field_name="key",
                widget=forms.CheckboxSelectMultiple,
                required=False,
                label=self.label,
                help_text=self.help_text,
            )
        if self.multiple:
            return forms.MultipleChoiceField(
                choices=self.choices,
                widget=forms.CheckboxSelectMultiple,
                required=False,
                label=self.label,
                help_text=self.help_text,
            )
        widget = forms.Textarea(attrs={"rows": 3}) if self.textarea else forms.TextInput
        return forms.CharField(
            max_length=self.max_length,
            required=False,
            strip=True,
            label=self.label,
            help_text=self.help_text,
            widget=widget,
            validators=[_no_control_characters],
        )


FIELDS = [
    DataField(
        "email",
        "email",
        _("Email address"),
        "user",
        editable=False,
        help_text=_("Change it in Account security: a new address is verified first."),
    ),
    DataField("first_name", "name", _("First name"), "user"),
    DataField("last_name", "name", _("Last name"), "user"),
    DataField(
        "postal_address",
        "postal-address",
        _("Delivery address"),
        "datum",
        max_length=300,
        textarea=True,
        help_text=_("Street, number, city, postcode."),
    ),
    DataField(
        "interests",
        "interests",
        _("Your interests"),
        "interests",
        help_text=_("We recommend products from these categories."),
    ),
    DataField(
        "dietary",
        "dietary-health",
        _("Allergies and dietary restrictions"),
        "datum",
        choices=ALLERGENS,
        multiple=True,
        help_text=_("We hide products that contain these."),
    ),
]
FIELDS_BY_KEY = {f.key: f for f in FIELDS}


class PersonalDataError(ValueError):
    """A write the inventory does not allow; its message is for the person."""


def needed_categories(*, subject_id: uuid.UUID) -> set[str]:
    """Data category keys some purpose currently needs for this person: those of
    every active purpose on another legal basis, and of every purpose they granted.
    An objection or a restriction stops the use of data (rights.selectors), not
    its keeping: a restricted field is kept, and may be corrected, while the
    dispute lasts (GDPR Art. 18(2))."""
    granted = ConsentState.objects.filter(subject_id=subject_id, decision=Decision.GRANTED).values(
        "purpose_id"
    )
    # One filter() call: both conditions apply to the same purpose.
    return set(
        DataCategory.objects.filter(
            Q(purposes__retired_at__isnull=True)
            & (~Q(purposes__legal_basis=LegalBasis.CONSENT) | Q(purposes__in=granted))
        ).values_list("key", flat=True)
    )


def read(*, user, fields: list[DataField] | None = None) -> dict[str, object]:
    """Current values of the fields, in three queries at most."""
    fields = fields or FIELDS
    values: dict[str, object] = {}
    data = dict(
        PersonalDatum.objects.filter(subject_id=user.subject_id).values_list("field", "value")
    )
    interests = list(
        ProductCategory.objects.filter(interests__subject_id=user.subject_id).order_by("order")
    )
    for f in fields:
        if f.store == "user":
            values[f.key] = getattr(user, f.key)
        elif f.store == "interests":
            values[f.key] = interests
        elif f.multiple:
            raw = data.get(f.key, "")
            values[f.key] = [v for v in raw.split(",") if v]
        else:
            values[f.key] = data.get(f.key, "")
    return values


def personal_data_update(*, user, field_key: str, value) -> None:
    """Rectify one field (GDPR Art. 16, LGPD Art. 18 III), if a purpose holds."""
    data_field = FIELDS_BY_KEY.get(field_key)
    if data_field is None or not data_field.editable:
        raise PersonalDataError(_("This field cannot be changed here."))
    if data_field.category not in needed_categories(subject_id=user.subject_id):
        raise PersonalDataError(
            _("We only keep this while you allow a purpose that uses it. Turn one on first.")
        )
    with transaction.atomic():
        if data_field.store == "user":
            user_model = get_user_model()
            locked = user_model.objects.select_for_update().get(pk=user.pk)
            setattr(locked, field_key, value)
            locked.save(update_fields=[field_key])
            setattr(user, field_key, value)
        elif data_field.store == "interests":
            keys = set(value)
            known = set(ProductCategory.objects.filter(key__in=keys).values_list("key", flat=True))
            if keys - known:
                raise PersonalDataError(_("Choose interests from the list."))
            Interest.objects.filter(subject_id=user.subject_id).exclude(
                category_id__in=keys
            ).delete()
            Interest.objects.bulk_create(
                [Interest(subject_id=user.subject_id, category_id=key) for key in sorted(keys)],
                ignore_conflicts=True,
            )
        else:
            text = ",".join(value) if data_field.multiple else value
            if text:
                PersonalDatum.objects.update_or_create(
                    subject_id=user.subject_id, field=field_key, defaults={"value": text}
                )
            else:
                PersonalDatum.objects.filter(subject_id=user.subject_id, field=field_key).delete()


def erase_unneeded(*, subject_id: uuid.UUID) -> list[str]:
    """Erase every stored field whose category no purpose needs any more.
    Called in the transaction that records a withdrawal. Returns the field keys."""
    needed = needed_categories(subject_id=subject_id)
    erased = []
    for f in FIELDS:
        if f.category in needed or f.store == "user":
            continue
        if f.store == "interests":
            deleted, _details = Interest.objects.filter(subject_id=subject_id).delete()
        else:
            deleted, _details = PersonalDatum.objects.filter(
                subject_id=subject_id, field=f.key
            ).delete()
        if deleted:
            erased.append(f.key)
    return erased
