from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from chalkcompute.runtime import protocol
from chalkweb import views
from common.api_errors import api_not_found
from health import views as health_views

# The OpenAPI schema and its reference are public: they describe the API, not anyone's data.
public = {"authentication_classes": [], "permission_classes": [AllowAny]}

urlpatterns = [
    path("", include("console.urls")),
    re_path(
        r"^(?P<path>runs|runs/\d+|functions/[^/]+|secrets|tokens|audit)/$",
        views.without_trailing_slash,
    ),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", health_views.readyz, name="readyz"),
    path("metrics", health_views.metrics_view, name="metrics"),
    # The REST API: one include per app, each under /api/v1/ (token required).
    path("api/v1/", include("scheduling.api.urls")),
    path("api/v1/", include("runs.api_urls")),
    path("api/v1/", include("access.api_urls")),
    path("api/v1/", include("alerts.api_urls")),
    path(protocol.API_PATH.lstrip("/"), include("runs.runner_api")),
    # The SDK's package index (PEP 503), public like the schema: see sdk/index.py.
    path("simple/", include("sdk.index")),
    path("api/schema/", SpectacularAPIView.as_view(**public), name="api-schema"),
    # The split view serves Swagger UI's start-up script from this URL (?script) instead of
    # inline, so the reference keeps the Content-Security-Policy; its template is overridden in
    # templates/drf_spectacular/ to move the inline <style> to a static file.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", **public),
        name="api-docs",
    ),
    # Last: a JSON 404 for any /api/ URL no app serves (Django's own 404 is an HTML page).
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
]

handler400 = views.bad_request
handler404 = views.page_not_found
