"""The console's pages. /functions/<name> is also the console_url the API and the SDK print."""

from django.urls import path

from console.views import (
    audit,
    channels,
    deploy,
    function,
    functions,
    platform,
    run,
    runs,
    secrets,
    tokens,
)

urlpatterns = [
    path("", functions.functions_page, name="functions"),
    path("functions/<str:name>", function.function_page, name="function"),
    path("runs", runs.runs_page, name="runs"),
    path("runs/<int:run_id>", run.run_page, name="run"),
    path("secrets", secrets.secrets_page, name="secrets"),
    path("tokens", tokens.tokens_page, name="tokens"),
    path("channels", channels.channels_page, name="channels"),
    path("audit", audit.audit_page, name="audit"),
    path("platform", platform.platform_page, name="platform"),
    path("deploy", deploy.deploy_page, name="deploy"),
]
