"""The customer's control panel (/me/): choices, my data, history, policies,
security. Every view is for the logged-in person's own data only: nothing in a
URL names another person, and receipts are looked up with the owner's id."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from consents import benefits, personal_data, selectors, services
from consents.models import ConsentEvent, Decision, Method, Purpose

HISTORY_PAGE_SIZE = 20


def _rows(request: HttpRequest) -> list[dict]:
    """Every active purpose with the person's current decision, in two queries
    plus one for the data categories, whatever the number of purposes."""
    states = selectors.consent_states(subject_id=request.user.subject_id)
    rows = []
    for purpose in selectors.active_purposes():
        state = states.get(purpose.pk)
        rows.append(
            {
                "purpose": purpose,
                "granted": bool(state and state.decision == Decision.GRANTED),
                "decided": state is not None,
                "gpc_conflict": request.gpc and purpose.is_sale_or_sharing,
            }
        )
    return rows


def _panel_context(request: HttpRequest, section: str, **extra) -> dict:
    return {"section": section, **extra}


@login_required
@require_GET
def consents_page(request: HttpRequest) -> HttpResponse:
    rows = _rows(request)
    return render(
        request,
        "me/consents.html",
        _panel_context(
            request,
            "consents",
            optional_rows=[r for r in rows if r["purpose"].is_optional],
            required_rows=[r for r in rows if not r["purpose"].is_optional],
            any_granted=any(r["granted"] for r in rows),
            benefits=benefits.benefits_for(subject_id=request.user.subject_id),
        ),
    )


def _optional_purpose(key: str) -> Purpose:
    purpose = selectors.active_purposes().filter(key=key).first()
    if purpose is None or not purpose.is_optional:
        raise Http404
    return purpose


@login_required
@require_POST
def consent_switch(request: HttpRequest, key: str) -> HttpResponse:
    """Record one decision from the panel. With htmx, answer the purpose's row;
    without JavaScript, redirect back to it."""
    purpose = _optional_purpose(key)
    decision = request.POST.get("decision")
    if decision not in (Decision.GRANTED, Decision.WITHDRAWN):
        messages.error(request, _("Choose to turn it on or off."))
        return redirect(reverse("me") + f"#purpose-{purpose.key}")
    try:
        event = services.consent_record(
            subject_id=request.user.subject_id,
            purpose=purpose,
            decision=decision,
            method=Method.PANEL,
            facts=services.RequestFacts.from_request(request),
            reconfirm=request.POST.get("reconfirm") == "1",
        )
    except services.ConsentError as exc:
        messages.error(request, str(exc))
        return redirect(reverse("me") + f"#purpose-{purpose.key}")
    if event is not None:
        text = (
            _("“%(purpose)s” is on.")
            if decision == Decision.GRANTED
            else _("“%(purpose)s” is off. We stopped using your data for it.")
        )
        status = text % {"purpose": purpose.display_name}
    else:
        status = _("Nothing changed: that was already your choice.")
    if request.htmx:
        row = {
            "purpose": purpose,
            "granted": decision == Decision.GRANTED,
            "decided": True,
            "gpc_conflict": request.gpc and purpose.is_sale_or_sharing,
        }
        return render(
            request,
            "me/consents.html#purpose-row",
            {"row": row, "status": status, "receipt": event},
        )
    messages.success(request, status)
    return redirect(reverse("me") + f"#purpose-{purpose.key}")


@login_required
@require_POST
def consent_withdraw_all(request: HttpRequest) -> HttpResponse:
    withdrawn = services.consent_withdraw_all(
        subject_id=request.user.subject_id,
        method=Method.PANEL,
        facts=services.RequestFacts.from_request(request),
    )
    if withdrawn:
        messages.success(
            request,
            _("All optional purposes are off: %(purposes)s.")
            % {"purposes": ", ".join(p.display_name for p in withdrawn)},
        )
    else:
        messages.info(request, _("Nothing to withdraw: every optional purpose was already off."))
    return redirect("me")


# My data -----------------------------------------------------------------------------


def _data_groups(request: HttpRequest, editing: str | None, forms_by_key: dict | None = None):
    values = personal_data.read(user=request.user)
    needed = personal_data.needed_categories(subject_id=request.user.subject_id)
    categories = {
        c.key: c for c in selectors.categories_in_use_for(subject_id=request.user.subject_id)
    }
    groups = []
    for category_key in dict.fromkeys(f.category for f in personal_data.FIELDS):
        category = categories.get(category_key)
        if category is None:
            continue
        fields = []
        for data_field in personal_data.FIELDS:
            if data_field.category != category_key:
                continue
            fields.append(_field_context(data_field, values, needed, editing, forms_by_key))
        groups.append({"category": category, "fields": fields, "needed": category_key in needed})
    return groups


def _field_context(data_field, values, needed, editing, forms_by_key=None) -> dict:
    value = values[data_field.key]
    allowed = data_field.category in needed
    form = (forms_by_key or {}).get(data_field.key)
    # ?edit= is a URL anyone can type: offer a form only where the Edit link would.
    if form is None and editing == data_field.key and data_field.editable and allowed:
        form = _field_form(data_field, initial=value)
    return {
        "field": data_field,
        "value": value,
        "display": _display(data_field, value),
        "allowed": allowed,
        "form": form,
    }


def _display(data_field, value) -> str:
    if data_field.store == "interests":
        return ", ".join(c.display_name for c in value)
    if data_field.multiple:
        labels = dict(data_field.choices)
        return ", ".join(str(labels.get(v, v)) for v in value)
    return value or ""


def _field_form(data_field, *, initial=None, data=None):
    from django import forms

    form_class = type("FieldForm", (forms.Form,), {"value": data_field.form_field()})
    if data_field.store == "interests" and initial is not None:
        initial = [c.key for c in initial]
    return form_class(data=data, initial={"value": initial}, prefix=data_field.key)


def _editable_field(key: str) -> personal_data.DataField:
    data_field = personal_data.FIELDS_BY_KEY.get(key)
    if data_field is None or not data_field.editable:
        raise Http404
    return data_field


def _field_row(
    request: HttpRequest, data_field, *, editing: bool, form=None, message: str = "", status=200
) -> HttpResponse:
    """The htmx answer: one field's row, as text or as its form."""
    values = personal_data.read(user=request.user, fields=[data_field])
    needed = personal_data.needed_categories(subject_id=request.user.subject_id)
    forms_by_key = {data_field.key: form} if form is not None else None
    item = _field_context(
        data_field, values, needed, data_field.key if editing else None, forms_by_key
    )
    return render(
        request, "me/data.html#field-row", {"item": item, "status": message}, status=status
    )


