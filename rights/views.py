"""'Your requests' in the control panel. Every view is for the logged-in
person's own requests: _get_request_for_user looks a request up with the
person's subject id, so another person's is a 404."""

from __future__ import annotations

from allauth.account.decorators import reauthentication_required
from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from consents import emails as consent_emails
from consents.models import NewsletterSignup
from consents.panel import login_required
from rights import emails, erasure, exports, selectors, services, waiting
from rights.forms import RequestForm
from rights.models import DataExport, ExportStatus, Kind, RightsRequest


def _get_request_for_user(request: HttpRequest, uuid) -> RightsRequest:
    found = RightsRequest.objects.filter(uuid=uuid, subject_id=request.user.subject_id).first()
    if found is None:
        raise Http404
    return found


def _get_export_for_user(request: HttpRequest, uuid) -> DataExport:
    found = DataExport.objects.filter(uuid=uuid, subject_id=request.user.subject_id).first()
    if found is None:
        raise Http404
    return found


def _with_link(export: DataExport | None) -> DataExport | None:
    """The copy, with its signed download link while it is ready."""
    if export is not None and export.status == ExportStatus.READY:
        export.download_url = reverse(
            "me_export_download", args=[export.uuid, exports.export_download_token(export)]
        )
    return export


def _state(item: RightsRequest, *, waits: bool, export: DataExport | None = None) -> str:
    """What a request's "State" says to the person. An open request that waits
    for the company's other systems (rights.waiting) says so in plain words,
    with what the portal has done already, by kind, rather than "Received"
    the whole time; a copy says whether the portal's part is ready or being
    prepared (`export`: the latest copy, when it is this request's). The
    systems are not named: they are the company's inside."""
    if not item.is_open:
        return item.get_status_display()
    preparing = export is not None and export.is_open
    ready = export is not None and export.status == ExportStatus.READY
    if item.kind == Kind.ACCESS and waits and ready:
        return _(
            "In progress: the portal's part of your copy is ready; waiting for our other systems."
        )
    if item.kind == Kind.ACCESS and waits and preparing:
        return _(
            "In progress: we are preparing the portal's part of your copy; "
            "waiting for our other systems too."
        )
    if item.kind == Kind.ACCESS and preparing:
        return _("In progress: we are preparing your copy.")
    if not waits:
        return item.get_status_display()
    if item.kind == Kind.OBJECTION:
        return _(
            "In progress: this portal has stopped the uses concerned; "
            "waiting for our other systems to confirm they have stopped them too."
        )
    if item.kind == Kind.RESTRICTION:
        return _(
            "In progress: this portal has paused the uses concerned; "
            "waiting for our other systems to confirm they have paused them too."
        )
    if item.kind == Kind.ERASURE and item.erased_at is not None:
        return _(
            "In progress: your data is erased from this portal; "
            "waiting for our other systems to confirm they have erased theirs."
        )
    return _("In progress: waiting for our other systems.")


def _with_states(rights_requests: list[RightsRequest], export: DataExport | None) -> None:
    """Each request's `state` (_state), with one question to rights.waiting
    for them all."""
    waits = waiting.waiting_on_many(r.pk for r in rights_requests if r.is_open)
    for item in rights_requests:
        own = export if export is not None and export.request_id == item.pk else None
        item.state = _state(item, waits=item.pk in waits, export=own)


def _page(request: HttpRequest, form: RequestForm, *, status: int = 200) -> HttpResponse:
    subject_id = request.user.subject_id
    rights_requests = list(selectors.requests_for(subject_id=subject_id))
    limited = selectors.limited_purpose_ids(subject_id=subject_id)
    export = _with_link(selectors.latest_export(subject_id=subject_id))
    _with_states(rights_requests, export)
    open_copy_requests = {export.request_id} if export is not None and export.is_open else set()
    return render(
        request,
        "me/requests.html",
        {
            "section": "requests",
            "form": form,
            "export": export,
            "export_days": settings.RIGHTS_EXPORT_DAYS,
            "open_copy_requests": open_copy_requests,
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
    if form.is_valid() and form.cleaned_data["kind"] == Kind.ACCESS:
        # A copy of one's data is prepared by a worker: the same as the button.
        try:
            exports.export_request(
                user=request.user,
                details=form.cleaned_data["details"],
                jurisdiction=form.cleaned_data["jurisdiction"],
                purposes=form.cleaned_data["purposes"],
            )
        except services.RightsError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _copy_asked_message())
            return redirect(reverse("me_requests") + "#copy")
    elif form.is_valid():
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


# Closing an account, and erasing a newsletter subscription -----------------------------


def _erasure_context(person: erasure.Person, *, pending: RightsRequest | None) -> dict:
    """What the erasure pages say: what goes (counted now), what stays and
    why, the grace period and the date."""
    return {
        "plan": erasure.plan(person),
        "grace_days": settings.RIGHTS_ERASURE_GRACE_DAYS,
        "erase_on": pending.erase_after if pending else timezone.now() + services.erasure_grace(),
        "kept_days": settings.RIGHTS_REQUESTS_KEPT_DAYS,
        "audit_kept_days": settings.AUDIT_KEPT_DAYS,
        "pending": pending,
    }


@login_required
@reauthentication_required
@require_http_methods(["GET", "HEAD", "POST"])
def account_close(request: HttpRequest) -> HttpResponse:
    """Close the account: after reauthenticating, the person reads what will be
    erased, what must be kept and why, and the date; a POST confirms."""
    user = request.user
    pending = services.pending_erasure(subject_id=user.subject_id)
    if request.method == "POST" and pending is None:
        try:
            made = services.account_close(user=user)
        except services.RightsError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                _(
                    "Your account is closed. Your data will be erased on %(date)s; until "
                    "then you can cancel here or from the email we sent you."
                )
                % {"date": _datetime(made.erase_after)},
            )
            return redirect(reverse("me_requests") + f"#request-{made.uuid}")
    person = erasure.person_for(subject_id=user.subject_id, user_id=user.pk)
    return render(
        request,
        "me/close.html",
        {"section": "requests", **_erasure_context(person, pending=pending)},
        status=409 if request.method == "POST" else 200,
    )


