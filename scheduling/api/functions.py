"""REST endpoints for functions: deploy (PUT), read, list, delete, pause, resume.

The deploy body is the code and a chalkcompute.FunctionSpec, each spec field checked by the
SDK's own rule for it, so what the decorator accepts the server accepts, with the same messages.
"""

import base64
import binascii
import functools
import keyword
import re

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

from access.actor import Actor
from chalkcompute.image import BLANK_CHARS
from chalkcompute.names import InvalidNameError, check_function_name
from chalkcompute.schedule import Fire
from chalkcompute.spec import TAG_KEY, FunctionSpec, InvalidSpecError, Problem
from common.api import (
    BODY_ERRORS,
    COMMON_ERRORS,
    PAGE_PARAMETERS,
    ApiError,
    ErrorSerializer,
    Pagination,
    RuleField,
    StrictCharField,
    StrictInputSerializer,
    error_responses,
    paginated,
    request_object,
)
from scheduling import selectors, services
from scheduling.models import Function
from scheduling.services import MAX_PAUSE_REASON

NEXT_RUNS_SHOWN = 3
# A Python name too may find a function (function_or_404).
PYTHON_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
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
    """The function `name` names: its name, or its Python name (selectors.function_find)."""
    if not PYTHON_NAME.fullmatch(name):
        function_name_or_400(name)
    function = selectors.function_find(name=name)
    if function is None:
        raise NotFound(
            f"no function named {name!r} is deployed here; list them with GET /api/v1/functions",
            code="not_found",
        )
    return function


def function_console_url(function: Function) -> str:
    return f"{settings.CHALK_PUBLIC_URL.rstrip('/')}/functions/{function.name}"


# --- the code's rules, as field validators (FunctionSpec checks the rest) ---------------------


def _entrypoint(value: str) -> str:
    if not value.isidentifier() or keyword.iskeyword(value):
        raise serializers.ValidationError(
            f"{value!r} is not a Python function name; give the name of a function defined at "
            "the top level of the source, e.g. refresh_exchange_rates"
        )
    return value


def _files(value: object) -> dict[str, bytes]:
    """[{"path", "content_base64"}] to {path: content}; the paths' rules are the service's."""
    if not isinstance(value, list):
        raise serializers.ValidationError(
            'must be a list of {"path": "helpers/rates.py", "content_base64": "..."}'
        )
    files: dict[str, bytes] = {}
    for index, item in enumerate(value):
        if (
            not isinstance(item, dict)
            or set(item) != {"path", "content_base64"}
            or not isinstance(item["path"], str)
            or not isinstance(item["content_base64"], str)
        ):
            raise serializers.ValidationError(
                f'item {index} must be {{"path": "...", "content_base64": "..."}}, two strings'
            )
        try:
            content = base64.b64decode(item["content_base64"], validate=True)
        except binascii.Error:
            raise serializers.ValidationError(
                f"item {index} ({item['path'][:100]!r}): content_base64 is not base64"
            ) from None
        if item["path"] in files:
            raise serializers.ValidationError(f"{item['path'][:100]!r} is listed twice")
        files[item["path"]] = content
    return files


class FilesField(serializers.Field):
    def to_internal_value(self, data: object) -> dict[str, bytes]:
        return _files(data)


def _source_filename(value: str) -> str:
    if "/" in value or "\\" in value or not value.endswith(".py") or value in (".py", "..py"):
        raise serializers.ValidationError(
            f'{value!r} must be a file name ending in .py, without a folder, e.g. "job.py"'
        )
    return value


