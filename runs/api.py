"""REST endpoints for runs: list, read, logs, cancel, and trigger (run now); and backfills:
start, read, cancel."""

from django.utils import timezone
from drf_spectacular.utils import (
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
from chalkcompute.runtime import returns
from common.api import (
    AWARE_DATETIME_SCHEMA,
    BODY_ERRORS,
    COMMON_ERRORS,
    PAGE_PARAMETERS,
    ApiError,
    Pagination,
    RuleField,
    StrictBooleanField,
    StrictInputSerializer,
    aware_datetime,
    error_responses,
    int_query_param,
    int_query_schema,
    json_integer,
    paginated,
    request_object,
)
from runs import backfills, selectors, services
from runs.models import Attempt, Backfill, LogLine, Run, RunStatus, Trigger
from scheduling.api.functions import NAME, function_console_url, function_or_404

MAX_LOG_PAGE = 5000


class AttemptOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = [
            "number", "status", "not_before", "started_at", "finished_at", "executor",
            "executor_ref", "exit_code", "error_type", "error_message", "traceback", "reason",
            "counts_against_retries", "peak_memory_bytes", "cpu_seconds", "log_lines",
            "log_truncated",
        ]  # fmt: skip


class RunOutputSerializer(serializers.ModelSerializer):
    function = serializers.CharField(source="function.name")
    version = serializers.IntegerField(source="version.number")
    shown_status = serializers.CharField(
        help_text='The status as the console shows it: "scheduled" for a scheduled run taken'
        " ahead of its slot (its runner may already wait), else `status`"
    )

    class Meta:
        model = Run
        fields = [
            "id", "function", "version", "trigger", "triggered_by", "scheduled_for", "status",
            "shown_status", "status_reason", "missed_slots", "created_at", "started_at",
            "finished_at", "cancel_requested_at", "peak_memory_bytes", "cpu_seconds",
        ]  # fmt: skip


class RunDetailOutputSerializer(RunOutputSerializer):
    attempts = AttemptOutputSerializer(many=True)

    class Meta(RunOutputSerializer.Meta):
        fields = [*RunOutputSerializer.Meta.fields, "return_value", "return_format", "attempts"]
        extra_kwargs = {
            "return_value": {
                "help_text": "What the function returned, secrets masked: the value itself "
                "when it is JSON, else a string, as return_format says; null when it returned "
                "None or the run did not succeed"
            },
            "return_format": {
                "help_text": "json; repr: return_value is the value's repr() (it is not JSON); "
                f"cut: the first {returns.MAX_RETURN_BYTES} bytes of a longer value's text; "
                "empty with no value"
            },
        }


class LogLineOutputSerializer(serializers.ModelSerializer):
    seq = serializers.IntegerField(
        source="id", help_text="Increases along the run's log; pass it as ?after="
    )
    attempt = serializers.IntegerField(source="attempt.number")

    class Meta:
        model = LogLine
        fields = ["seq", "attempt", "ts", "stream", "level", "text"]


class LogPageSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RunStatus.values)
    finished = serializers.BooleanField(
        help_text="True once the run ended: no more lines will come"
    )
    next_after = serializers.IntegerField(help_text="Pass as ?after= to get only newer lines")
    results = LogLineOutputSerializer(many=True)


def run_or_404(run_id: int) -> Run:
    run = selectors.run_get(run_id=run_id)
    if run is None:
        raise NotFound(f"no run {run_id} here; list runs with GET /api/v1/runs", code="not_found")
    return run


class RunListApi(APIView):
    @extend_schema(
        operation_id="runs_list",
        parameters=[
            OpenApiParameter(
                "function",
                {**NAME.type, "minLength": 1},  # a function's name, as in its URL
                description="Only this function's runs (leave it out for every function's)",
            ),
            OpenApiParameter(
                "status", str, enum=RunStatus.values, description="Only runs in this status"
            ),
            *PAGE_PARAMETERS,
        ],
        responses={
            200: paginated(RunOutputSerializer, "RunPage"),
            **error_responses(*COMMON_ERRORS, 404),
        },
    )
    def get(self, request):
        status_filter = request.query_params.get("status")
        if status_filter is not None and status_filter not in RunStatus.values:
            raise ApiError(
                400,
                "invalid_status",
                f"status {status_filter!r} is unknown; use one of {', '.join(RunStatus.values)}",
            )
        function = None
        if request.query_params.get("function") == "":
            raise ApiError(
                400,
                "invalid_function",
                "function is empty; give a function's name, e.g. ?function=refresh-rates, or "
                "leave the parameter out to list every function's runs",
            )
        if request.query_params.get("function") is not None:
            function = function_or_404(request.query_params["function"])
        runs = selectors.run_list(function=function, status=status_filter)
        return Pagination.respond(request, self, runs, RunOutputSerializer)


