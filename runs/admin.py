"""Admin for operators: what happened. Runs, backfills, attempts, log lines, usage samples and
image builds are read-only records; the actions (cancel, re-run, and "run now" on functions) go
through runs.services like every other entry point. Each run links to its console page."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from access.actor import Actor
from access.admin import RightsAdmin
from runs.models import Attempt, Backfill, ImageBuild, LogLine, Run, Trigger, UsageSample
from runs.services import run_cancel, run_trigger
from scheduling.admin import FunctionAdmin


class ReadOnlyAdmin(RightsAdmin):
    """Records of what happened: written by the platform, never edited by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def console_link(run_id: int):
    return format_html('<a href="{}">run page</a>', reverse("run", args=[run_id]))


class FunctionFilter(admin.SimpleListFilter):
    """By function: lists the functions that ran most recently (a full list of thousands of
    names would not fit the sidebar); any function can be chosen with ?function=NAME."""

    title = "function"
    parameter_name = "function"
    SHOWN = 20

    def lookups(self, request, model_admin):
        recent = Run.objects.order_by("-id").values_list("function__name", flat=True)[
            : self.SHOWN * 50
        ]
        names = list(dict.fromkeys(recent))[: self.SHOWN]
        chosen = self.value()
        if chosen and chosen not in names:
            names.insert(0, chosen)
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(function__name=self.value())
        return queryset


class AttemptInline(admin.TabularInline):
    model = Attempt
    fields = [
        "number", "status", "executor", "executor_ref", "started_at", "finished_at",
        "exit_code", "error_type", "error_message", "reason", "log_lines",
    ]  # fmt: skip
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "function", "status", "trigger", "scheduled_for", "started_at", "finished_at",
        "console",
    ]  # fmt: skip
    list_filter = ["status", "trigger", FunctionFilter]
    search_fields = ["=id", "function__name", "status_reason"]
    list_select_related = ["function"]
    # A count over a million runs on every page of the changelist is not worth its cost.
    show_full_result_count = False
    actions = ["cancel", "rerun"]
    inlines = [AttemptInline]
    readonly_fields = [
        "function", "version", "trigger", "triggered_by", "scheduled_for", "status",
        "status_reason", "missed_slots", "created_at", "started_at", "finished_at",
        "cancel_requested_at", "peak_memory_bytes", "cpu_seconds", "return_format",
        "return_value", "console",
    ]  # fmt: skip
    fields = readonly_fields

    def get_queryset(self, request):
        # The changelist shows no return values: up to 64 KiB each, not read for every row.
        return super().get_queryset(request).defer("return_value")

    @admin.display(description="console")
    def console(self, run: Run):
        return console_link(run.id)

    def view_on_site(self, run: Run) -> str:
        return reverse("run", args=[run.id])

    @admin.action(description="Cancel selected runs", permissions=["run"])
    def cancel(self, request, queryset) -> None:
        actor, now = Actor.of_request(request), timezone.now()
        cancelled = sum(run_cancel(run=run, actor=actor, now=now) for run in queryset)
        skipped = queryset.count() - cancelled
        self.message_user(
            request,
            f"Cancelled {cancelled} run(s)."
            + (f" {skipped} had already ended." if skipped else ""),
            messages.SUCCESS,
        )

    @admin.action(
        description="Re-run selected runs (current version of their function)", permissions=["run"]
    )
    def rerun(self, request, queryset) -> None:
        actor, now = Actor.of_request(request), timezone.now()
        started = [
            run_trigger(
                function=run.function, trigger=Trigger.MANUAL, actor=actor, now=now, rerun_of=run.id
            )
            for run in queryset.filter(function__current_version__isnull=False).select_related(
                "function"
            )
        ]
        self.message_user(
            request,
            f"Started {len(started)} run(s): {', '.join(str(run.id) for run in started)}.",
            messages.SUCCESS,
        )


@admin.register(Backfill)
class BackfillAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "function", "status", "start", "end", "slots", "skipped_slots", "max_parallel",
        "created_by", "created_at", "finished_at",
    ]  # fmt: skip
    list_filter = ["status"]
    search_fields = ["=id", "function__name", "created_by"]
    list_select_related = ["function"]
    readonly_fields = [
        "function", "version", "start", "end", "rerun", "max_parallel", "slots",
        "skipped_slots", "next_slot", "status", "created_by", "created_at", "finished_at",
    ]  # fmt: skip
    fields = readonly_fields

    def view_on_site(self, backfill: Backfill) -> str:
        return reverse("function", args=[backfill.function.name]) + f"#backfill-{backfill.id}"


@admin.register(Attempt)
class AttemptAdmin(ReadOnlyAdmin):
    list_display = ["id", "run_link", "number", "status", "executor", "started_at", "exit_code"]
    list_filter = ["status", "executor"]
    search_fields = ["=run__id", "executor_ref", "error_type"]
    list_select_related = ["run"]
    show_full_result_count = False
    exclude = ["token_hash"]  # a hash, but still the runner's credential

    @admin.display(description="run")
    def run_link(self, attempt: Attempt):
        return format_html(
            '<a href="{}">run {}</a>', reverse("run", args=[attempt.run_id]), attempt.run_id
        )

    def view_on_site(self, attempt: Attempt) -> str:
        return reverse("run", args=[attempt.run_id])


@admin.register(LogLine)
class LogLineAdmin(ReadOnlyAdmin):
    """Log lines are read on the run page (filtered and live); this is their raw table."""

    list_display = ["id", "attempt", "seq", "ts", "stream", "level", "text"]
    list_filter = ["stream", "level"]
    search_fields = ["=attempt__run__id"]
    raw_id_fields = ["attempt"]
    show_full_result_count = False

    def view_on_site(self, line: LogLine) -> str:
        return reverse("run", args=[line.attempt.run_id])


@admin.register(UsageSample)
class UsageSampleAdmin(ReadOnlyAdmin):
    list_display = ["id", "attempt", "ts", "cpu_seconds", "cpu_percent", "rss_bytes"]
    search_fields = ["=attempt__run__id"]
    raw_id_fields = ["attempt"]
    show_full_result_count = False


@admin.register(ImageBuild)
class ImageBuildAdmin(ReadOnlyAdmin):
    list_display = ["image", "executor", "status", "started_at", "finished_at", "artifact"]
    list_filter = ["status", "executor"]
    search_fields = ["image__spec_hash", "artifact"]
    fields = ["image", "executor", "status", "artifact", "started_at", "finished_at", "build_log"]
    readonly_fields = fields

    @admin.display(description="log")
    def build_log(self, build: ImageBuild):
        return format_html("<pre>{}</pre>", build.log)


# "Run now" on the functions' admin. It lives here because scheduling never imports runs;
# FunctionAdmin reads its `actions` per request, so adding one at import time is enough.
@admin.action(description="Run selected functions now", permissions=["run"])
def run_now(modeladmin, request, queryset) -> None:
    actor, now = Actor.of_request(request), timezone.now()
    deployed = queryset.filter(current_version__isnull=False)
    started = [
        run_trigger(function=function, trigger=Trigger.MANUAL, actor=actor, now=now)
        for function in deployed
    ]
    modeladmin.message_user(
        request,
        f"Started {len(started)} run(s): {', '.join(str(run.id) for run in started)}.",
        messages.SUCCESS,
    )


if run_now not in FunctionAdmin.actions:
    FunctionAdmin.actions = [*FunctionAdmin.actions, run_now]
