from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from chalkweb import views
from runs import views as runs_views
from scheduling import views as scheduling_views
from scheduling.api.errors import api_not_found

# The console (see scheduling/views.py for who may use it). /functions/<name> is also the
# console_url the API and the SDK print.
console = [
    path("", runs_views.functions_page, name="functions"),
    path("functions/<str:name>", runs_views.function_page, name="function"),
    path("runs", runs_views.runs_page, name="runs"),
    path("runs/<int:run_id>", runs_views.run_page, name="run"),
    path("secrets", scheduling_views.secrets_page, name="secrets"),
    path("tokens", scheduling_views.tokens_page, name="tokens"),
]

urlpatterns = [
    *console,
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("api/", include("scheduling.api.urls")),
    path("", include("runs.urls")),
    # Last: a JSON 404 for any /api/ URL no app serves (Django's own 404 is an HTML page).
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
]

handler400 = views.bad_request
