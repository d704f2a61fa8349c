from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_safe

from consents import (
    changes,
    checkpoints,
    emails,
    ledger,
    ratelimit,
    receipts,
    selectors,
    services,
)
from consents.forms import NewsletterForm
from consents.models import (
    ConsentEvent,
    Decision,
    LedgerCheckpoint,
    LedgerSeal,
    LegalBasis,
    Method,
    NewsletterSignup,
    ReconsentRequest,
    legal_basis_codes,
)

# Transparency -----------------------------------------------------------------


@require_safe
def privacy(request: HttpRequest) -> HttpResponse:
    # The periods stated here are the ones the retention task enforces, read
    # from the same rules (rights/retention.py).
    from rights import retention

    purposes = list(selectors.active_purposes())
    for purpose in purposes:
        purpose.basis = legal_basis_codes(
            purpose.legal_basis, sensitive=purpose.data_categories_sensitive
        )
        purpose.retention_rule = retention.purpose_rule(purpose)
    return render(
        request,
        "consents/privacy.html",
        {
            "optional_purposes": [p for p in purposes if p.is_optional],
            "required_purposes": [p for p in purposes if not p.is_optional],
            "legal_bases": LegalBasis,
            "retention_periods": retention.stated_periods(),
        },
    )


def _purpose_json(purpose, notice) -> dict:
    codes = legal_basis_codes(purpose.legal_basis, sensitive=purpose.data_categories_sensitive)
    return {
        "key": purpose.key,
        "name": {"en": notice.content["en"]["name"], "pt-br": notice.content["pt-br"]["name"]},
        "description": {
            "en": notice.content["en"]["description"],
            "pt-br": notice.content["pt-br"]["description"],
        },
        "benefit": {
            "en": notice.content["en"]["benefit"],
            "pt-br": notice.content["pt-br"]["benefit"],
        },
        "dpv:hasPurpose": purpose.dpv_code or None,
        "legalBasis": {
            "code": purpose.legal_basis,
            "gdpr": codes["gdpr"],
            "lgpd": codes["lgpd"],
            "dpv": codes["dpv"],
            "explicitConsent": codes["dpv"] == "dpv:ExplicitlyExpressedConsent",
        },
        "optional": purpose.is_optional,
        "dataCategories": [
            {
                "key": c.key,
                "name": {"en": c.name, "pt-br": c.name_pt or c.name},
                "dpv:hasPersonalData": c.dpv_code or None,
                "sensitive": c.sensitive,
            }
            for c in purpose.data_categories.all()
        ],
        "retentionDays": purpose.retention_days,
        "recipients": {
            "en": notice.content["en"]["recipients"],
            "pt-br": notice.content["pt-br"]["recipients"],
        },
        "transfersAbroad": {
            "en": notice.content["en"]["transfers_abroad"],
            "pt-br": notice.content["pt-br"]["transfers_abroad"],
        },
        "saleOrSharing": purpose.is_sale_or_sharing,
        "notice": {"version": notice.version, "sha256": notice.content_hash},
    }


def privacy_document() -> dict:
    """The inventory as /privacy.json states it (the API's /v1/inventory too)."""
    purposes = list(selectors.active_purposes())
    notices = services.current_notices(purposes)
    return {
        "@context": {
            "dpv": "https://w3id.org/dpv#",
            "pd": "https://w3id.org/dpv/pd#",
        },
        "controller": {
            "name": settings.CONTROLLER_NAME,
            "email": settings.CONTROLLER_EMAIL,
            "address": settings.CONTROLLER_ADDRESS,
            "phone": settings.CONTROLLER_PHONE,
        },
        "dataProtectionOfficer": {"name": settings.DPO_NAME, "email": settings.DPO_EMAIL},
        "purposes": [_purpose_json(p, notices[p.pk]) for p in purposes if p.pk in notices],
        "globalPrivacyControl": {
            "honoured": True,
            "scope": "sale, sharing and cross-context advertising",
        },
        "receiptKeys": settings.SITE_URL + reverse("consents:jwks"),
        "policies": services.policies_document(),
    }


@require_safe
def privacy_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(privacy_document(), json_dumps_params={"ensure_ascii": False, "indent": 2})


