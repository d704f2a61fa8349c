from __future__ import annotations

from django.urls import path

from integrations.api import docs
from integrations.api.views import api

urlpatterns = [
    path("docs/", docs.page, name="api_docs"),
    path("", api.urls),
]
