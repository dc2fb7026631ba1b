"""The runner API: what `python -m chalkcompute.runtime` talks to, on every executor.

Each request carries the bearer token of one attempt, minted when a worker claimed it; it is
valid only while that attempt is active, and opens nothing but that attempt. The one exception
is the runner's own code (`runtime.tar.gz`), which Kubernetes pods that install at start
download before they have a runner to use a token with.
"""

import functools
import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from chalkcompute.quantities import memory_bytes
from runs import runtime_bundle, services
from runs.models import ACTIVE_ATTEMPT_STATUSES, Attempt, AttemptStatus
from scheduling.crypto import decrypt
from scheduling.models import Secret

FINISH_STATUSES = (
    AttemptStatus.SUCCEEDED,
    AttemptStatus.FAILED,
    AttemptStatus.TIMED_OUT,
    AttemptStatus.CANCELLED,
)


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


def allow(method: str):
    """Answers any other method with a 405 in the API's error shape (Django's own 405 is an
    empty page). CSRF-exempt: runners authenticate with a bearer token, not a cookie."""

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            if request.method != method:
                response = _error(
                    405,
                    "method_not_allowed",
                    f"{request.method} is not allowed on this URL; it accepts {method}",
                )
                response["Allow"] = method
                return response
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def _attempt(request: HttpRequest) -> Attempt | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme != "Bearer" or not token:
        return None
    return (
        Attempt.objects.select_related("run__version__image", "run__function")
        .filter(token_hash=services.token_hash(token.strip()), status__in=ACTIVE_ATTEMPT_STATUSES)
        .first()
    )


def runner_endpoint(view):
    def wrapped(request: HttpRequest):
        attempt = _attempt(request)
        if attempt is None:
            return _error(
                401, "unauthenticated", "this attempt token is unknown or its attempt has ended"
            )
        body = {}
        if request.method == "POST":
            try:
                body = json.loads(request.body or b"{}")
            except ValueError:
                return _error(400, "invalid_json", "the request body is not JSON")
            if not isinstance(body, dict):
                return _error(400, "invalid_json", "the request body must be a JSON object")
        try:
            return view(request, attempt, body)
        except (KeyError, TypeError, ValueError) as exc:
            return _error(400, "invalid_request", f"{type(exc).__name__}: {exc}")

    return wrapped


@allow("GET")
@runner_endpoint
def attempt_detail(request, attempt: Attempt, body: dict) -> JsonResponse:
    now = timezone.now()
    if not services.attempt_begin(attempt=attempt, now=now):
        return _error(409, "already_started", "this attempt was already fetched by a runner")
    version = attempt.run.version
    secrets = {
        s.name: decrypt(s.ciphertext) for s in Secret.objects.filter(name__in=version.secret_names)
    }
    missing = sorted(set(version.secret_names) - set(secrets))
    if missing:
        reason = (
            f"secret {', '.join(missing)} no longer exists; set it again with "
            "PUT /api/v1/secrets/NAME"
        )
        services.attempt_finish(
            attempt=attempt, status=AttemptStatus.FAILED, reason=reason, now=now
        )
        return _error(409, "missing_secret", reason)
    env = {}
    for step in version.image.spec.get("steps", []):
        env.update(step.get("env", {}))
    return JsonResponse(
        {
            "attempt_id": attempt.id,
            "attempt_number": attempt.number,
            "run_id": attempt.run_id,
            "function": attempt.run.function.name,
            "version": version.number,
            "entrypoint": version.entrypoint,
            "source": version.source,
            "source_filename": version.source_filename,
            "secrets": secrets,
            "env": env,
            "start_at": attempt.not_before.timestamp(),
            "timeout": version.timeout,
            "memory": version.memory,
            "memory_limit_bytes": memory_bytes(version.memory) if version.memory else None,
            "max_log_bytes": settings.CHALK_MAX_LOG_BYTES,
        }
    )


@allow("POST")
@runner_endpoint
def heartbeat(request, attempt: Attempt, body: dict) -> JsonResponse:
    now = timezone.now()
    lines, samples = body.get("lines", []), body.get("samples", [])
    if not isinstance(lines, list) or not isinstance(samples, list):
        return _error(400, "invalid_request", "lines and samples must be lists")
    services.log_append(
        attempt=attempt, first_seq=int(body.get("first_seq", 0)), lines=lines, now=now
    )
    services.usage_append(attempt=attempt, samples=samples, now=now)
    return JsonResponse({"cancel": services.cancel_requested(attempt)})


@allow("POST")
@runner_endpoint
def finish(request, attempt: Attempt, body: dict) -> JsonResponse:
    status = body.get("status")
    if status not in FINISH_STATUSES:
        return _error(400, "invalid_request", f"status must be one of {', '.join(FINISH_STATUSES)}")
    exit_code = body.get("exit_code")
    services.attempt_finish(
        attempt=attempt,
        status=status,
        now=timezone.now(),
        reason=str(body.get("reason") or ""),
        exit_code=int(exit_code) if exit_code is not None else None,
        error_type=str(body.get("error_type") or ""),
        error_message=str(body.get("error_message") or ""),
        traceback=str(body.get("traceback") or ""),
        peak_memory_bytes=body.get("peak_memory_bytes"),
        cpu_seconds=body.get("cpu_seconds"),
        log_truncated=bool(body.get("log_truncated")),
    )
    return JsonResponse({"ok": True})


@allow("GET")
def runtime_archive(request: HttpRequest) -> HttpResponse:
    """The runner as a gzip'd tar (see runtime_bundle.py). No token: it is the runner's source,
    the same for every attempt, and holds nothing of any of them."""
    bundle = runtime_bundle.bundle()
    response = HttpResponse(bundle.archive, content_type="application/gzip")
    response["ETag"] = f'"{bundle.sha256}"'
    return response


urlpatterns = [
    path("attempt", attempt_detail),
    path("heartbeat", heartbeat),
    path("finish", finish),
    path("runtime.tar.gz", runtime_archive),
]