@require_safe
def jwks(request: HttpRequest) -> JsonResponse:
    response = JsonResponse(receipts.public_jwks())
    response["Cache-Control"] = "public, max-age=3600"
    return response


@require_safe
def ledger_checkpoints(request: HttpRequest) -> JsonResponse:
    """The ledger's signed checkpoints, newest first, headed by the newest
    seal: anyone holding one can later prove that what it covers was never
    removed or changed."""
    latest = list(LedgerCheckpoint.objects.order_by("-size")[: checkpoints.PUBLISHED])
    lines = [checkpoints.checkpoint_line(c) for c in latest]
    # The newest seal too (signed the same way), so that a proof fetched just
    # now can be compared with what is published.
    seal = LedgerSeal.objects.order_by("-size").first()
    if seal is not None and (not latest or seal.size > latest[0].size):
        lines.insert(0, checkpoints.checkpoint_line(seal))
    body = {
        "ledger": settings.SITE_URL,
        "formats": list(checkpoints.FORMATS),
        "keys": settings.SITE_URL + reverse("consents:jwks"),
        "checkpoints": lines,
    }
    response = JsonResponse(body)
    response["Cache-Control"] = f"public, max-age={settings.LEDGER_SEAL_SECONDS}"
    return response


def _count(value: str | None) -> int | None:
    """A number of events from a query string (ASCII digits, within a bigint), or None."""
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 18:
        return None
    return int(value)


@require_safe
def ledger_proof(request: HttpRequest, receipt_id) -> JsonResponse:
    """The inclusion proof of one decision (by its receipt's id) against a
    signed seal: the newest, or the one of `?size=` (a published checkpoint's
    size). It holds hashes only: anyone with the receipt may fetch it."""
    event = ConsentEvent.objects.filter(uuid=receipt_id).first()
    if event is None:
        return JsonResponse({"error": "No decision has this receipt id."}, status=404)
    size = request.GET.get("size")
    if size is not None and _count(size) is None:
        return JsonResponse({"error": "size must be a whole number of events."}, status=400)
    proof = ledger.inclusion_proof(event, size=_count(size) if size else None)
    if proof is None:
        if size:
            return JsonResponse(
                {"error": f"The ledger has no seal of {size} events that covers this decision."},
                status=404,
            )
        response = JsonResponse(
            {"error": "This decision is not sealed yet: try again in a few seconds."}, status=404
        )
        response["Retry-After"] = str(settings.LEDGER_SEAL_SECONDS)
        return response
    response = JsonResponse(proof.as_dict())
    response["Cache-Control"] = "public, max-age=300"
    return response


@require_safe
def ledger_consistency(request: HttpRequest) -> JsonResponse:
    """The proof that the ledger signed at `?first=` events is the beginning
    of the one signed at `?second=` (the newest seal when absent): what was
    proved against an older checkpoint still stands in the newer one."""
    first, second = request.GET.get("first", ""), request.GET.get("second")
    if _count(first) is None or (second is not None and _count(second) is None):
        return JsonResponse(
            {"error": "first (and second, if given) must be whole numbers of events."}, status=400
        )
    proof = ledger.consistency_proof(_count(first), _count(second) if second else None)
    if proof is None:
        return JsonResponse(
            {"error": "The ledger has no pair of seals of these sizes, the first no larger."},
            status=404,
        )
    response = JsonResponse(proof.as_dict())
    response["Cache-Control"] = "public, max-age=300"
    return response


@require_safe
def verify_script(request: HttpRequest) -> HttpResponse:
    """The offline verifier: a Python script with no dependencies that checks
    a receipt, its inclusion proof and the checkpoint with the published keys."""
    script = Path(__file__).with_name("verify_offline.py").read_bytes()
    response = HttpResponse(script, content_type="text/x-python; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="clareza-verify.py"'
    response["Cache-Control"] = "public, max-age=3600"
    return response


@require_safe
def gpc_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"gpc": True, "lastUpdate": settings.GPC_LAST_UPDATE})


