from __future__ import annotations

from django.urls import path

from rights import views

urlpatterns = [
    path("", views.requests_page, name="me_requests"),
    path("<uuid:uuid>/cancel/", views.request_cancel, name="me_request_cancel"),
    path("close-account/", views.account_close, name="me_close"),
    path("copy/", views.export_create, name="me_export_create"),
    path("copy/<uuid:uuid>/", views.export_status, name="me_export_status"),
    path(
        "copy/<uuid:uuid>/download/<str:token>/",
        views.export_download,
        name="me_export_download",
    ),
]
