"""REST endpoints for functions: deploy (PUT), read, list, delete, pause, resume.

Each input is checked with the SDK's own rules (chalkcompute.schedule, quantities, names,
image, retries), so what the decorator accepts the server accepts, with the same messages.
"""

import keyword

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from chalkcompute.decorator import OVERLAP_POLICIES, check_overlap, check_timeout
from chalkcompute.image import Image as ImageSpec
from chalkcompute.names import InvalidNameError, check_function_name, check_secret_name
from chalkcompute.quantities import parse_cpu, parse_gpu, parse_memory
from chalkcompute.retries import Retries
from chalkcompute.schedule import InvalidScheduleError, parse
from common.api import (
    ApiError,
    ErrorSerializer,
    Pagination,
    RuleField,
    StrictCharField,
    paginated,
    request_object,
)
from scheduling import selectors, services
from scheduling.auth import actor_name
from scheduling.models import Function
from scheduling.services import MAX_PAUSE_REASON

MAX_SECRETS_PER_FUNCTION = 100
NEXT_RUNS_SHOWN = 3
ERRORS = {
    400: ErrorSerializer,
    401: ErrorSerializer,
    404: ErrorSerializer,
}


def function_name_or_400(name: str) -> str:
    try:
        return check_function_name(name)
    except InvalidNameError as exc:
        raise ApiError(400, "invalid_name", str(exc)) from None


def function_or_404(name: str) -> Function:
    function = selectors.function_get(name=function_name_or_400(name))
    if function is None:
        raise NotFound(
            f"no function named {name!r} is deployed here; list them with GET /api/v1/functions",
            code="not_found",
        )
    return function


# --- the SDK's rules, as field validators ------------------------------------------------------


def _schedule(value: object):
    if not isinstance(value, str):
        raise InvalidScheduleError(
            'must be a crontab such as "0 * * * *", a shorthand such as "10m", or null for a '
            "function that runs only on demand"
        )
    return parse(value)


def _gpu(value: object) -> str:
    parse_gpu(value)
    return value.strip()


def _image(value: object) -> ImageSpec:
    return ImageSpec.from_spec(value)


def _timeout(value: object) -> float:
    return float(check_timeout(value))


def _entrypoint(value: str) -> str:
    if not value.isidentifier() or keyword.iskeyword(value):
        raise serializers.ValidationError(
            f"{value!r} is not a Python function name; give the name of a function defined at "
            "the top level of the source, e.g. refresh_exchange_rates"
        )
    return value


def _source_filename(value: str) -> str:
    if "/" in value or "\\" in value or not value.endswith(".py") or value in (".py", "..py"):
        raise serializers.ValidationError(
            f'{value!r} must be a file name ending in .py, without a folder, e.g. "job.py"'
        )
    return value


STRING = {"type": "string"}
NULLABLE_STRING = {"type": "string", "nullable": True}


class FunctionOutputSerializer(serializers.Serializer):
    """The function document: the same shape in every response that describes a function."""

    class ImageSerializer(serializers.Serializer):
        spec_hash = serializers.CharField()
        spec = serializers.JSONField()

    class RetriesSerializer(serializers.Serializer):
        max_retries = serializers.IntegerField()
        backoff_coefficient = serializers.FloatField()
        initial_delay = serializers.FloatField()
        max_delay = serializers.FloatField()

    name = serializers.CharField()
    version = serializers.IntegerField(source="current_version.number")
    schedule = serializers.CharField(source="current_version.schedule", allow_null=True)
    cron = serializers.CharField(source="current_version.cron", allow_null=True)
    schedule_description = serializers.SerializerMethodField()
    next_fire_at = serializers.DateTimeField(allow_null=True)
    next_runs = serializers.SerializerMethodField()
    paused = serializers.BooleanField()
    paused_at = serializers.DateTimeField(allow_null=True)
    paused_by = serializers.SerializerMethodField()
    paused_reason = serializers.SerializerMethodField()
    image = ImageSerializer(source="current_version.image")
    secrets = serializers.ListField(
        child=serializers.CharField(), source="current_version.secret_names"
    )
    cpu = serializers.CharField(source="current_version.cpu", allow_null=True)
    memory = serializers.CharField(source="current_version.memory", allow_null=True)
    gpu = serializers.CharField(source="current_version.gpu", allow_null=True)
    retries = RetriesSerializer(source="current_version.retries")
    timeout = serializers.FloatField(source="current_version.timeout", allow_null=True)
    overlap = serializers.CharField(source="current_version.overlap")
    entrypoint = serializers.CharField(source="current_version.entrypoint")
    source_filename = serializers.CharField(source="current_version.source_filename")
    source_sha256 = serializers.CharField(source="current_version.source_sha256")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    console_url = serializers.SerializerMethodField()

    @extend_schema_field(STRING)
    def get_schedule_description(self, function: Function) -> str:
        return selectors.schedule_description(function.current_version)

    @extend_schema_field(serializers.ListField(child=serializers.DateTimeField()))
    def get_next_runs(self, function: Function) -> list[str]:
        field = serializers.DateTimeField()
        times = selectors.next_fire_times(function, NEXT_RUNS_SHOWN)
        return [field.to_representation(moment) for moment in times]

    @extend_schema_field(NULLABLE_STRING)
    def get_paused_by(self, function: Function) -> str | None:
        return function.paused_by or None

    @extend_schema_field(NULLABLE_STRING)
    def get_paused_reason(self, function: Function) -> str | None:
        return function.paused_reason or None

    @extend_schema_field({"type": "string", "format": "uri"})
    def get_console_url(self, function: Function) -> str:
        return f"{settings.CHALK_PUBLIC_URL.rstrip('/')}/functions/{function.name}"