# Newsletter, double opt-in ------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
def newsletter(request: HttpRequest) -> HttpResponse:
    form = NewsletterForm(request.POST or None, gpc=request.gpc)
    if request.method == "POST" and form.is_valid():
        wait = ratelimit.consume(
            request,
            action="newsletter",
            rates=settings.NEWSLETTER_RATE_LIMITS,
            key=form.cleaned_data["email"],
        )
        if wait is not None:
            form.add_error(
                None,
                _(
                    "Too many requests for this address or from your connection. Nothing "
                    "was sent. Please wait %(wait)s and try again."
                )
                % {"wait": ratelimit.wait_text(wait)},
            )
            response = render(request, "consents/newsletter.html", {"form": form}, status=429)
            response["Retry-After"] = str(wait)
            return response
        choices, notices, _methods = form.consent_choices()
        services.newsletter_signup_start(
            email=form.cleaned_data["email"],
            choices=choices,
            notices=notices,
            language=translation.get_language() or settings.LANGUAGE_CODE,
            request=request,
        )
        # The same words whether the address is new, pending or already confirmed,
        # and whether an email left now or one is still waiting to be used.
        return redirect("consents:newsletter_sent")
    status = 400 if request.method == "POST" else 200
    return render(request, "consents/newsletter.html", {"form": form}, status=status)


@require_safe
def newsletter_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "consents/newsletter_sent.html")


def _signup_from_token(token: str) -> NewsletterSignup | None:
    from consents.services import NEWSLETTER_CONFIRMATION_DAYS

    try:
        data = signing.loads(
            token, salt=emails.NEWSLETTER_SALT, max_age=NEWSLETTER_CONFIRMATION_DAYS * 24 * 3600
        )
    except signing.BadSignature:
        return None
    signup = NewsletterSignup.objects.filter(subject_id=data.get("s")).first()
    if signup is None or signup.created_at.isoformat() != data.get("t"):
        return None
    return signup


@require_http_methods(["GET", "HEAD", "POST"])
def newsletter_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button, POST confirms: link scanners in mail systems follow
    links, and must not be able to consent on anyone's behalf."""
    signup = _signup_from_token(token)
    if signup is None:
        return render(request, "consents/newsletter_invalid.html", status=400)
    if request.method == "POST" and signup.pending_choices:
        confirmation = services.newsletter_signup_confirm(
            signup=signup, facts=services.RequestFacts.from_request(request)
        )
        messages.success(request, _("Thank you: your subscription is confirmed."))
        if confirmation.changed:
            messages.warning(
                request,
                _(
                    "We changed the description of %(purposes)s after you subscribed, so we "
                    "did not switch it on. Read the new text and subscribe again if you "
                    "still want it."
                )
                % {"purposes": ", ".join(f"“{name}”" for name in confirmation.changed)},
            )
        return redirect("consents:newsletter_confirm", token=token)
    subscribed = (
        selectors.subjects_accepting_optional_email().filter(subject_id=signup.subject_id).exists()
    )
    return render(
        request,
        "consents/newsletter_confirm.html",
        {"signup": signup, "subscribed": subscribed, **emails.newsletter_links(signup.subject_id)},
    )


def _link_invalid(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "consents/newsletter_invalid.html",
        {"kind": "link", "days": settings.POLICY_LINK_DAYS},
        status=400,
    )


# Receipts for subscribers without an account, from a signed link ----------------------

NEWSLETTER_RECEIPTS_SHOWN = 100


@require_safe
def newsletter_receipts(request: HttpRequest, token: str) -> HttpResponse:
    """Every decision of a newsletter subscriber, newest first, each with its
    signed receipt: what an account holder finds in their history."""
    subject_id = emails.subject_from_token(token, salt=emails.RECEIPTS_SALT)
    if subject_id is None:
        return _link_invalid(request)
    events = (
        ConsentEvent.objects.filter(subject_id=subject_id)
        .select_related("purpose", "notice")
        .order_by("-id")[:NEWSLETTER_RECEIPTS_SHOWN]
    )
    return render(
        request,
        "consents/newsletter_receipts.html",
        {"events": events, "token": token, **emails.newsletter_links(subject_id)},
    )


@require_safe
def newsletter_receipt(request: HttpRequest, token: str, receipt_id) -> HttpResponse:
    subject_id = emails.subject_from_token(token, salt=emails.RECEIPTS_SALT)
    if subject_id is None:
        return _link_invalid(request)
    return _receipt_download(request, subject_id, receipt_id)


