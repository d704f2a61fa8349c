"""Links in emails, for people who may have no account (or are not logged in):
each is a signed token; GET shows a button, only POST acts."""

from __future__ import annotations

from django.urls import path

from rights import views

app_name = "rights"

urlpatterns = [
    path("erase/<str:token>/", views.newsletter_erase, name="newsletter_erase"),
    path("erasure/cancel/<str:token>/", views.erasure_cancel_link, name="erasure_cancel"),
]
