from django.urls import include, path

from runs import api, runner_api

urlpatterns = [
    path("api/v1/runs", api.RunListApi.as_view(), name="api-runs"),
    path("api/v1/runs/<int:run_id>", api.RunApi.as_view(), name="api-run"),
    path("api/v1/runs/<int:run_id>/logs", api.RunLogsApi.as_view(), name="api-run-logs"),
    path("api/v1/runs/<int:run_id>/cancel", api.RunCancelApi.as_view(), name="api-run-cancel"),
    path(
        "api/v1/functions/<str:name>/trigger",
        api.FunctionTriggerApi.as_view(),
        name="api-function-trigger",
    ),
    path("api/runner/v1/", include(runner_api)),
]
