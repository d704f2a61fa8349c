from __future__ import annotations

from django.urls import path

from consents import views

app_name = "consents"

urlpatterns = [
    path("privacy/", views.privacy, name="privacy"),
    path("privacy.json", views.privacy_json, name="privacy_json"),
    path(".well-known/jwks.json", views.jwks, name="jwks"),
    path(
        ".well-known/clareza-ledger-checkpoints.json",
        views.ledger_checkpoints,
        name="ledger_checkpoints",
    ),
    path("ledger/proofs/<uuid:receipt_id>.json", views.ledger_proof, name="ledger_proof"),
    path("ledger/consistency.json", views.ledger_consistency, name="ledger_consistency"),
    path("ledger/clareza-verify.py", views.verify_script, name="verify_script"),
    path(".well-known/gpc.json", views.gpc_json, name="gpc_json"),
    path("newsletter/", views.newsletter, name="newsletter"),
    path("newsletter/sent/", views.newsletter_sent, name="newsletter_sent"),
    path("newsletter/confirm/<str:token>/", views.newsletter_confirm, name="newsletter_confirm"),
    path("reconsent/<str:token>/", views.reconsent_link, name="reconsent_link"),
    path("me/receipts/<uuid:receipt_id>.jws", views.receipt, name="receipt"),
    path(
        "newsletter/receipts/<str:token>/",
        views.newsletter_receipts,
        name="newsletter_receipts",
    ),
    path(
        "newsletter/receipts/<str:token>/<uuid:receipt_id>.jws",
        views.newsletter_receipt,
        name="newsletter_receipt",
    ),
    path("me/receipts/<uuid:receipt_id>/", views.receipt_page, name="receipt_page"),
]
