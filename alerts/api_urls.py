"""The alerts part of the v1 REST API, mounted at /api/v1/ (token required)."""

from django.urls import path

from alerts import api

urlpatterns = [
    path("channels", api.ChannelListApi.as_view(), name="api-channels"),
    path("channels/<int:id>", api.ChannelApi.as_view(), name="api-channel"),
]