STRING = {"type": "string"}
NULLABLE_STRING = {"type": "string", "nullable": True}
# The schemas of the code in the deploy body, with the rules the fields check (FunctionSpec
# gives its own fields' schemas). No string may hold a NUL character (request_object).
CODE_SCHEMAS = {
    "source": {
        "type": "string",
        "minLength": 1,
        # In characters, the most a source of CHALK_MAX_SOURCE_BYTES bytes can have: every
        # longer one is refused. Its UTF-8 size is checked too (413), which no schema can say.
        "maxLength": settings.CHALK_MAX_SOURCE_BYTES,
        "pattern": r"^[^\u0000]*$",
        "description": "The text of the module: at most CHALK_MAX_SOURCE_BYTES "
        f"({settings.CHALK_MAX_SOURCE_BYTES}) bytes as UTF-8, else 413.",
    },
    "source_filename": {
        "type": "string",
        "maxLength": 255,
        "pattern": rf"^[^/\\\u0000]*[^/\\\u0000.{BLANK_CHARS}][^/\\\u0000]*\.py$",
        "description": 'A file name ending in .py, without a folder, e.g. "job.py".',
    },
    "entrypoint": {
        "type": "string",
        "maxLength": 255,
        "pattern": rf"^(?!(?:{'|'.join(keyword.kwlist)})$)[A-Za-z_][A-Za-z0-9_]*$",
        "description": "The name of the function, defined at the top level of the source.",
    },
    "files": {
        "type": "array",
        "default": [],
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["path", "content_base64"],
            "properties": {
                "path": {"type": "string", "minLength": 1, "maxLength": 1024},
                "content_base64": {"type": "string", "format": "byte"},
            },
        },
        "description": "Files shipped with the code, written at `path` (relative, no '.' or "
        "'..' part) in the run's working directory: at most 1000, and CHALK_MAX_FILES_BYTES "
        f"({settings.CHALK_MAX_FILES_BYTES}) bytes together, else 400.",
    },
}


