from __future__ import annotations

from django.urls import path

from consents import panel

urlpatterns = [
    path("", panel.consents_page, name="me"),
    path("consents/withdraw-all/", panel.consent_withdraw_all, name="me_consent_withdraw_all"),
    path("consents/<slug:key>/", panel.consent_switch, name="me_consent_switch"),
    path("data/", panel.data_page, name="me_data"),
    path("data/<slug:key>/edit/", panel.data_field_edit, name="me_data_edit"),
    path("data/<slug:key>/", panel.data_field_save, name="me_data_save"),
    path("history/", panel.history_page, name="me_history"),
    path("security/", panel.security_page, name="me_security"),
]
