"""Every field of personal data the portal holds, and the data category (and so
the purposes) it exists for.

The account's own fields (email, name) are declared here; every other field
is declared by the app that uses it, through `register` from its
AppConfig.ready() (the demo shop declares the delivery address, the
interests and the allergies in shop/privacy.py): consents knows a field only by
its declaration. A field is kept on the account ("user"), as a PersonalDatum
row ("datum"), or in rows of the declaring app's own model (`Rows`).

Minimal by construction: a field can only be written while a purpose that uses
its category holds (a purpose on another legal basis, or one the person has
granted), and it is erased as soon as none does.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from django import forms
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.db.models import Q
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from consents.models import (
    ConsentState,
    DataCategory,
    Decision,
    LegalBasis,
    PersonalDatum,
)


def _no_control_characters(value: str) -> None:
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\r\t" for ch in value):
        raise forms.ValidationError(_("Remove the invisible control characters from this text."))


@dataclass(frozen=True)
class Rows:
    """A field that its app keeps in a model of its own: one row per chosen
    key, each with the person's `subject_id` (the demo shop's interests)."""

    model: type[models.Model]
    key_field: str  # the column that holds the chosen key, e.g. "category_id"
    order_by: tuple[str, ...] = ()  # the rows in the order of the choices


Choices = list[tuple[str, object]] | Callable[[], list[tuple[str, object]]]


@dataclass(frozen=True)
class DataField:
    key: str
    category: str  # DataCategory.key
    label: Promise
    store: str | Rows  # "user", "datum", or the app's own rows
    editable: bool = True
    help_text: Promise | str = ""
    # (key, label) pairs, or a function that gives them (read at each use, in
    # the active language): a field with choices holds a subset of the keys.
    choices: Choices = field(default_factory=list)
    multiple: bool = False
    max_length: int = 150
    textarea: bool = False

    @property
    def rows(self) -> Rows | None:
        return self.store if isinstance(self.store, Rows) else None

    def choice_list(self) -> list[tuple[str, object]]:
        return list(self.choices() if callable(self.choices) else self.choices)

    def form_field(self) -> forms.Field:
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


_fields: dict[str, DataField] = {}


def register(*declared: DataField) -> None:
    """Declare fields of personal data (replacing one with the same key), in
    the order the panel and the person's copy list them. From the declaring
    app's AppConfig.ready()."""
    for data_field in declared:
        if data_field.store not in ("user", "datum") and data_field.rows is None:
            raise ValueError(f"Field {data_field.key}: store is 'user', 'datum' or Rows(...).")
        if data_field.rows is not None and not data_field.multiple:
            raise ValueError(f"Field {data_field.key}: a field kept in rows holds several keys.")
        _fields[data_field.key] = data_field


def fields() -> list[DataField]:
    """Every declared field, in declaration order."""
    return list(_fields.values())


def field_for(key: str) -> DataField | None:
    return _fields.get(key)


register(
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
)


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


def stored_keys(data_field: DataField, *, subject_id: uuid.UUID) -> list[str]:
    """The keys a field kept in its app's rows holds for the person, in the
    order of its choices (one query)."""
    rows = data_field.rows
    if rows is None:
        raise ValueError(f"Field {data_field.key} is not kept in rows of its own.")
    return list(
        rows.model.objects.filter(subject_id=subject_id)
        .order_by(*rows.order_by, rows.key_field)
        .values_list(rows.key_field, flat=True)
    )


def stored_value(*, subject_id: uuid.UUID, key: str) -> str:
    """The text kept for a "datum" field (a field with choices: its keys,
    comma-separated), or "": for the app that declared the field."""
    value = (
        PersonalDatum.objects.filter(subject_id=subject_id, field=key)
        .values_list("value", flat=True)
        .first()
    )
    return value or ""


def read(*, user, fields: list[DataField] | None = None) -> dict[str, object]:
    """Current values of the fields: one query for the PersonalDatum rows, one
    for each field kept in rows of its own."""
    fields = fields or list(_fields.values())
    values: dict[str, object] = {}
    data = dict(
        PersonalDatum.objects.filter(subject_id=user.subject_id).values_list("field", "value")
    )
    for f in fields:
        if f.store == "user":
            values[f.key] = getattr(user, f.key)
        elif f.rows is not None:
            values[f.key] = stored_keys(f, subject_id=user.subject_id)
        elif f.multiple:
            raw = data.get(f.key, "")
            values[f.key] = [v for v in raw.split(",") if v]
        else:
            values[f.key] = data.get(f.key, "")
    return values


def personal_data_update(*, user, field_key: str, value) -> None:
    """Rectify one field (GDPR Art. 16, LGPD Art. 18 III), if a purpose holds."""
    data_field = field_for(field_key)
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
        elif data_field.rows is not None:
            _rows_replace(data_field, subject_id=user.subject_id, keys=set(value))
        else:
            text = ",".join(value) if data_field.multiple else value
            if text:
                PersonalDatum.objects.update_or_create(
                    subject_id=user.subject_id, field=field_key, defaults={"value": text}
                )
            else:
                PersonalDatum.objects.filter(subject_id=user.subject_id, field=field_key).delete()


def _rows_replace(data_field: DataField, *, subject_id: uuid.UUID, keys: set[str]) -> None:
    rows = data_field.rows
    known = {key for key, _label in data_field.choice_list()}
    if keys - known:
        raise PersonalDataError(_("Choose from the list."))
    rows.model.objects.filter(subject_id=subject_id).exclude(
        **{f"{rows.key_field}__in": keys}
    ).delete()
    rows.model.objects.bulk_create(
        [rows.model(subject_id=subject_id, **{rows.key_field: key}) for key in sorted(keys)],
        ignore_conflicts=True,
    )


def erase_unneeded(*, subject_id: uuid.UUID) -> list[str]:
    """Erase every stored field whose category no purpose needs any more.
    Called in the transaction that records a withdrawal. Returns the field keys."""
    needed = needed_categories(subject_id=subject_id)
    erased = []
    for f in fields():
        if f.category in needed or f.store == "user":
            continue
        if f.rows is not None:
            deleted, _details = f.rows.model.objects.filter(subject_id=subject_id).delete()
        else:
            deleted, _details = PersonalDatum.objects.filter(
                subject_id=subject_id, field=f.key
            ).delete()
        if deleted:
            erased.append(f.key)
    return erased