# An image spec as stored: chalkcompute.Image.spec.
IMAGE_DOCUMENT_SCHEMA = {
    "type": "object",
    "properties": {
        "base": STRING,
        "python_version": STRING,
        "steps": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["base", "python_version", "steps"],
}


class SpecValueField(serializers.Field):
    """A FunctionSpec field in the function document: its JSON form, as the current version
    stores it."""

    def __init__(self, name: str) -> None:
        self.spec_field = name
        self._spectacular_annotation = {"field": FunctionSpec.document_schema(name)}
        super().__init__(source="current_version")

    def to_representation(self, version) -> object:
        return version.spec_document[self.spec_field]


class FunctionOutputSerializer(serializers.Serializer):
    """The function document: the same shape in every response that describes a function.
    The spec's fields follow the image, each as its JSON form (FunctionSpec.as_dict())."""

    class ImageSerializer(serializers.Serializer):
        spec_hash = serializers.CharField()
        spec = serializers.JSONField()

        def get_fields(self) -> dict[str, serializers.Field]:
            fields = super().get_fields()
            fields["spec"]._spectacular_annotation = {"field": IMAGE_DOCUMENT_SCHEMA}
            return fields

    name = serializers.CharField()
    version = serializers.IntegerField(source="current_version.number")
    schedule = serializers.CharField(source="current_version.schedule", allow_null=True)
    cron = serializers.CharField(source="current_version.cron", allow_null=True)
    timezone = SpecValueField("timezone")
    schedule_description = serializers.SerializerMethodField()
    next_fire_at = serializers.DateTimeField(allow_null=True)
    next_runs = serializers.SerializerMethodField()
    upcoming = serializers.SerializerMethodField()
    paused = serializers.BooleanField()
    paused_at = serializers.DateTimeField(allow_null=True)
    paused_by = serializers.SerializerMethodField()
    paused_reason = serializers.SerializerMethodField()
    image = ImageSerializer(source="current_version.image")
    entrypoint = serializers.CharField(source="current_version.entrypoint")
    source_filename = serializers.CharField(source="current_version.source_filename")
    source_sha256 = serializers.CharField(source="current_version.source_sha256")
    files = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    console_url = serializers.SerializerMethodField()

    @extend_schema_field(STRING)
    def get_schedule_description(self, function: Function) -> str:
        return selectors.schedule_description(function.current_version)

    @extend_schema_field(serializers.ListField(child=serializers.DateTimeField()))
    def get_next_runs(self, function: Function) -> list[str]:
        field = serializers.DateTimeField()
        return [field.to_representation(fire.at) for fire in self._upcoming(function)]

    @extend_schema_field(
        {
            "type": "array",
            "description": "The next runs in UTC (`at`) and in the schedule's zone (`local`, "
            "with its offset), with a `note` where a change of clocks moves or merges one.",
            "items": {
                "type": "object",
                "properties": {
                    "at": {"type": "string", "format": "date-time"},
                    "local": {"type": "string", "format": "date-time"},
                    "note": NULLABLE_STRING,
                },
                "required": ["at", "local", "note"],
            },
        }
    )
    def get_upcoming(self, function: Function) -> list[dict]:
        field = serializers.DateTimeField()
        return [
            {
                "at": field.to_representation(fire.at),
                "local": fire.local.isoformat(),
                "note": fire.note,
            }
            for fire in self._upcoming(function)
        ]

    def _upcoming(self, function: Function) -> list[Fire]:
        """Computed once per function for next_runs and upcoming."""
        computed = self.context.setdefault("upcoming", {})
        if function.id not in computed:
            computed[function.id] = selectors.upcoming_fires(function, NEXT_RUNS_SHOWN)
        return computed[function.id]

    @extend_schema_field(
        {
            "type": "array",
            "description": "The files shipped with the code, by path (never their content).",
            "items": {
                "type": "object",
                "properties": {"path": STRING, "size": {"type": "integer"}, "sha256": STRING},
                "required": ["path", "size", "sha256"],
            },
        }
    )
    def get_files(self, function: Function) -> list[dict]:
        return [
            {"path": file.path, "size": file.size, "sha256": file.sha256}
            for file in function.current_version.files.all()
        ]

    @extend_schema_field(NULLABLE_STRING)
    def get_paused_by(self, function: Function) -> str | None:
        return function.paused_by or None

    @extend_schema_field(NULLABLE_STRING)
    def get_paused_reason(self, function: Function) -> str | None:
        return function.paused_reason or None

    @extend_schema_field({"type": "string", "format": "uri"})
    def get_console_url(self, function: Function) -> str:
        return function_console_url(function)

    def get_fields(self) -> dict[str, serializers.Field]:
        declared = super().get_fields()
        fields = {}
        for name, field in declared.items():
            fields[name] = field
            if name == "image":
                for spec_name in FunctionSpec.field_names():
                    if spec_name not in declared:
                        fields[spec_name] = SpecValueField(spec_name)
        return fields


class DeployOutputSerializer(FunctionOutputSerializer):
    deploy = serializers.ChoiceField(
        choices=["created", "updated", "unchanged"],
        help_text="created: first version; updated: a new version; unchanged: same content",
    )
    warnings = serializers.ListField(
        child=serializers.CharField(),
        help_text="What will run, but not as its author may expect (e.g. a timeout longer than "
        "the time between two slots).",
    )


class SpecField(RuleField):
    """A FunctionSpec field of the deploy body: optional (the spec's default), checked by
    FunctionSpec's rule for it, and documented with its schema."""

    def __init__(self, name: str) -> None:
        schema = FunctionSpec.schema(name)
        rule = functools.partial(FunctionSpec.check_field, name)
        super().__init__(rule, schema, required=False, allow_null=schema.get("nullable", False))

    def to_internal_value(self, data: object) -> object:
        try:
            return self.rule(data)
        except InvalidSpecError as exc:
            raise serializers.ValidationError(_detail(exc.problems)) from None


def _detail(problems: tuple[Problem, ...]) -> list[str] | dict[int, list[str]]:
    """A field's problems as DRF's detail: the field's messages, or each item's."""
    if all(problem.index is None for problem in problems):
        return [problem.message for problem in problems]
    items: dict[int, list[str]] = {}
    for problem in problems:
        items.setdefault(problem.index or 0, []).append(problem.message)
    return items


class DeployInputSerializer(StrictInputSerializer):
    """The code, then the FunctionSpec fields (chalkcompute.FunctionSpec.as_dict())."""

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
    files = FilesField(required=False, default=dict)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for name, schema in CODE_SCHEMAS.items():
            fields[name]._spectacular_annotation = {"field": schema}  # read by drf-spectacular
        return {**fields, **{name: SpecField(name) for name in FunctionSpec.field_names()}}

    def validate(self, attrs: dict) -> dict:
        """Gathers the checked spec fields into attrs["spec"] (a missing one takes its
        default)."""
        spec = {name: attrs.pop(name) for name in FunctionSpec.field_names() if name in attrs}
        try:
            attrs["spec"] = FunctionSpec.from_dict(spec)
        except InvalidSpecError as exc:  # a rule between fields, e.g. a zone with no schedule
            raise serializers.ValidationError(
                {problem.path: [problem.message] for problem in exc.problems}
            ) from None
        return attrs


TAG = OpenApiParameter(
    "tag",
    {
        "type": "array",
        "items": {
            "type": "string",
            "pattern": rf"^{TAG_KEY.pattern[1:-1]}(?::[^\u0000]{{0,255}})?$",
        },
    },
    OpenApiParameter.QUERY,
    explode=True,
    description='Only functions with this tag: "team:data" (that value) or "team" (any value); '
    "repeat it for several.",
)


def tags_or_400(wanted: list[str]) -> list[tuple[str, str | None]]:
    """`?tag=team:data&tag=owner` as [("team", "data"), ("owner", None)], each checked by the
    tags' rule."""
    try:
        return [selectors.parse_tag(text) for text in wanted]
    except ValueError as exc:
        raise ApiError(400, "invalid_tag", str(exc)) from None


DEPLOY_NAME = OpenApiParameter(
    "name",
    {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
    OpenApiParameter.PATH,
    description='The function\'s name, a DNS label such as "refresh-exchange-rates"',
)
NAME = OpenApiParameter(
    "name",
    {
        "type": "string",
        "pattern": rf"^(?:[a-z0-9](?:[-a-z0-9]{{0,61}}[a-z0-9])?|{PYTHON_NAME.pattern[1:-1]})$",
        "maxLength": 255,
    },
    OpenApiParameter.PATH,
    description='The function\'s name, a DNS label such as "refresh-exchange-rates"; reading, '
    "pausing, resuming, triggering and deleting also take its Python name "
    '("refresh_exchange_rates"). A deploy takes its name only.',
)
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
        parameters=[*PAGE_PARAMETERS, TAG],
        responses={
            200: paginated(FunctionOutputSerializer, "FunctionPage"),
            **error_responses(*COMMON_ERRORS),
        },
    )
    def get(self, request):
        tags = tags_or_400(request.query_params.getlist("tag"))
        return Pagination.respond(
            request,
            self,
            selectors.with_files(selectors.function_list(tags=tags)),
            FunctionOutputSerializer,
        )


class FunctionApi(APIView):
    @extend_schema(
        operation_id="functions_get",
        summary="Read a function",
        tags=["functions"],
        parameters=[NAME],
        responses={200: FunctionOutputSerializer, **error_responses(*COMMON_ERRORS, 404)},
    )
    def get(self, request, name: str):
        return Response(FunctionOutputSerializer(function_or_404(name)).data)

    @extend_schema(
        operation_id="functions_deploy",
        summary="Deploy a function",
        description="Creates the function (201) or a new version of it (200, deploy "
        '"updated"); the same content again changes nothing (200, deploy "unchanged"). '
        "Rules no schema can state are checked here, and a body that breaks them is refused "
        '(400): every secret it names (in secrets, or in env as {"secret": NAME}) must be '
        "stored on this server, a name is set in env or in secrets but not both, and "
        "retries.max_delay is not shorter than retries.initial_delay.",
        tags=["functions"],
        parameters=[DEPLOY_NAME],
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
        result = services.function_deploy(
            name=name,
            **serializer.validated_data,
            actor=Actor.of_request(request),
            now=timezone.now(),
        )
        function = selectors.function_get(name=name)
        body = {
            **FunctionOutputSerializer(function).data,
            "deploy": result.outcome,
            "warnings": selectors.deploy_warnings(function.current_version, timezone.now()),
        }
        created = result.outcome == "created"
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        operation_id="functions_delete",
        summary="Delete a function and its versions",
        tags=["functions"],
        parameters=[NAME],
        responses={204: None, **error_responses(*COMMON_ERRORS, 404)},
    )
    def delete(self, request, name: str):
        services.function_delete(
            function=function_or_404(name), actor=Actor.of_request(request), now=timezone.now()
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class FunctionPauseApi(APIView):
    @extend_schema_serializer(component_name="PauseInput")
    class InputSerializer(StrictInputSerializer):
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
        responses={
            200: FunctionOutputSerializer,
            **error_responses(*COMMON_ERRORS, 404, *BODY_ERRORS),
        },
    )
    def post(self, request, name: str):
        function = function_or_404(name)
        serializer = self.InputSerializer(
            data=request_object(request, self.InputSerializer().fields)
        )
        serializer.is_valid(raise_exception=True)
        services.function_pause(
            function=function,
            actor=Actor.of_request(request),
            reason=serializer.validated_data["reason"],
            now=timezone.now(),
        )
        return Response(FunctionOutputSerializer(selectors.function_get(name=function.name)).data)


class FunctionResumeApi(APIView):
    @extend_schema(
        operation_id="functions_resume",
        summary="Resume a function",
        description="Schedules it again from the first slot after now; slots that passed "
        "while it was paused are not run.",
        tags=["functions"],
        parameters=[NAME],
        request=None,
        responses={
            200: FunctionOutputSerializer,
            **error_responses(*COMMON_ERRORS, 404, *BODY_ERRORS),
        },
    )
    def post(self, request, name: str):
        function = function_or_404(name)
        request_object(request, [])
        services.function_resume(
            function=function, actor=Actor.of_request(request), now=timezone.now()
        )
        return Response(FunctionOutputSerializer(selectors.function_get(name=function.name)).data)