def _datetime(moment) -> str:
    return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT")


def _link_invalid(request: HttpRequest) -> HttpResponse:
    return render(request, "rights/link_invalid.html", status=400)


@require_http_methods(["GET", "HEAD", "POST"])
def newsletter_erase(request: HttpRequest, token: str) -> HttpResponse:
    """From a newsletter email: erase the subscription and what we hold about
    the subscriber, after the grace period. GET shows what goes and a button
    (mail scanners follow links); only POST asks."""
    subject_id = consent_emails.subject_from_token(token, salt=consent_emails.ERASURE_SALT)
    signup = NewsletterSignup.objects.filter(subject_id=subject_id).first() if subject_id else None
    if signup is None:
        return _link_invalid(request)
    pending = services.pending_erasure(subject_id=signup.subject_id)
    asked = False
    if request.method == "POST":
        try:
            pending = services.newsletter_erasure_request(signup=signup)
        except services.RightsError as exc:
            messages.error(request, str(exc))
        else:
            asked = True
    person = erasure.person_for(subject_id=signup.subject_id, email=signup.email)
    return render(
        request,
        "rights/newsletter_erase.html",
        {"token": token, "asked": asked, **_erasure_context(person, pending=pending)},
    )


@require_http_methods(["GET", "HEAD", "POST"])
def erasure_cancel_link(request: HttpRequest, token: str) -> HttpResponse:
    """From the email that announced an erasure: cancel it during the grace
    period, without logging in (the signed link is the proof). GET shows the
    button; only POST cancels."""
    found = emails.erasure_from_token(token)
    if found is None:
        return _link_invalid(request)
    cancelled = False
    status = 200
    if request.method == "POST":
        try:
            found = services.erasure_cancel(request=found)
        except services.RightsError as exc:
            messages.error(request, str(exc))
            status = 409
        else:
            cancelled = True
    # Carried out here, it may still wait for the other systems: say so.
    waits = found.is_open and found.erased_at is not None and bool(waiting.waiting_on(found.pk))
    return render(
        request,
        "rights/erasure_cancel.html",
        {
            "erasure": found,
            "cancelled": cancelled,
            "token": token,
            "state": _state(found, waits=True) if waits else "",
        },
        status=status,
    )


def _copy_asked_message() -> str:
    return _(
        "We are preparing a copy of your data. It appears here when it is ready, and we email you."
    )


@login_required
@require_POST
def export_create(request: HttpRequest) -> HttpResponse:
    """Ask for a copy of one's data. Only written here; a worker builds it."""
    try:
        export = exports.export_request(user=request.user)
    except services.RightsError as exc:
        if request.htmx:
            return render(
                request,
                "me/requests.html#copy",
                {"export": _with_link(selectors.latest_export(subject_id=request.user.subject_id)),
                 "copy_error": str(exc)},
                status=409,
            )  # fmt: skip
        messages.error(request, str(exc))
        return redirect(reverse("me_requests") + "#copy")
    if request.htmx:
        return render(request, "me/requests.html#copy", {"export": export})
    messages.success(request, _copy_asked_message())
    return redirect(reverse("me_requests") + "#copy")


@login_required
@require_safe
def export_status(request: HttpRequest, uuid) -> HttpResponse:
    """How far one's copy is: the part of the page that htmx polls. Without
    htmx, the page itself."""
    export = _get_export_for_user(request, uuid)
    if not request.htmx:
        return redirect(reverse("me_requests") + "#copy")
    return render(request, "me/requests.html#copy", {"export": _with_link(export)})


@login_required
@require_safe
def export_download(request: HttpRequest, uuid, token: str) -> HttpResponse:
    """The ZIP, to its owner only (another person's copy is a 404, before
    anything else), after a fresh reauthentication, through a signed link
    that expires with the file."""
    return _download(request, _get_export_for_user(request, uuid), token)


@reauthentication_required
def _download(request: HttpRequest, export: DataExport, token: str) -> HttpResponse:
    if not exports.export_downloadable(export=export, token=token):
        return render(request, "rights/export_gone.html", {"section": "requests"}, status=410)
    exports.export_downloaded(export=export)
    stamp = timezone.localtime(export.ready_at).date().isoformat()
    response = FileResponse(
        exports.export_path(export).open("rb"),
        as_attachment=True,
        filename=f"my-data-{stamp}.zip",
        content_type="application/zip",
    )
    response["Cache-Control"] = "no-store, private"
    response["X-Robots-Tag"] = "noindex"
    return response
