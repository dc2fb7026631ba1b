"""The runner API: what `python -m chalkcompute.runtime` talks to, on every executor.

Each request carries the bearer token of one attempt, minted when a worker claimed it; it is
valid only while that attempt is active, and opens nothing but that attempt. The one exception
is the runner's own code (`runtime.tar.gz`), which Kubernetes pods that install at start
download before they have a runner to use a token with.

The runner is not trusted: the function it runs can read its token and call these endpoints
itself. So everything a request carries is checked here and in the services as if a hostile
program sent it: numbers must be finite and fit their columns, text what the database can hold,
a heartbeat at most MAX_HEARTBEAT_ITEMS lines and samples, a return value its format and cap
(chalkcompute/runtime/returns.py), and log lines follow the rules of
logs.log_append (no system line, per-line and per-attempt caps, resends told from forgery).
The protocol's paths, document and limits are chalkcompute/runtime/protocol.py's, shared with the
runner.
"""

import base64
import functools
import json
import math
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from chalkcompute.image import Image as ImageSpec
from chalkcompute.quantities import memory_bytes
from chalkcompute.run_context import utc_text
from chalkcompute.runtime import protocol, returns
from chalkcompute.runtime.protocol import AttemptDocument
from common.crypto import SecretDecryptionError
from runs import logs, selectors, services
from runs.errors import RunError
from runs.limits import run_memory_limit, run_timeout
from runs.models import Attempt, AttemptStatus
from scheduling.services import secret_values_for
from sdk import runtime_bundle

FINISH_STATUSES = (
    AttemptStatus.SUCCEEDED,
    AttemptStatus.FAILED,
    AttemptStatus.TIMED_OUT,
    AttemptStatus.CANCELLED,
)


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


class MalformedBodyError(Exception):
    """A body field of the wrong shape: answered 400 invalid_request with this message."""


# The ranges of the columns numbers go to: PositiveIntegerField, IntegerField, BigIntegerField.
MAX_SEQ = 2**31 - 1
EXIT_CODES = (-(2**31), 2**31 - 1)
BYTES = (0, 2**63 - 1)

Number = TypeVar("Number", int, float)


