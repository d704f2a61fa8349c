"""The customer's control panel (/me/): choices, my data, history, policies,
security. Every view is for the logged-in person's own data only: nothing in a
URL names another person, and receipts are looked up with the owner's id."""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required as django_login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import HttpResponseClientRedirect

from consents import personal_data, selectors, services, value_exchange
from consents.models import ConsentEvent, ConsentState, Decision, Method, Purpose, PurposeNotice

HISTORY_PAGE_SIZE = 20


def login_required(view):
    """login_required, which answers an htmx request from a tab whose session
    has ended with a client redirect to the login page (and a message there),
    not with a redirect that htmx would follow and swap into the row."""
    plain = django_login_required(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.htmx and not request.user.is_authenticated:
            messages.info(request, _("Your session has ended. Log in again to continue."))
            current = request.htmx.current_url_abs_path or reverse("me")
            if not url_has_allowed_host_and_scheme(current, allowed_hosts=None):
                current = reverse("me")
            login = resolve_url(settings.LOGIN_URL)
            return HttpResponseClientRedirect(f"{login}?{urlencode({'next': current})}")
        return plain(request, *args, **kwargs)

    return wrapper


def _row(request: HttpRequest, purpose: Purpose, state, notice) -> dict:
    return {
        "purpose": purpose,
        "granted": bool(state and state.decision == Decision.GRANTED),
        "decided": state is not None,
        "gpc_conflict": request.gpc and purpose.is_sale_or_sharing,
        # The text the person reads; its hash travels with the switch.
        "notice": notice,
    }


def _rows(request: HttpRequest) -> list[dict]:
    """Every active purpose with the person's current decision and notice, in
    three queries plus one for the data categories, whatever their number."""
    states = selectors.consent_states(subject_id=request.user.subject_id)
    purposes = list(selectors.active_purposes())
    notices = services.current_notices(purposes)
    return [_row(request, p, states.get(p.pk), notices.get(p.pk)) for p in purposes]


def _panel_context(request: HttpRequest, section: str, **extra) -> dict:
    return {"section": section, **extra}


def _dependents(request: HttpRequest) -> dict:
    """What other parts of the choices page show from the decisions: the
    benefits, and whether "withdraw all" has anything to withdraw."""
    subject_id = request.user.subject_id
    return {
        "benefits": value_exchange.benefits_for(subject_id=subject_id),
        "any_granted": ConsentState.objects.filter(
            subject_id=subject_id, decision=Decision.GRANTED, purpose__retired_at__isnull=True
        ).exists(),
    }


@login_required
@require_safe
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
            benefits=value_exchange.benefits_for(subject_id=request.user.subject_id),
        ),
    )


def _optional_purpose(key: str) -> Purpose:
    purpose = selectors.active_purposes().filter(key=key).first()
    if purpose is None or not purpose.is_optional:
        raise Http404
    return purpose


def _switch_answer(
    request: HttpRequest,
    purpose: Purpose,
    *,
    message: str,
    error: bool = False,
    receipt=None,
    status: int = 200,
) -> HttpResponse:
    """With htmx: the purpose's row as it stands now, with the message in it, and
    the parts of the page that depend on it swapped out of band. Without
    JavaScript: back to the row, with the message."""
    # Errors answer 409 or 422, the statuses base.html's htmx-config swaps in place;
    # never 400/403/404/500, which django-htmx's debug script turns into a whole page.
    if not request.htmx:
        (messages.error if error else messages.success)(request, message)
        return redirect(reverse("me") + f"#purpose-{purpose.key}")
    state = ConsentState.objects.filter(subject_id=request.user.subject_id, purpose=purpose).first()
    notice = services.current_notices([purpose]).get(purpose.pk)
    return render(
        request,
        "me/_switch_answer.html",
        {
            "row": _row(request, purpose, state, notice),
            "status": message,
            "status_is_error": error,
            "receipt": receipt,
            "focus_switch": True,
            **_dependents(request),
        },
        status=status,
    )


