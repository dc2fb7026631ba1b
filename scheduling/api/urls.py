"""The scheduling part of the v1 REST API, mounted at /api/v1/ (token required)."""

from django.urls import path

from scheduling.api import functions, secrets

urlpatterns = [
    path("functions", functions.FunctionListApi.as_view(), name="api-functions"),
    path("functions/<str:name>", functions.FunctionApi.as_view(), name="api-function"),
    path(
        "functions/<str:name>/pause",
        functions.FunctionPauseApi.as_view(),
        name="api-function-pause",
    ),
    path(
        "functions/<str:name>/resume",
        functions.FunctionResumeApi.as_view(),
        name="api-function-resume",
    ),
    path("secrets", secrets.SecretListApi.as_view(), name="api-secrets"),
    path("secrets/<str:name>", secrets.SecretApi.as_view(), name="api-secret"),
]