class DeployOutputSerializer(FunctionOutputSerializer):
    deploy = serializers.ChoiceField(
        choices=["created", "updated", "unchanged"],
        help_text="created: first version; updated: a new version; unchanged: same content",
    )


class DeployInputSerializer(serializers.Serializer):
    source = StrictCharField(
        trim_whitespace=False,
        error_messages={"required": "is required: the text of the module (the .py file)"},
    )
    source_filename = StrictCharField(
        required=False, default="main.py", max_length=255, validators=[_source_filename]
    )
    entrypoint = StrictCharField(
        max_length=255,
        validators=[_entrypoint],
        error_messages={"required": "is required: the name of the function in the source"},
    )
    schedule = RuleField(_schedule, STRING, required=False, allow_null=True, default=None)
    image = RuleField(
        _image, {"type": "object", "additionalProperties": True}, required=False, default=None
    )
    secrets = serializers.ListField(
        child=RuleField(check_secret_name, STRING),
        required=False,
        default=list,
        max_length=MAX_SECRETS_PER_FUNCTION,
    )
    cpu = RuleField(parse_cpu, STRING, required=False, allow_null=True, default=None)
    memory = RuleField(parse_memory, STRING, required=False, allow_null=True, default=None)
    gpu = RuleField(_gpu, STRING, required=False, allow_null=True, default=None)
    retries = RuleField(
        Retries.coerce,
        {
            "oneOf": [
                {"type": "integer", "minimum": 0},
                {
                    "type": "object",
                    "properties": {
                        "max_retries": {"type": "integer"},
                        "backoff_coefficient": {"type": "number"},
                        "initial_delay": {"type": "number"},
                        "max_delay": {"type": "number"},
                    },
                    "required": ["max_retries"],
                },
            ]
        },
        required=False,
        default=0,
    )
    timeout = RuleField(_timeout, {"type": "number"}, required=False, allow_null=True, default=None)
    overlap = RuleField(
        check_overlap, {"type": "string", "enum": list(OVERLAP_POLICIES)}, required=False,
        default="skip",
    )  # fmt: skip

    def validate_secrets(self, names: list[str]) -> list[str]:
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise serializers.ValidationError(f"{', '.join(repeated)} is listed twice")
        return names

    def validate(self, attrs: dict) -> dict:
        if attrs["image"] is None:
            attrs["image"] = ImageSpec.debian_slim()
        if not isinstance(attrs["retries"], Retries):  # the default, 0
            attrs["retries"] = Retries.coerce(attrs["retries"])
        return attrs


