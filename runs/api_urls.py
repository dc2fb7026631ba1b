"""The runs part of the v1 REST API, mounted at /api/v1/ (token required)."""

from django.urls import path

from runs import api

urlpatterns = [
    path("runs", api.RunListApi.as_view(), name="api-runs"),
    path("runs/<int:run_id>", api.RunApi.as_view(), name="api-run"),
    path("runs/<int:run_id>/logs", api.RunLogsApi.as_view(), name="api-run-logs"),
    path("runs/<int:run_id>/cancel", api.RunCancelApi.as_view(), name="api-run-cancel"),
    path("backfills/<int:backfill_id>", api.BackfillApi.as_view(), name="api-backfill"),
    path(
        "backfills/<int:backfill_id>/cancel",
        api.BackfillCancelApi.as_view(),
        name="api-backfill-cancel",
    ),
    # A trigger or a backfill creates runs: they live with the runs, under the function's URL.
    path(
        "functions/<str:name>/trigger",
        api.FunctionTriggerApi.as_view(),
        name="api-function-trigger",
    ),
    path(
        "functions/<str:name>/backfill",
        api.FunctionBackfillApi.as_view(),
        name="api-function-backfill",
    ),
]
