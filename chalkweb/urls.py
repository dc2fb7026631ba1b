from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import JsonResponse
from django.urls import include, path, re_path

from chalkweb import views
from scheduling import views as scheduling_views
from scheduling.api.errors import api_not_found


def healthz(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("", views.functions_page, name="functions"),
    path("functions/<str:name>", scheduling_views.function_page, name="function"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("api/", include("scheduling.api.urls")),
    path("", include("runs.urls")),
    # Last: a JSON 404 for any /api/ URL no app serves (Django's own 404 is an HTML page).
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
]