@login_required
@require_GET
def data_page(request: HttpRequest) -> HttpResponse:
    editing = request.GET.get("edit")
    return render(
        request,
        "me/data.html",
        _panel_context(request, "data", groups=_data_groups(request, editing)),
    )


@login_required
@require_GET
def data_field_edit(request: HttpRequest, key: str) -> HttpResponse:
    """htmx: the field's row as a form. Without JavaScript, ?edit= does the same."""
    data_field = _editable_field(key)
    if not request.htmx:
        return redirect(reverse("me_data") + f"?edit={key}#field-{key}")
    return _field_row(request, data_field, editing=True)


@login_required
@require_POST
def data_field_save(request: HttpRequest, key: str) -> HttpResponse:
    data_field = _editable_field(key)
    form = _field_form(data_field, data=request.POST)
    error = None
    if form.is_valid():
        value = form.cleaned_data["value"]
        if data_field.store == "interests":
            value = [category.key for category in value]
        try:
            personal_data.personal_data_update(user=request.user, field_key=key, value=value)
        except personal_data.PersonalDataError as exc:
            error = str(exc)
    status = 200
    if error or not form.is_valid():
        status = 400
        if error:
            form.add_error(None, error)
        if request.htmx:
            return _field_row(request, data_field, editing=True, form=form, status=status)
        return render(
            request,
            "me/data.html",
            _panel_context(request, "data", groups=_data_groups(request, key, {key: form})),
            status=status,
        )
    message = _("Saved: %(field)s.") % {"field": data_field.label}
    if request.htmx:
        return _field_row(request, data_field, editing=False, message=message)
    messages.success(request, message)
    return redirect(reverse("me_data") + f"#field-{key}")


# History, policies, security -----------------------------------------------------------


@login_required
@require_GET
def history_page(request: HttpRequest) -> HttpResponse:
    events = (
        ConsentEvent.objects.filter(subject_id=request.user.subject_id)
        .select_related("purpose", "notice")
        .order_by("-seq")
    )
    # Counting uses the (subject_id, -seq) index; the page query is bounded.
    total = ConsentEvent.objects.filter(subject_id=request.user.subject_id).aggregate(
        n=Count("pk")
    )["n"]
    paginator = Paginator(events, HISTORY_PAGE_SIZE)
    paginator.count = total  # one count query, not a second one inside the paginator
    page = paginator.get_page(request.GET.get("page"))
    return render(request, "me/history.html", _panel_context(request, "history", page=page))


@login_required
@require_GET
def security_page(request: HttpRequest) -> HttpResponse:
    from allauth.mfa.models import Authenticator

    kinds = set(Authenticator.objects.filter(user=request.user).values_list("type", flat=True))
    return render(
        request,
        "me/security.html",
        _panel_context(request, "security", mfa_kinds=kinds),
    )