@login_required
@require_POST
def consent_switch(request: HttpRequest, key: str) -> HttpResponse:
    """Record one decision from the panel. With htmx, answer the purpose's row
    (and what depends on it); without JavaScript, redirect back to it. A grant
    must carry the hash of the description the person read."""
    purpose = _optional_purpose(key)
    decision = request.POST.get("decision")
    if decision not in (Decision.GRANTED, Decision.WITHDRAWN):
        return _switch_answer(
            request, purpose, message=_("Choose to turn it on or off."), error=True, status=422
        )
    notice = None
    if decision == Decision.GRANTED:
        # Withdrawing never waits on the text; granting needs the text that was read.
        notice = (
            PurposeNotice.objects.filter(
                purpose=purpose, content_hash=request.POST.get("notice", "")
            )
            .order_by("-version")
            .first()
        )
        if notice is None:
            return _switch_answer(
                request, purpose, message=_stale_message(purpose), error=True, status=409
            )
    try:
        event = services.consent_record(
            subject_id=request.user.subject_id,
            purpose=purpose,
            decision=decision,
            method=Method.PANEL,
            notice=notice,
            facts=services.RequestFacts.from_request(request),
            reconfirm=request.POST.get("reconfirm") == "1",
        )
    except services.ConsentError as exc:
        return _switch_answer(request, purpose, message=str(exc), error=True, status=409)
    if event is not None:
        text = (
            _("“%(purpose)s” is on.")
            if decision == Decision.GRANTED
            else _("“%(purpose)s” is off. We stopped using your data for it.")
        )
        message = text % {"purpose": purpose.display_name}
    else:
        message = _("Nothing changed: that was already your choice.")
    return _switch_answer(request, purpose, message=message, receipt=event)


def _stale_message(purpose: Purpose) -> str:
    # The service's own words for a notice that is not the current one.
    return _(
        "The description of “%(purpose)s” changed while you were reading it. "
        "Please read it again and confirm your choice."
    ) % {"purpose": purpose.display_name}


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
    declared = personal_data.fields()
    for category_key in dict.fromkeys(f.category for f in declared):
        category = categories.get(category_key)
        if category is None:
            continue
        fields = []
        for data_field in declared:
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
    offer_form = form is None and editing == data_field.key and data_field.editable and allowed
    # A field's choices (the shop's categories are a query) are read once, for
    # its text and its form.
    choices = data_field.choice_list() if data_field.multiple and (value or offer_form) else []
    if offer_form:
        form = _field_form(data_field, initial=value, choices=choices)
    return {
        "field": data_field,
        "value": value,
        "display": _display(data_field, value, choices),
        "allowed": allowed,
        "form": form,
    }


def _display(data_field, value, choices) -> str:
    if data_field.multiple:
        labels = dict(choices)
        return ", ".join(str(labels.get(v, v)) for v in value)
    return value or ""


def _field_form(data_field, *, initial=None, data=None, choices=None):
    from django import forms

    form_field = data_field.form_field()
    if choices is not None and data_field.multiple:
        form_field.choices = choices
    # The form replaces the Edit link that was used: the cursor goes into it.
    form_field.widget.attrs["autofocus"] = True
    form_class = type("FieldForm", (forms.Form,), {"value": form_field})
    return form_class(data=data, initial={"value": initial}, prefix=data_field.key)


def _editable_field(key: str) -> personal_data.DataField:
    data_field = personal_data.field_for(key)
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
@require_safe
def data_page(request: HttpRequest) -> HttpResponse:
    editing = request.GET.get("edit")
    return render(
        request,
        "me/data.html",
        _panel_context(request, "data", groups=_data_groups(request, editing)),
    )


@login_required
@require_safe
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
            # 422, which the page swaps in place (see _switch_answer).
            return _field_row(request, data_field, editing=True, form=form, status=422)
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
@require_safe
def history_page(request: HttpRequest) -> HttpResponse:
    events = (
        ConsentEvent.objects.filter(subject_id=request.user.subject_id)
        .select_related("purpose", "notice")
        .order_by("-id")
    )
    # Counting uses the (subject_id, -id) index; the page query is bounded.
    total = ConsentEvent.objects.filter(subject_id=request.user.subject_id).aggregate(
        n=Count("pk")
    )["n"]
    paginator = Paginator(events, HISTORY_PAGE_SIZE)
    paginator.count = total  # one count query, not a second one inside the paginator
    page = paginator.get_page(request.GET.get("page"))
    return render(request, "me/history.html", _panel_context(request, "history", page=page))


@login_required
@require_safe
def security_page(request: HttpRequest) -> HttpResponse:
    from allauth.mfa.models import Authenticator

    kinds = set(Authenticator.objects.filter(user=request.user).values_list("type", flat=True))
    return render(
        request,
        "me/security.html",
        _panel_context(
            request,
            "security",
            mfa_kinds=kinds,
            erasure_grace_days=settings.RIGHTS_ERASURE_GRACE_DAYS,
        ),
    )
