"""URLs under /api/: the v1 REST API (token required) and its OpenAPI schema and reference
(public: they describe the API, not anyone's data)."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from scheduling.api import functions, secrets

public = {"authentication_classes": [], "permission_classes": [AllowAny]}

urlpatterns = [
    path("v1/functions", functions.FunctionListApi.as_view(), name="api-functions"),
    path("v1/functions/<str:name>", functions.FunctionApi.as_view(), name="api-function"),
    path(
        "v1/functions/<str:name>/pause",
        functions.FunctionPauseApi.as_view(),
        name="api-function-pause",
    ),
    path(
        "v1/functions/<str:name>/resume",
        functions.FunctionResumeApi.as_view(),
        name="api-function-resume",
    ),
    path("v1/secrets", secrets.SecretListApi.as_view(), name="api-secrets"),
    path("v1/secrets/<str:name>", secrets.SecretApi.as_view(), name="api-secret"),
    path("schema/", SpectacularAPIView.as_view(**public), name="api-schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="api-schema", **public),
        name="api-docs",
    ),
]