def _number(
    value: Any, name: str, kind: type[Number], low: Number = 0, high: Number | None = None
) -> Number:
    """`value`, a JSON number (not a string, not a boolean) that is finite, whole for `int`,
    and within [low, high]; MalformedBodyError otherwise, so nothing the database cannot store
    (10**30 in a bigint, an infinity in a float the API then cannot render) goes further."""
    words, given = ("a whole number" if kind is int else "a number"), value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedBodyError(f"{name} must be {words}, not {value!r:.100}")
    if kind is float:
        try:
            value = float(value)
        except OverflowError:  # an int past the double's range
            raise MalformedBodyError(
                f"{name} must be a finite number, not {value!r:.100}"
            ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise MalformedBodyError(f"{name} must be a finite number, not {value!r}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise MalformedBodyError(f"{name} must be a whole number, not {value!r}")
        value = int(value)
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise MalformedBodyError(f"{name} must be {words} {bounds}, not {given!r:.100}")
    return value


def _optional(body: dict, name: str, kind: type[Number], low=0, high=None) -> Number | None:
    return None if body.get(name) is None else _number(body[name], name, kind, low, high)


def _text(body: dict, name: str) -> str:
    """A text field: a string or nothing, with what the database cannot hold replaced."""
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedBodyError(f"{name} must be a string, not a {type(value).__name__}")
    return protocol.storable_text(value)


def _return_value(body: dict) -> tuple[object, str]:
    """The return value and its format (chalkcompute/runtime/returns.py): a format the runner
    knows, a string unless JSON, within the cap, with what the database cannot hold replaced."""
    # No format: a runner from before formats (a pod in flight across an upgrade) sent a repr.
    value, format = body.get("return_value"), body.get("return_format", returns.REPR)
    if value is None:
        return None, ""
    if format not in returns.FORMATS:
        raise MalformedBodyError(
            f"return_format must be one of {', '.join(returns.FORMATS)}, not {format!r:.100}"
        )
    if format != returns.JSON and not isinstance(value, str):
        raise MalformedBodyError(
            f"return_value must be a string when return_format is {format}, "
            f"not a {type(value).__name__}"
        )
    try:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        value = logs.storable_json(value)
    except RecursionError:
        raise MalformedBodyError("return_value is nested too deeply") from None
    if returns.size(text) > returns.MAX_RETURN_BYTES:
        raise MalformedBodyError(
            f"return_value must be at most {returns.MAX_RETURN_BYTES} bytes as JSON text, not "
            f"{returns.size(text)}; cut its text and send return_format {returns.CUT}"
        )
    return value, format


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


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
        Attempt.objects.active()
        .select_related("run__version__image", "run__function")
        .filter(token_hash=services.token_hash(token.strip()))
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
                body = json.loads(request.body or b"{}", parse_constant=_refuse_constant)
            except RequestDataTooBig:
                return _error(
                    413,
                    "request_too_large",
                    f"the request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} "
                    "bytes, the most the runner API reads",
                )
            except (ValueError, RecursionError):  # RecursionError: nested too deeply
                return _error(400, "invalid_json", "the request body is not JSON")
            if not isinstance(body, dict):
                return _error(400, "invalid_json", "the request body must be a JSON object")
        # Only the body's shape and the services' own refusals are the runner's fault; any
        # other exception is a bug here, and a 500 with its traceback in the server's log.
        try:
            return view(request, attempt, body)
        except MalformedBodyError as exc:
            return _error(400, "invalid_request", str(exc))
        except RunError as exc:
            return _error(exc.status, exc.code, exc.message)

    return wrapped


@allow("GET")
@runner_endpoint
def attempt_detail(request, attempt: Attempt, body: dict) -> JsonResponse:
    now = timezone.now()
    skipped = services.prepared_attempt_skip(attempt=attempt, now=now)
    if skipped:
        return _error(409, "slot_skipped", f"this run's slot was skipped: {skipped}")
    if not services.attempt_begin(attempt=attempt, now=now):
        return _error(409, "already_started", "this attempt was already fetched by a runner")
    version = attempt.run.version
    try:
        stored = secret_values_for(version)
    except SecretDecryptionError as exc:  # the operator's key, not the run: say so on the run
        reason = f"cannot give the run its secrets: {exc}"
        services.attempt_finish(
            attempt=attempt, status=AttemptStatus.FAILED, reason=reason, now=now
        )
        return _error(409, "undecryptable_secret", reason)
    missing = sorted(set(version.secrets_read) - set(stored))
    if missing:
        reason = (
            f"secret {', '.join(missing)} no longer exists; set it again with "
            "PUT /api/v1/secrets/NAME"
        )
        services.attempt_finish(
            attempt=attempt, status=AttemptStatus.FAILED, reason=reason, now=now
        )
        return _error(409, "missing_secret", reason)
    # Secrets go by the variable the run gets them as, so the runner masks every one of them.
    secrets = {name: stored[name] for name in version.secret_names}
    env = ImageSpec.from_spec(version.image.spec).environment
    # A local run is held to its request, the default one too; a pod, to its own limits.
    memory_limit = (
        run_memory_limit(version.memory)
        if attempt.executor == "local"
        else (memory_bytes(version.memory) if version.memory else None)
    )
    for variable, value in version.env.items():
        if isinstance(value, dict):
            secrets[variable] = stored[value["secret"]]
        else:
            env[variable] = value
    files = [
        {"path": file.path, "content_base64": base64.b64encode(bytes(file.content)).decode()}
        for file in version.files.all()
    ]
    run = attempt.run
    document = AttemptDocument(
        attempt_id=attempt.id,
        # What current_run() returns in the run (chalkcompute/run_context.py), decided here
        # from what the server stored: a run never names its own slot.
        run={
            "run_id": run.id,
            "attempt": attempt.number,
            "trigger": run.trigger,
            "slot": utc_text(run.slot),
            "previous_success_slot": utc_text(selectors.previous_success_slot(run=run)),
            "function": run.function.name,
            "version": version.number,
        },
        entrypoint=version.entrypoint,
        source=version.source,
        source_filename=version.source_filename,
        secrets=secrets,
        env=env,
        files=files,
        start_at=attempt.not_before.timestamp(),
        timeout=run_timeout(version.timeout),
        timeout_is_default=version.timeout is None,
        memory=version.memory,
        memory_limit_bytes=memory_limit,
        max_processes=settings.CHALK_RUN_MAX_PROCESSES,
        max_log_bytes=settings.CHALK_MAX_LOG_BYTES,
    )
    return JsonResponse(document.as_json())


@allow("POST")
@runner_endpoint
def heartbeat(request, attempt: Attempt, body: dict) -> JsonResponse:
    now = timezone.now()
    lines, samples = body.get("lines", []), body.get("samples", [])
    if not isinstance(lines, list) or not isinstance(samples, list):
        return _error(400, "invalid_request", "lines and samples must be lists")
    for items, what in ((lines, "lines"), (samples, "samples")):
        if len(items) > protocol.MAX_HEARTBEAT_ITEMS:
            return _error(
                413,
                f"too_many_{what}",
                f"a heartbeat carries at most {protocol.MAX_HEARTBEAT_ITEMS} {what}, "
                f"not {len(items)}; send them in batches",
            )
    if not all(isinstance(item, dict) for item in (*lines, *samples)):
        return _error(400, "invalid_request", "each line and each sample must be a JSON object")
    first_seq = _number(body.get("first_seq", 0), "first_seq", int, 0, MAX_SEQ)
    for n, sample in enumerate(samples):  # checked before anything is stored
        _number(sample.get("cpu_seconds"), f"samples[{n}].cpu_seconds", float)
        _number(sample.get("cpu_percent", 0.0), f"samples[{n}].cpu_percent", float)
        _number(sample.get("rss_bytes"), f"samples[{n}].rss_bytes", int, *BYTES)
    # Lines are checked by log_append, which refuses the batch before storing any of it.
    truncated = logs.log_append(attempt=attempt, first_seq=first_seq, lines=lines, now=now)
    logs.usage_append(attempt=attempt, samples=samples, now=now)
    # Before its slot, a pause or a deploy that took the slot away stops it as a cancel does.
    skipped = services.prepared_attempt_skip(attempt=attempt, now=now)
    answer = {"cancel": bool(skipped) or services.cancel_requested(attempt)}
    if truncated:  # the server drops the runner's lines from here on: it may stop sending them
        answer["log_truncated"] = True
    return JsonResponse(answer)


@allow("POST")
@runner_endpoint
def finish(request, attempt: Attempt, body: dict) -> JsonResponse:
    status = body.get("status")
    if status not in FINISH_STATUSES:
        return _error(400, "invalid_request", f"status must be one of {', '.join(FINISH_STATUSES)}")
    return_value, return_format = _return_value(body)
    services.attempt_finish(
        attempt=attempt,
        status=status,
        now=timezone.now(),
        reason=_text(body, "reason"),
        exit_code=_optional(body, "exit_code", int, *EXIT_CODES),
        error_type=_text(body, "error_type"),
        error_message=_text(body, "error_message"),
        traceback=_text(body, "traceback"),
        peak_memory_bytes=_optional(body, "peak_memory_bytes", int, *BYTES),
        cpu_seconds=_optional(body, "cpu_seconds", float),
        # Only adds to the server's own count (logs.log_append): never clears it.
        log_truncated=bool(body.get("log_truncated")),
        return_value=return_value,
        return_format=return_format,
    )
    return JsonResponse({"ok": True})


@allow("GET")
def runtime_archive(request: HttpRequest) -> HttpResponse:
    """The runner as a gzip'd tar (see sdk/runtime_bundle.py). No token: it is the runner's source,
    the same for every attempt, and holds nothing of any of them."""
    bundle = runtime_bundle.bundle()
    response = HttpResponse(bundle.archive, content_type="application/gzip")
    response["ETag"] = f'"{bundle.sha256}"'
    return response


urlpatterns = [
    path(protocol.ATTEMPT, attempt_detail),
    path(protocol.HEARTBEAT, heartbeat),
    path(protocol.FINISH, finish),
    path(protocol.RUNTIME_ARCHIVE, runtime_archive),
]
