from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from consents import emails as consent_emails
from consents import selectors as consent_selectors
from consents.emails import reconsent_token
from consents.models import NewsletterSignup
from consents.services import RequestFacts
from policies import emails, selectors, services, text
from policies.models import Acknowledgement, Policy, PolicyVersion
from policies.notices import Notice, notice_get, notices_for


def _version(slug: str, number: int | None = None) -> PolicyVersion:
    policy = get_object_or_404(Policy, slug=slug)
    versions = selectors.published(policy)
    version = versions.filter(number=number).first() if number else versions.first()
    if version is None:
        raise Http404
    return version


def _previous(version: PolicyVersion) -> PolicyVersion | None:
    return selectors.published(version.policy).filter(number__lt=version.number).first()


@require_safe
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "policies/index.html", {"states": selectors.policy_states()})


@require_safe
def current(request: HttpRequest, slug: str) -> HttpResponse:
    """The version in force; before a policy's first version takes effect, that one."""
    policy = get_object_or_404(Policy, slug=slug)
    version = selectors.in_force(policy) or next(iter(selectors.upcoming(policy)), None)
    if version is None:
        raise Http404
    return _show(request, version)


@require_safe
def version_detail(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    return _show(request, _version(slug, number))


def _show(request: HttpRequest, version: PolicyVersion) -> HttpResponse:
    in_force = selectors.in_force(version.policy)
    upcoming = selectors.upcoming(version.policy)
    return render(
        request,
        "policies/version.html",
        {
            "version": version,
            "body": text.render_markdown(version.localized("body")),
            "previous": _previous(version),
            "in_force": in_force,
            "is_in_force": in_force is not None and in_force.pk == version.pk,
            "is_upcoming": any(v.pk == version.pk for v in upcoming),
            "upcoming": [v for v in upcoming if v.pk != version.pk],
        },
    )


@require_safe
def history(request: HttpRequest, slug: str) -> HttpResponse:
    policy = get_object_or_404(Policy, slug=slug)
    versions = list(selectors.published(policy))
    if not versions:
        raise Http404
    in_force = selectors.in_force(policy)
    return render(
        request,
        "policies/history.html",
        {
            "policy": policy,
            "versions": versions,
            "in_force": in_force,
            "upcoming": {v.pk for v in selectors.upcoming(policy)},
        },
    )


def _diff_context(old: PolicyVersion, new: PolicyVersion) -> dict:
    blocks = text.diff(old.localized("body"), new.localized("body"))
    return {"old": old, "new": new, "blocks": blocks, "counts": text.counts(blocks)}


@require_safe
def diff(request: HttpRequest, slug: str, old: int, new: int) -> HttpResponse:
    if old == new:
        raise Http404
    return render(
        request, "policies/diff.html", _diff_context(_version(slug, old), _version(slug, new))
    )


# Signed links from the email: no login needed, and they expire -------------------


def _notification(token: str, salt: str) -> Notice | None:
    try:
        data = signing.loads(token, salt=salt, max_age=settings.POLICY_LINK_DAYS * 24 * 3600)
    except signing.BadSignature:
        return None
    return notice_get(data.get("n")) if isinstance(data, dict) else None


def _invalid(request: HttpRequest) -> HttpResponse:
    return render(request, "policies/link_invalid.html", status=400)


def _acknowledged(notification: Notice) -> bool:
    return notification.version.acknowledgements.filter(subject_id=notification.subject_id).exists()


@require_safe
def notice(request: HttpRequest, token: str) -> HttpResponse:
    """What changed, for the person the email was sent to."""
    notification = _notification(token, emails.NOTICE_SALT)
    if notification is None:
        return _invalid(request)
    version = notification.version
    previous = _previous(version)
    context = {
        "version": version,
        "summary": version.localized("summary"),
        "acknowledge_token": emails.token(notification.pk, emails.ACKNOWLEDGE_SALT),
        "acknowledged": _acknowledged(notification),
        "body": text.render_markdown(version.localized("body")) if previous is None else "",
    }
    if previous is not None:
        context.update(_diff_context(previous, version))
    return render(request, "policies/notice.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
def acknowledge_link(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows one button; POST records. Mail scanners follow links, and must
    not acknowledge anything on anyone's behalf."""
    notification = _notification(token, emails.ACKNOWLEDGE_SALT)
    if notification is None:
        return _invalid(request)
    if request.method == "POST":
        services.policy_acknowledge(
            subject_id=notification.subject_id,
            version=notification.version,
            method="email_link",
            user=notification.user,
        )
    return render(
        request,
        "policies/acknowledge.html",
        {
            "version": notification.version,
            "acknowledged": _acknowledged(notification),
            "reconsent_links": _reconsent_links(notification.subject_id),
        },
    )


def _reconsent_links(subject_id) -> list[tuple]:
    """Acknowledging the text answers nothing about consent: whatever the person
    is asked to decide again, each with its signed keep-or-withdraw link."""
    return [
        (
            ask,
            reverse(
                "consents:reconsent_link",
                kwargs={
                    "token": reconsent_token(request_id=ask.requests[0].pk, subject_id=subject_id)
                },
            ),
        )
        for ask in consent_selectors.reconsent_pending(subject_id=subject_id)
    ]


def _unsubscribe_subject(token: str):
    """A policy email's stop link names its notification; a newsletter email's
    (consents.emails.newsletter_links) names the subscriber."""
    notification = _notification(token, emails.UNSUBSCRIBE_SALT)
    if notification is not None:
        return notification.subject_id
    return consent_emails.subject_from_token(token, salt=emails.UNSUBSCRIBE_SALT)


@csrf_exempt  # RFC 8058: the mail client POSTs with no cookie and no form token
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """The one-click stop of every optional email. GET shows a button and
    changes nothing (mail scanners follow links); POST stops."""
    subject_id = _unsubscribe_subject(token)
    if subject_id is None:
        return _invalid(request)
    if request.method == "POST":
        # One click, no redirect (RFC 8058 section 3.2).
        withdrawn = services.optional_email_unsubscribe(
            subject_id=subject_id, facts=RequestFacts.from_request(request)
        )
        context = {"withdrawn": withdrawn, "done": True}
        if NewsletterSignup.objects.filter(subject_id=subject_id).exists():
            # Someone without an account: their receipts, and the way back.
            context.update(consent_emails.newsletter_links(subject_id))
        return render(request, "policies/unsubscribed.html", context)
    return render(request, "policies/unsubscribed.html", {"done": False, "token": token})


@login_required
@require_POST
def acknowledge(request: HttpRequest, version_id: int) -> HttpResponse:
    version = get_object_or_404(PolicyVersion, pk=version_id, status=PolicyVersion.Status.PUBLISHED)
    services.policy_acknowledge(
        subject_id=request.user.subject_id, version=version, method="web", user=request.user
    )
    messages.success(
        request,
        _("Thank you: you acknowledged %(version)s.") % {"version": version.display_title},
    )
    next_url = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(next_url, allowed_hosts=None):
        return redirect(next_url)
    return redirect("me_policies")


def pending_for(request: HttpRequest) -> dict:
    """Context processor: material versions the logged-in customer has not
    acknowledged, and, apart from those, the purposes they are asked to decide
    on again (acknowledging a version does not answer that)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.is_staff:
        return {}
    asks = consent_selectors.reconsent_pending(subject_id=user.subject_id)
    return {
        "policy_updates": selectors.unacknowledged_material(user),
        "reconsent_asks": asks,
        "reconsent_purposes": [ask.purpose for ask in asks],
    }


@login_required
@require_safe
def my_policies(request: HttpRequest) -> HttpResponse:
    """The control panel's Policies section: every version this person was sent
    or acknowledged, and whether they acknowledged it."""
    subject_id = request.user.subject_id
    acknowledged = {
        a.version_id: a
        for a in Acknowledgement.objects.filter(subject_id=subject_id).select_related(
            "version__policy"
        )
    }
    sent = {n.version.pk: n for n in notices_for(subject_id)}
    versions = {
        **{a.version_id: a.version for a in acknowledged.values()},
        **{pk: n.version for pk, n in sent.items()},
    }
    rows = [
        {"version": version, "ack": acknowledged.get(pk), "notification": sent.get(pk)}
        for pk, version in sorted(
            versions.items(), key=lambda item: item[1].published_at, reverse=True
        )
    ]
    return render(
        request,
        "me/policies.html",
        {"section": "policies", "rows": rows, "states": selectors.policy_states()},
    )