NAME = OpenApiParameter(
    "name",
    {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
    OpenApiParameter.PATH,
    description='The function\'s name, a DNS label such as "refresh-exchange-rates"',
)
PAGE = [
    OpenApiParameter("limit", int, description="Page size (default 100, at most 1000)"),
    OpenApiParameter("offset", int, description="Items to skip"),
]
HELLO = OpenApiExample(
    "hello",
    request_only=True,
    value={
        "source": 'import chalkcompute\n\n\n@chalkcompute.function(schedule="10m")\n'
        'def hello() -> None:\n    print("hello")\n',
        "source_filename": "hello.py",
        "entrypoint": "hello",
        "schedule": "10m",
        "image": {"base": "debian_slim", "python_version": "3.11", "steps": []},
        "secrets": [],
        "cpu": "0.5",
        "memory": "256Mi",
        "gpu": None,
        "retries": 2,
        "timeout": 300,
        "overlap": "skip",
    },
)


# One APIView per URL: the REST contract puts GET, PUT and DELETE on one URL, and each
# method below is one operation with its own serializers and service call.


class FunctionListApi(APIView):
    @extend_schema(
        operation_id="functions_list",
        summary="List functions",
        tags=["functions"],
        parameters=PAGE,
        responses={200: paginated(FunctionOutputSerializer, "FunctionPage"), **ERRORS},
    )
    def get(self, request):
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.function_list(), request, view=self)
        return paginator.get_paginated_response(FunctionOutputSerializer(page, many=True).data)


class FunctionApi(APIView):
    @extend_schema(
        operation_id="functions_get",
        summary="Read a function",
        tags=["functions"],
        parameters=[NAME],
        responses={200: FunctionOutputSerializer, **ERRORS},
    )
    def get(self, request, name: str):
        return Response(FunctionOutputSerializer(function_or_404(name)).data)

    @extend_schema(
        operation_id="functions_deploy",
        summary="Deploy a function",
        description="Creates the function (201) or a new version of it (200, deploy "
        '"updated"); the same content again changes nothing (200, deploy "unchanged").',
        tags=["functions"],
        parameters=[NAME],
        request=DeployInputSerializer,
        examples=[HELLO],
        responses={
            200: DeployOutputSerializer,
            201: DeployOutputSerializer,
            **ERRORS,
            413: ErrorSerializer,
        },
    )
    def put(self, request, name: str):
        name = function_name_or_400(name)
        serializer = DeployInputSerializer(
            data=request_object(request, DeployInputSerializer().fields)
        )
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        result = services.function_deploy(
            name=name,
            source=fields["source"],
            source_filename=fields["source_filename"],
            entrypoint=fields["entrypoint"],
            schedule=fields["schedule"],
            image=fields["image"],
            secret_names=fields["secrets"],
            cpu=fields["cpu"],
            memory=fields["memory"],
            gpu=fields["gpu"],
            retries=fields["retries"],
            timeout=fields["timeout"],
            overlap=fields["overlap"],
            deployed_by=actor_name(request),
            now=timezone.now(),
        )
        function = selectors.function_get(name=name)
        body = {**FunctionOutputSerializer(function).data, "deploy": result.outcome}
        created = result.outcome == "created"
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        operation_id="functions_delete",
        summary="Delete a function and its versions",
        tags=["functions"],
        parameters=[NAME],
        responses={204: None, **ERRORS},
    )
    def delete(self, request, name: str):
        services.function_delete(function=function_or_404(name))
        return Response(status=status.HTTP_204_NO_CONTENT)


class FunctionPauseApi(APIView):
    @extend_schema_serializer(component_name="PauseInput")
    class InputSerializer(serializers.Serializer):
        reason = StrictCharField(
            required=False, allow_blank=True, default="", max_length=MAX_PAUSE_REASON
        )

    @extend_schema(
        operation_id="functions_pause",
        summary="Pause a function",
        description="Stops scheduling it; pausing a paused function keeps who, when and why.",
        tags=["functions"],
        parameters=[NAME],
        request=InputSerializer,
        responses={200: FunctionOutputSerializer, **ERRORS},
    )
    def post(self, request, name: str):
        function = function_or_404(name)
        serializer = self.InputSerializer(
            data=request_object(request, self.InputSerializer().fields)
        )
        serializer.is_valid(raise_exception=True)
        services.function_pause(
            function=function,
            paused_by=actor_name(request),
            reason=serializer.validated_data["reason"],
            now=timezone.now(),
        )
        return Response(FunctionOutputSerializer(selectors.function_get(name=name)).data)


class FunctionResumeApi(APIView):
    @extend_schema(
        operation_id="functions_resume",
        summary="Resume a function",
        description="Schedules it again from the first slot after now; slots that passed "
        "while it was paused are not run.",
        tags=["functions"],
        parameters=[NAME],
        request=None,
        responses={200: FunctionOutputSerializer, **ERRORS},
    )
    def post(self, request, name: str):
        function = function_or_404(name)
        request_object(request, [])
        services.function_resume(function=function, now=timezone.now())
        return Response(FunctionOutputSerializer(selectors.function_get(name=name)).data)
