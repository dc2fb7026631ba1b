"""The one error format of the REST API, decided here for every endpoint:

    {"error": "<snake_case code>", "detail": "<what was wrong and how to fix it>"}

plus "fields": {field: [messages]} when a serializer rejected several fields. DRF's own errors
(401, 404, 405, 415, malformed JSON), Django's RequestDataTooBig and every service's errors
(ServiceError) all pass through here.
"""

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

from common.api import ApiError, request_too_large
from common.database import not_migrated_sentence, pending_migrations
from common.errors import ServiceError


def _flatten(detail: Any, path: str = "") -> list[tuple[str, str]]:
    """(field path, message) pairs of a ValidationError's detail, e.g. ("secrets[0]", "...")."""
    if isinstance(detail, dict):
        pairs = []
        for key, value in detail.items():
            if key == "non_field_errors":
                pairs += _flatten(value, path)
            elif isinstance(key, int):
                pairs += _flatten(value, f"{path}[{key}]")
            else:
                pairs += _flatten(value, f"{path}.{key}" if path else str(key))
        return pairs
    if isinstance(detail, list):
        return [pair for item in detail for pair in _flatten(item, path)]
    return [(path, str(detail))]


def _validation_body(exc: exceptions.ValidationError) -> dict[str, Any]:
    pairs = _flatten(exc.detail)
    detail = "; ".join(f"{path}: {message}" if path else message for path, message in pairs)
    fields: dict[str, list[str]] = {}
    for path, message in pairs:
        fields.setdefault(path.split(".")[0].split("[")[0], []).append(message)
    named = [field for field in fields if field]
    if len(named) == 1 and len(fields) == 1:
        return {"error": f"invalid_{named[0]}", "detail": detail}
    body = {"error": "invalid_request", "detail": detail}
    if len(named) > 1:
        body["fields"] = {field: messages for field, messages in fields.items() if field}
    return body


def _body(exc: exceptions.APIException, context: dict) -> dict[str, Any]:
    request = context.get("request")
    if isinstance(exc, exceptions.ValidationError):
        return _validation_body(exc)
    if isinstance(exc, exceptions.NotAuthenticated):
        return {"error": "not_authenticated", "detail": str(exc.detail)}
    if isinstance(exc, exceptions.ParseError):
        return {
            "error": "malformed_json",
            "detail": f"the request body is not valid JSON ({exc.detail}); send a JSON object "
            "with the header Content-Type: application/json",
        }
    if isinstance(exc, exceptions.UnsupportedMediaType):
        sent = request.content_type if request is not None and request.content_type else "none"
        return {
            "error": "unsupported_media_type",
            "detail": f"the request body's Content-Type is {sent}; send a JSON object with the "
            "header Content-Type: application/json",
        }
    if isinstance(exc, exceptions.MethodNotAllowed):
        view = context.get("view")
        allowed = ", ".join(m for m in view.allowed_methods if m not in ("HEAD", "OPTIONS"))
        method = request.method if request is not None else "This method"
        return {
            "error": "method_not_allowed",
            "detail": f"{method} is not allowed on this URL; it accepts {allowed}",
        }
    if isinstance(exc, exceptions.NotAcceptable):
        return {
            "error": "not_acceptable",
            "detail": "this API answers only application/json; send Accept: application/json",
        }
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else exc.default_code
    if isinstance(exc, exceptions.NotFound) and code == "not_found" and exc.detail == "Not found.":
        return {"error": "not_found", "detail": "nothing here; see /api/docs/ for the API"}
    return {"error": code, "detail": str(exc.detail)}


def _database_error(exc: DatabaseError) -> Exception:
    """A table or column this code needs and the database lacks: a 503 that says to migrate.
    Any other database error stays a bug (500)."""
    try:
        pending = pending_migrations()
    except DatabaseError:
        return exc
    if not pending:
        return exc
    return ApiError(503, "not_migrated", not_migrated_sentence(pending))


def exception_handler(exc: Exception, context: dict):
    if isinstance(exc, RequestDataTooBig):
        exc = request_too_large()
    elif isinstance(exc, ServiceError):
        exc = ApiError(exc.status, exc.code, exc.message)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DatabaseError):
        exc = _database_error(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django answers 500 and logs it
    response.data = _body(exc, context)
    return response


@csrf_exempt  # no session is read here: a POST gets the JSON 404, not a CSRF page
def api_not_found(request, rest: str = "") -> JsonResponse:
    """The JSON 404 for a URL under /api/ that no endpoint serves (Django's is an HTML page)."""
    return JsonResponse(
        {
            "error": "not_found",
            "detail": f"there is no API endpoint at {request.path}; see /api/docs/ for the API",
        },
        status=404,
    )
