from __future__ import annotations

from django.urls import path

from policies import views

app_name = "policies"

urlpatterns = [
    path("", views.index, name="index"),
    path("notice/<str:token>/", views.notice, name="notice"),
    path("acknowledge/<str:token>/", views.acknowledge_link, name="acknowledge_link"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("versions/<int:version_id>/acknowledge/", views.acknowledge, name="acknowledge"),
    path("<slug:slug>/", views.current, name="current"),
    path("<slug:slug>/history/", views.history, name="history"),
    path("<slug:slug>/v<int:number>/", views.version_detail, name="version"),
    path("<slug:slug>/diff/<int:old>/<int:new>/", views.diff, name="diff"),
]
