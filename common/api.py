"""What every REST endpoint shares: the bounded JSON body, the checks on its shape, fields
validated by the SDK's own rules, pagination, and the error document's schema."""

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.exceptions import APIException, ParseError, UnsupportedMediaType
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

MAX_JSON_DEPTH = 32
MAX_QUERY_INT = 2**63 - 1  # the largest whole number a query parameter may carry (a bigint)
# The schema pattern of a string the server stores: _check_json_text refuses NUL characters.
NO_NUL = "^[^\\u0000]*$"


class ApiError(APIException):
    """An error with its own status and snake_case code, rendered as {"error", "detail"}."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = status


def max_request_bytes() -> int:
    # JSON escaping makes the body of a source a little larger than the source (quotes,
    # backslashes, newlines: 2 bytes each); files go as base64 (4 bytes for 3, and their
    # paths). Each bound is checked after parsing.
    return 4 * settings.CHALK_MAX_SOURCE_BYTES + 2 * settings.CHALK_MAX_FILES_BYTES + 64 * 1024


def request_too_large() -> ApiError:
    return ApiError(
        413,
        "request_too_large",
        f"the request body is larger than {max_request_bytes()} bytes, the most this server "
        "accepts (4 x CHALK_MAX_SOURCE_BYTES + 2 x CHALK_MAX_FILES_BYTES + 64 KiB)",
    )


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


class BoundedJSONParser(JSONParser):
    """DRF's JSONParser, reading at most max_request_bytes(): DRF reads the WSGI stream itself,
    so Django's DATA_UPLOAD_MAX_MEMORY_SIZE does not guard it."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = max_request_bytes()
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH", "") if request is not None else ""
        if declared.isdigit() and int(declared) > limit:
            raise request_too_large()
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise request_too_large()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(raw.decode(encoding), parse_constant=_refuse_constant)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply") from None


