from __future__ import annotations

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _

from policies import views as policies_views
from portal import ratelimits, views

admin.site.site_header = _("Clareza administration")
admin.site.site_title = _("Clareza")
admin.site.index_title = _("Privacy operations")
# Staff log in through allauth, never Django's own form: its rate limits and
# its second step (allauth.mfa) apply to /admin/login/ as to every login.
admin.site.login = secure_admin_login(admin.site.login)
handler429 = ratelimits.handler429

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    path("health/live/", views.live, name="live"),
    path("i18n/setlang/", views.set_language, name="set_language"),
    path("accounts/", include("allauth.urls")),
    path("", include("consents.urls")),
    # The panel's frame is consents'; its Policies section is the policies app's.
    path("me/policies/", policies_views.my_policies, name="me_policies"),
    path("me/requests/", include("rights.urls")),
    path("rights/", include("rights.public_urls")),
    path("me/", include("consents.panel_urls")),
    path("policies/", include("policies.urls")),
    path("api/", include("integrations.api.urls")),
    path("admin/", admin.site.urls),
]
