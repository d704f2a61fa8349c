from __future__ import annotations

from django.urls import path

from rights import views

urlpatterns = [
    path("", views.requests_page, name="me_requests"),
    path("<uuid:uuid>/cancel/", views.request_cancel, name="me_request_cancel"),
    path("close-account/", views.account_close, name="me_close"),
]
