"""'Your requests' in the control panel. Every view is for the logged-in
person's own requests: _get_request_for_user looks a request up with the
person's subject id, so another person's is a 404."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from consents.panel import login_required
from rights import selectors, services
from rights.forms import RequestForm
from rights.models import RightsRequest


def _get_request_for_user(request: HttpRequest, uuid) -> RightsRequest:
    found = RightsRequest.objects.filter(uuid=uuid, subject_id=request.user.subject_id).first()
    if found is None:
        raise Http404
    return found


def _page(request: HttpRequest, form: RequestForm, *, status: int = 200) -> HttpResponse:
    subject_id = request.user.subject_id
    rights_requests = list(selectors.requests_for(subject_id=subject_id))
    limited = selectors.limited_purpose_ids(subject_id=subject_id)
    return render(
        request,
        "me/requests.html",
        {
            "section": "requests",
            "form": form,
            "open_requests": [r for r in rights_requests if r.is_open],
            "closed_requests": [r for r in rights_requests if not r.is_open],
            "limited_purposes": [p for p in form.fields["purposes"].queryset if p.pk in limited],
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def requests_page(request: HttpRequest) -> HttpResponse:
    """The person's requests, and the form to make one (a plain POST)."""
    if request.method != "POST":
        return _page(request, RequestForm())
    form = RequestForm(request.POST)
    if form.is_valid():
        try:
            made = services.request_create(
                user=request.user,
                kind=form.cleaned_data["kind"],
                details=form.cleaned_data["details"],
                jurisdiction=form.cleaned_data["jurisdiction"],
                purposes=form.cleaned_data["purposes"],
            )
        except services.RightsError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                _("We received your request: %(kind)s. We will answer by %(date)s.")
                % {"kind": made.get_kind_display(), "date": _date(made.due_at)},
            )
            return redirect(reverse("me_requests") + f"#request-{made.uuid}")
    return _page(request, form, status=400)


def _date(moment) -> str:
    return formats.date_format(timezone.localtime(moment), "DATE_FORMAT")


@login_required
@require_POST
def request_cancel(request: HttpRequest, uuid) -> HttpResponse:
    rights_request = _get_request_for_user(request, uuid)
    try:
        services.request_cancel(request=rights_request, user=request.user)
    except services.RightsError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            _("Cancelled: %(kind)s.") % {"kind": rights_request.get_kind_display()},
        )
    return redirect(reverse("me_requests") + f"#request-{rights_request.uuid}")
