"""Admin for operators. Writes go through scheduling.services, like every other entry point;
versions are read-only, and a secret's value can be set here but never read."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.html import format_html

from access.actor import Actor
from access.admin import RightsAdmin
from chalkcompute.names import InvalidNameError, check_secret_name
from scheduling import selectors, services
from scheduling.errors import SchedulingError
from scheduling.models import Function, FunctionVersion, Image, Secret


class FunctionVersionInline(admin.TabularInline):
    model = FunctionVersion
    fields = ["number", "schedule", "cron", "created_at", "created_by", "content_hash"]
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Function)
class FunctionAdmin(RightsAdmin):
    list_display = ["name", "schedule", "next_fire_at", "paused", "version"]
    list_filter = ["paused"]
    search_fields = ["name"]
    actions = ["pause", "resume"]
    readonly_fields = [
        "name",
        "current_version",
        "schedule",
        "next_fire_at",
        "paused",
        "paused_at",
        "paused_by",
        "paused_reason",
        "created_at",
        "updated_at",
    ]
    fields = readonly_fields
    inlines = [FunctionVersionInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("current_version")

    def has_add_permission(self, request) -> bool:
        return False  # functions are deployed from code: `python my_job.py`

    @admin.display(description="schedule")
    def schedule(self, function: Function) -> str:
        version = function.current_version
        description = selectors.schedule_description(version)
        return f"{description} ({version.cron})" if version and version.cron else description

    @admin.display(description="version")
    def version(self, function: Function) -> int | None:
        return function.current_version.number if function.current_version else None

    @admin.action(description="Pause selected functions", permissions=["run"])
    def pause(self, request, queryset) -> None:
        paused = services.functions_pause(
            functions=list(queryset),
            actor=Actor.of_request(request),
            reason="paused in the admin",
            now=timezone.now(),
        )
        self.message_user(request, f"Paused {len(paused)} function(s).", messages.SUCCESS)

    @admin.action(description="Resume selected functions", permissions=["run"])
    def resume(self, request, queryset) -> None:
        resumed = services.functions_resume(
            functions=list(queryset), actor=Actor.of_request(request), now=timezone.now()
        )
        self.message_user(request, f"Resumed {len(resumed)} function(s).", messages.SUCCESS)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_deploy_permission(request)

    def delete_model(self, request, obj: Function) -> None:
        services.function_delete(function=obj, actor=Actor.of_request(request), now=timezone.now())

    def delete_queryset(self, request, queryset) -> None:
        actor, now = Actor.of_request(request), timezone.now()
        for function in queryset:
            services.function_delete(function=function, actor=actor, now=now)


@admin.register(FunctionVersion)
class FunctionVersionAdmin(admin.ModelAdmin):
    list_display = ["function", "number", "schedule", "created_at", "created_by"]
    list_select_related = ["function"]
    search_fields = ["function__name"]
    fields = [
        "function",
        "number",
        "entrypoint",
        "source_filename",
        "source_sha256",
        "source_code",
        "image",
        "schedule",
        "cron",
        "cpu",
        "memory",
        "gpu",
        "retries",
        "timeout",
        "overlap",
        "secret_names",
        "content_hash",
        "created_by",
        "created_at",
    ]
    readonly_fields = fields

    @admin.display(description="source")
    def source_code(self, version: FunctionVersion) -> str:
        return format_html("<pre>{}</pre>", version.source)

    # Versions are immutable: deploy creates them, deleting the function removes them.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["spec_hash", "python_version", "created_at"]
    search_fields = ["spec_hash"]
    fields = ["spec_hash", "spec_json", "created_at"]
    readonly_fields = fields

    @admin.display(description="python")
    def python_version(self, image: Image) -> str:
        return image.spec.get("python_version", "")

    @admin.display(description="spec")
    def spec_json(self, image: Image) -> str:
        return format_html("<pre>{}</pre>", json.dumps(image.spec, indent=2, sort_keys=True))

    def has_add_permission(self, request) -> bool:
        return False  # images come with deploys

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class SecretForm(forms.ModelForm):
    # Write-only: PasswordInput never renders a value, and the stored ciphertext is not a field.
    value = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        strip=False,
        help_text="Write-only: the stored value is never shown. On a change, leave it empty "
        "to keep the current value.",
    )

    class Meta:
        model = Secret
        fields = ["name"]

    def clean_name(self) -> str:
        try:
            return check_secret_name(self.cleaned_data["name"])
        except InvalidNameError as exc:
            raise ValidationError(str(exc)) from None

    def clean_value(self) -> str:
        value = self.cleaned_data["value"]
        # On a change, empty keeps the stored value; a new secret's value is checked like any.
        if value or self.instance.pk is None:
            name = self.cleaned_data.get("name") or self.instance.name
            try:
                services.check_secret_value(name, value)
            except SchedulingError as exc:
                raise ValidationError(exc.message) from None
        return value


@admin.register(Secret)
class SecretAdmin(RightsAdmin):
    form = SecretForm
    list_display = ["name", "created_at", "updated_at"]
    search_fields = ["name"]

    def get_readonly_fields(self, request, obj=None):
        # Renaming would break the functions that read the secret under its name.
        return ["name", "created_at", "updated_at"] if obj else []

    def save_model(self, request, obj: Secret, form, change: bool) -> None:
        value = form.cleaned_data["value"]
        if not value:
            return  # nothing to change: the name is read-only on an existing secret
        secret, _ = services.secret_set(
            name=obj.name, value=value, actor=Actor.of_request(request), now=timezone.now()
        )
        # The service wrote the row; the admin goes on to log and redirect with this object.
        obj.pk = secret.pk
        obj.refresh_from_db()

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        users = services.secret_users(names=[secret.name for secret in objs])
        for secret in objs:
            for function_name in users.get(secret.name, []):
                protected.append(f"Function: {function_name} (reads secret {secret.name})")
        return deleted, model_count, perms_needed, protected

    def has_add_permission(self, request) -> bool:
        return self.has_secrets_permission(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self.has_secrets_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_secrets_permission(request)

    def delete_model(self, request, obj: Secret) -> None:
        services.secret_delete(secret=obj, actor=Actor.of_request(request), now=timezone.now())

    def delete_queryset(self, request, queryset) -> None:
        actor, now = Actor.of_request(request), timezone.now()
        for secret in queryset:
            services.secret_delete(secret=secret, actor=actor, now=now)