class RunApi(APIView):
    @extend_schema(
        operation_id="runs_get",
        responses={200: RunDetailOutputSerializer, **error_responses(*COMMON_ERRORS, 404)},
    )
    def get(self, request, run_id: int):
        return Response(RunDetailOutputSerializer(run_or_404(run_id)).data)


class RunLogsApi(APIView):
    @extend_schema(
        operation_id="runs_logs",
        parameters=[
            OpenApiParameter(
                "after",
                int_query_schema(default=0),
                description="Only lines after this seq (for tailing)",
            ),
            OpenApiParameter(
                "limit",
                int_query_schema(default=MAX_LOG_PAGE, minimum=1, maximum=MAX_LOG_PAGE),
                description=f"At most this many lines (default and most {MAX_LOG_PAGE})",
            ),
        ],
        responses={200: LogPageSerializer, **error_responses(*COMMON_ERRORS, 404)},
    )
    def get(self, request, run_id: int):
        run = run_or_404(run_id)
        after = int_query_param(request, "after", default=0)
        limit = int_query_param(
            request, "limit", default=MAX_LOG_PAGE, minimum=1, maximum=MAX_LOG_PAGE
        )
        lines = list(selectors.log_lines(run=run, after=after, limit=limit))
        return Response(
            {
                "run": run.id,
                "status": run.status,
                "finished": not run.is_active,
                "next_after": lines[-1].id if lines else after,
                "results": LogLineOutputSerializer(lines, many=True).data,
            }
        )


class RunCancelApi(APIView):
    @extend_schema(
        operation_id="runs_cancel",
        request=None,
        responses={
            200: RunDetailOutputSerializer,
            **error_responses(*COMMON_ERRORS, 404, 409, *BODY_ERRORS),
        },
    )
    def post(self, request, run_id: int):
        run = run_or_404(run_id)
        request_object(request, [])
        if not services.run_cancel(run=run, actor=Actor.of_request(request), now=timezone.now()):
            raise ApiError(
                409,
                "run_finished",
                f"run {run.id} already ended ({run.status}); there is nothing to cancel",
            )
        return Response(RunDetailOutputSerializer(run_or_404(run_id)).data)


class FunctionTriggerApi(APIView):
    @extend_schema(
        operation_id="functions_trigger",
        parameters=[NAME],
        request=None,
        responses={
            201: RunDetailOutputSerializer,
            **error_responses(*COMMON_ERRORS, 404, 409, *BODY_ERRORS),
        },
    )
    def post(self, request, name: str):
        function = function_or_404(name)
        request_object(request, [])
        run = services.run_trigger(
            function=function,
            trigger=Trigger.API,
            actor=Actor.of_request(request),
            now=timezone.now(),
        )
        return Response(
            RunDetailOutputSerializer(run_or_404(run.id)).data, status=status.HTTP_201_CREATED
        )


class BackfillRunOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Run
        fields = ["id", "scheduled_for", "status", "started_at", "finished_at"]


class BackfillOutputSerializer(serializers.ModelSerializer):
    function = serializers.CharField(source="function.name")
    version = serializers.IntegerField(
        source="version.number", help_text="The version every run runs, current when it began"
    )
    slots = serializers.IntegerField(help_text="The schedule's slots from start to end")
    skipped_slots = serializers.IntegerField(
        help_text="Slots not run because their run had succeeded when the backfill started "
        "(0 with rerun)"
    )
    runs = BackfillRunOutputSerializer(many=True, help_text="Its runs so far, in slot order")
    console_url = serializers.SerializerMethodField(
        help_text="The function's page, where its backfills show their progress"
    )

    class Meta:
        model = Backfill
        fields = [
            "id", "function", "version", "start", "end", "slots", "skipped_slots", "rerun",
            "max_parallel", "status", "created_by", "created_at", "finished_at", "runs",
            "console_url",
        ]  # fmt: skip

    @extend_schema_field({"type": "string", "format": "uri"})
    def get_console_url(self, backfill: Backfill) -> str:
        return f"{function_console_url(backfill.function)}#backfills"