def _check_json_text(value: Any, path: str, depth: int) -> None:
    """Refuses what no database column or environment variable can hold: NUL characters and
    unpaired surrogates (PostgreSQL rejects both), and absurd nesting."""
    where = path or "the request body"
    if depth > MAX_JSON_DEPTH:
        raise ApiError(400, "invalid_request", f"{where} is nested more than {MAX_JSON_DEPTH} deep")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(
                400, "invalid_request", f"{where} holds an unpaired surrogate; send UTF-8 text"
            ) from None
        if "\x00" in value:
            raise ApiError(400, "invalid_request", f"{where} holds a NUL character (\\u0000)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json_text(key, path, depth + 1)
            _check_json_text(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_text(item, f"{path}[{index}]", depth + 1)


def request_object(request, accepted: Iterable[str]) -> dict[str, Any]:
    """The request body as a JSON object with only `accepted` fields (an empty body is {})."""
    accepted = list(accepted)
    has_body = request.META.get("CONTENT_LENGTH", "") not in ("", "0")
    if has_body and not request.content_type:
        raise UnsupportedMediaType("")
    data = request.data
    if not isinstance(data, dict):
        kind = {list: "a list", str: "a string", bool: "a boolean"}.get(type(data), "a value")
        raise ApiError(
            400,
            "invalid_request",
            f"the request body must be a JSON object with the fields {', '.join(accepted)}; "
            f"it is {kind}",
        )
    unknown = sorted(set(data) - set(accepted))
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise ApiError(
            400,
            "unknown_field",
            f"unknown field{'s' if len(unknown) > 1 else ''} {names}; this endpoint accepts "
            f"{', '.join(accepted) if accepted else 'no fields'}. Check the spelling, or "
            "upgrade the server if your SDK is newer",
        )
    _check_json_text(data, "", 0)
    return data


class StrictInputSerializer(serializers.Serializer):
    """A request body read with request_object, which refuses fields the serializer does not
    name and NUL characters in any string; its schema declares both (the NUL rule as a pattern
    on each top-level string field)."""


def schema_in_openapi_3_1(result: dict, generator, request, public) -> dict:
    """drf-spectacular's postprocessing hook: the document is OpenAPI 3.1 (JSON Schema), so
    rules on names can be stated (propertyNames); the SDK's field schemas
    (chalkcompute/spec.py) keep OpenAPI 3.0's spelling, which the API's fields also read
    (`nullable`, a boolean `exclusiveMinimum`), and are written in 3.1's here."""

    def convert(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                convert(item)
            return
        if not isinstance(node, dict):
            return
        if node.get("nullable") is True:
            del node["nullable"]
            if "type" in node:
                node["type"] = [node["type"], "null"]
                if "enum" in node:
                    node["enum"] = [*node["enum"], None]
            else:
                branches = "oneOf" if "oneOf" in node else "anyOf"
                node[branches] = [*node.get(branches, []), {"type": "null"}]
        if {} in node.get("oneOf", []):  # drf-spectacular's nullable JSONField: any value
            del node["oneOf"]
        if node.get("exclusiveMinimum") is True:
            node["exclusiveMinimum"] = node.pop("minimum")
        for value in node.values():
            convert(value)

    convert(result)
    return result


class StrictInputSerializerSchema(OpenApiSerializerExtension):
    target_class = StrictInputSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        serializer = self.target if isinstance(self.target, type) else type(self.target)
        if serializer.__dict__.get("__doc__") is None:  # not this base's docstring
            schema.pop("description", None)
        for prop in schema.get("properties", {}).values():
            for branch in prop.get("oneOf", [prop]):
                if branch.get("type") == "string" and "pattern" not in branch:
                    branch["pattern"] = NO_NUL
        return {**schema, "additionalProperties": False}


class StrictCharField(serializers.CharField):
    """A JSON string: unlike DRF's CharField, a number or boolean is refused, not converted.
    max_length bounds the string as sent (the schema's maxLength), before any trimming."""

    def run_validation(self, data=serializers.empty):
        # Before DRF's own checks: they trim first, so 501 spaces would pass as "".
        if isinstance(data, str) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().run_validation(data)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string", kind=_json_kind(data))
        return super().to_internal_value(data)

    default_error_messages = {"not_a_string": "must be a string, not {kind}"}


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false: unlike DRF's BooleanField, "yes" or 1 is refused."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


def json_integer(value: Any) -> int:
    """A rule for RuleField: a JSON whole number (not "3", 3.0 or true)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number, not {_json_kind(value)}")
    return value


def aware_datetime(value: Any) -> datetime:
    """A rule for RuleField: an ISO 8601 date and time with its offset or Z."""
    if not isinstance(value, str):
        raise ValueError(f"must be a date and time as a string, not {_json_kind(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{value[:40]!r} is not an ISO 8601 date and time; write it as 2026-12-01T00:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(
            f"{value!r} has no time zone; give an offset or Z, e.g. {moment.isoformat()}Z"
        )
    return moment


# The schema of a field read with aware_datetime.
AWARE_DATETIME_SCHEMA = {
    "type": "string",
    "format": "date-time",
    "description": "ISO 8601 with an offset or Z, e.g. 2026-12-01T00:00:00Z",
}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else type(value).__name__


class RuleField(serializers.Field):
    """A field checked by one of the SDK's rules: a callable that returns the value to keep or
    raises ValueError with a message a person can act on (passed through as it is)."""

    def __init__(self, rule: Callable[[Any], Any], schema: dict, **kwargs) -> None:
        self.rule = rule
        # drf-spectacular reads this override as the field's schema.
        self._spectacular_annotation = {"field": schema}
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        try:
            return self.rule(data)
        except OverflowError:
            raise serializers.ValidationError("holds a number too large to use") from None
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value: Any) -> Any:
        return value


def int_query_param(
    request, name: str, *, default: int, minimum: int = 0, maximum: int = MAX_QUERY_INT
) -> int:
    """The whole number in the query parameter `name` (`default` when it is absent). Anything
    else, or a number out of range, is refused with a 400 rather than silently replaced."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_QUERY_INT)):
        value = int(raw)
        if minimum <= value <= maximum:
            return value
    shown = repr(raw) if len(raw) <= 40 else f"{raw[:40]!r}…"
    raise ApiError(
        400,
        "invalid_parameter",
        f"{name} must be a whole number from {minimum} to {maximum}, not {shown}; leave it out "
        f"for {default}",
    )


def int_query_schema(*, default: int, minimum: int = 0, maximum: int = MAX_QUERY_INT) -> dict:
    """The schema of a query parameter read with int_query_param."""
    return {"type": "integer", "minimum": minimum, "maximum": maximum, "default": default}


class Pagination(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000

    def get_limit(self, request) -> int:
        return int_query_param(
            request,
            self.limit_query_param,
            default=self.default_limit,
            minimum=1,
            maximum=self.max_limit,
        )

    def get_offset(self, request) -> int:
        return int_query_param(request, self.offset_query_param, default=0)

    @classmethod
    def respond(cls, request, view, queryset, serializer_class) -> Response:
        """The page of `queryset` the request asks for, as {count, next, previous, results}."""
        paginator = cls()
        page = paginator.paginate_queryset(queryset, request, view=view)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)


# The query parameters of every paginated list, as Pagination reads them.
PAGE_PARAMETERS = [
    OpenApiParameter(
        "limit",
        int_query_schema(default=Pagination.default_limit, minimum=1, maximum=Pagination.max_limit),
        description=f"Page size (default {Pagination.default_limit}, at most "
        f"{Pagination.max_limit})",
    ),
    OpenApiParameter("offset", int_query_schema(default=0), description="Items to skip"),
]


class ErrorSerializer(serializers.Serializer):
    """The error document of every endpoint (for the schema)."""

    error = serializers.CharField(help_text="A snake_case code, e.g. invalid_schedule")
    detail = serializers.CharField(help_text="What was wrong and how to fix it")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Messages per field, when several fields were rejected",
    )


def error_responses(*statuses: int) -> dict[int, type[serializers.Serializer]]:
    """The error responses of an operation, for extend_schema(responses=...)."""
    return {status: ErrorSerializer for status in statuses}


# What any endpoint may answer: a request it refuses (400), no valid token (401), a token or
# owner without the right (403), an Accept header that does not admit JSON (406). Endpoints
# add 404, 409 and BODY_ERRORS as they apply.
COMMON_ERRORS = (400, 401, 403, 406)
# What an endpoint that reads a JSON body may answer besides: a body larger than the server
# accepts (413), a body not sent as application/json (415).
BODY_ERRORS = (413, 415)


def paginated(serializer_class: type[serializers.Serializer], name: str) -> type:
    """The schema of a page of `serializer_class` items: {count, next, previous, results}."""
    return type(
        name,
        (serializers.Serializer,),
        {
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )
