"""Sign-in lockout hooks for django-axes (configured in chalkweb/settings.py).

Axes counts failed sign-ins per username and client address; these two callables tell it the
address and answer a locked-out sign-in with the login page saying what happened.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from chalkcompute.words import spelled_duration

LOCKED_OUT_TEMPLATE = "registration/locked_out.html"


def client_ip(request: HttpRequest) -> str | None:
    """The address a sign-in came from. Behind a TLS proxy (CHALK_BEHIND_TLS_PROXY) it is the
    last X-Forwarded-For entry, the one the proxy appended: entries before it are whatever the
    client sent, and trusting them would let an attacker pick a fresh address for every try.
    Otherwise, or without the header, the connection's own address."""
    if settings.CHALK_BEHIND_TLS_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR") or None


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """429 with the login page's lockout message and, when the lockout ends by itself, a
    Retry-After header. Every further try restarts the wait, so it is the whole cool-off."""
    cool_off = settings.AXES_COOLOFF_TIME
    seconds = int(cool_off.total_seconds()) if cool_off else 0
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    response = render(
        request,
        LOCKED_OUT_TEMPLATE,
        {
            "username": username,
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "wait": spelled_duration(seconds, round_up=True) if seconds else "",
        },
        status=429,
    )
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
