"""The access part of the v1 REST API, mounted at /api/v1/ (token required)."""

from django.urls import path

from access import api

urlpatterns = [path("audit", api.AuditListApi.as_view(), name="api-audit")]