# Deciding again, from the email ---------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
def reconsent_link(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows what changed and two buttons; only POST decides (mail scanners
    follow links). The link is signed for one person and one request, and
    decides nothing once the grant was given again, withdrawn or lapsed."""
    try:
        data = signing.loads(token, salt=emails.RECONSENT_SALT)
        subject_id = uuid.UUID(data["s"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return render(request, "policies/link_invalid.html", status=400)
    reconsent = ReconsentRequest.objects.select_related("purpose").filter(pk=data.get("r")).first()
    if reconsent is None:
        return render(request, "policies/link_invalid.html", status=400)
    purpose = reconsent.purpose
    pending = selectors.reconsent_is_pending(subject_id=subject_id, purpose=purpose)
    if request.method == "POST":
        decision = request.POST.get("decision")
        if decision not in (Decision.GRANTED, Decision.WITHDRAWN):
            return HttpResponseBadRequest(_("Choose to keep it or to withdraw it."))
        if pending:
            try:
                services.consent_record(
                    subject_id=subject_id,
                    purpose=purpose,
                    decision=decision,
                    method=Method.EMAIL_LINK,
                    facts=services.RequestFacts.from_request(request),
                    reconfirm=decision == Decision.GRANTED,
                )
            except services.ConsentError as exc:
                messages.error(request, str(exc))
            else:
                messages.success(
                    request,
                    (
                        _("Thank you: “%(purpose)s” stays on under the new terms.")
                        if decision == Decision.GRANTED
                        else _("“%(purpose)s” is off. We stopped using your data for it.")
                    )
                    % {"purpose": purpose.display_name},
                )
        return redirect("consents:reconsent_link", token=token)
    return render(
        request,
        "consents/reconsent.html",
        {
            "purpose": purpose,
            "reconsent": reconsent,
            "changes": changes.describe(reconsent.differences),
            "pending": pending,
        },
    )


# Receipts -------------------------------------------------------------------------


def _get_event_for_subject(subject_id, receipt_id) -> ConsentEvent:
    """The person's own ledger event, or 404: another person's receipt does not exist."""
    event = (
        ConsentEvent.objects.filter(uuid=receipt_id, subject_id=subject_id)
        .select_related("purpose", "notice")
        .first()
    )
    if event is None:
        raise Http404
    return event


@login_required
@require_safe
def receipt(request: HttpRequest, receipt_id) -> HttpResponse:
    return _receipt_download(request, request.user.subject_id, receipt_id)


def _receipt_unavailable(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "consents/receipt_unavailable.html",
        {"controller_email": settings.CONTROLLER_EMAIL},
        status=503,
    )


def _receipt_download(request: HttpRequest, subject_id, receipt_id) -> HttpResponse:
    """The signed receipt of one of this subject's decisions, or 404."""
    event = _get_event_for_subject(subject_id, receipt_id)
    try:
        token = receipts.receipt_jws(event, language=translation.get_language() or "en")
    except receipts.ReceiptUnavailable:
        return _receipt_unavailable(request)
    response = HttpResponse(token, content_type="application/jose")
    response["Content-Disposition"] = f'attachment; filename="consent-receipt-{event.uuid}.jws"'
    return response


@login_required
@require_safe
def receipt_page(request: HttpRequest, receipt_id) -> HttpResponse:
    """The receipt in plain language, beside its signed download. What is shown
    is read back from the signed token itself, so the page and the file agree."""
    event = _get_event_for_subject(request.user.subject_id, receipt_id)
    try:
        token = receipts.receipt_jws(event, language=translation.get_language() or "en")
    except receipts.ReceiptUnavailable:
        return _receipt_unavailable(request)
    claims = receipts.receipt_verify(token, receipts.public_jwks())
    (controller,) = claims["piiControllers"]
    (purpose,) = claims["services"][0]["purposes"]
    return render(
        request,
        "me/receipt.html",
        {
            "section": "history",
            "event": event,
            "claims": claims,
            "controller": controller,
            "purpose": purpose,
            "retention_days": event.notice.content.get("retention_days"),
            "signed_at": datetime.fromtimestamp(claims["consentTimestamp"], tz=UTC),
            "key_id": receipts.signing_key().kid,
            "site_url": settings.SITE_URL,
        },
    )