def backfill_or_404(backfill_id: int) -> Backfill:
    backfill = selectors.backfill_get(backfill_id=backfill_id)
    if backfill is None:
        raise NotFound(f"no backfill {backfill_id} here", code="not_found")
    return backfill


class FunctionBackfillApi(APIView):
    @extend_schema_serializer(component_name="BackfillInput")
    class InputSerializer(StrictInputSerializer):
        start = RuleField(
            aware_datetime,
            AWARE_DATETIME_SCHEMA,
            error_messages={"required": "is required: the first slot's date and time, e.g. "
                            "2026-12-01T00:00:00Z"},
        )  # fmt: skip
        end = RuleField(
            aware_datetime,
            AWARE_DATETIME_SCHEMA,
            error_messages={"required": "is required: the last slot's date and time, at or "
                            "before now"},
        )  # fmt: skip
        rerun = StrictBooleanField(
            required=False, default=False, help_text="Run slots that already succeeded too"
        )
        max_parallel = RuleField(
            json_integer,
            {"type": "integer", "minimum": 1, "maximum": backfills.MAX_PARALLEL, "default": 1},
            required=False,
            default=1,
        )
        confirm = StrictBooleanField(
            required=False,
            default=False,
            help_text="Required when more than CHALK_BACKFILL_CONFIRM_SLOTS slots are to run",
        )

    @extend_schema(
        operation_id="functions_backfill",
        description="Runs the function's current version once for every slot of its schedule "
        "from start to end (both inclusive, end at or before now), in slot order, at most "
        "max_parallel at a time; slots whose run already succeeded are skipped unless rerun. "
        "The live schedule is untouched. Rules no schema can state are checked here, and a "
        "body that breaks them is refused (400): the function has a schedule, start is at or "
        "before end, and the range holds one to CHALK_BACKFILL_MAX_SLOTS slots.",
        parameters=[NAME],
        request=InputSerializer,
        responses={
            201: BackfillOutputSerializer,
            **error_responses(*COMMON_ERRORS, 404, 409, *BODY_ERRORS),
        },
    )
    def post(self, request, name: str):
        function = function_or_404(name)
        serializer = self.InputSerializer(
            data=request_object(request, self.InputSerializer().fields)
        )
        serializer.is_valid(raise_exception=True)
        backfill = backfills.backfill_start(
            function=function,
            **serializer.validated_data,
            actor=Actor.of_request(request),
            now=timezone.now(),
        )
        return Response(
            BackfillOutputSerializer(backfill_or_404(backfill.id)).data,
            status=status.HTTP_201_CREATED,
        )


class BackfillApi(APIView):
    @extend_schema(
        operation_id="backfills_get",
        responses={200: BackfillOutputSerializer, **error_responses(*COMMON_ERRORS, 404)},
    )
    def get(self, request, backfill_id: int):
        return Response(BackfillOutputSerializer(backfill_or_404(backfill_id)).data)


class BackfillCancelApi(APIView):
    @extend_schema(
        operation_id="backfills_cancel",
        description="Starts no more of its runs and cancels those still active.",
        request=None,
        responses={
            200: BackfillOutputSerializer,
            **error_responses(*COMMON_ERRORS, 404, 409, *BODY_ERRORS),
        },
    )
    def post(self, request, backfill_id: int):
        backfill = backfill_or_404(backfill_id)
        request_object(request, [])
        cancelled = backfills.backfill_cancel(
            backfill=backfill, actor=Actor.of_request(request), now=timezone.now()
        )
        if not cancelled:
            raise ApiError(
                409,
                "backfill_finished",
                f"backfill {backfill.id} already ended ({backfill.status}); there is nothing "
                "to cancel",
            )
        return Response(BackfillOutputSerializer(backfill_or_404(backfill_id)).data)
