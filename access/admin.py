"""The admin side of access: the audit trail (read-only), people's roles (an action that goes
through access.services.role_set), and the rights every Chalkweb admin action checks."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils import timezone

from access.actor import Actor
from access.models import AuditEvent
from access.rights import ROLES, Right
from access.services import rights_of, role_of, role_set, user_access_set


class RightsAdmin(admin.ModelAdmin):
    """Admin actions name the right they need in `allowed_permissions` ("run", "deploy",
    "secrets", "admin"); the answer comes from access, as for every other entry point."""

    def _holds(self, request, right: Right) -> bool:
        return right in rights_of(Actor.of_request(request))

    def has_run_permission(self, request) -> bool:
        return self._holds(request, Right.RUN)

    def has_deploy_permission(self, request) -> bool:
        return self._holds(request, Right.DEPLOY)

    def has_secrets_permission(self, request) -> bool:
        return self._holds(request, Right.SECRETS)

    def has_admin_permission(self, request) -> bool:
        return self._holds(request, Right.ADMIN)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "actor", "token_name", "action", "function", "target", "address"]
    list_filter = ["action"]
    search_fields = ["actor", "function", "target", "token_name"]
    date_hierarchy = "at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the retention task deletes events; nobody edits the record


User = get_user_model()


def _role_action(role: str | None):
    def set_role(modeladmin, request, queryset) -> None:
        actor, now = Actor.of_request(request), timezone.now()
        for user in queryset:
            role_set(actor=actor, user=user, role=role, now=now)
        modeladmin.message_user(
            request, f"{queryset.count()} user(s) now have {role or 'no'} role.", messages.SUCCESS
        )

    set_role.__name__ = f"set_role_{role or 'none'}"
    set_role.short_description = (
        f"Give the selected people the {role} role"
        if role
        else ("Take the selected people's role away")
    )
    set_role.allowed_permissions = ("admin",)
    return set_role


class ChalkwebUserAdmin(UserAdmin, RightsAdmin):
    """Roles change only through the actions, and sign-in and admin-site access through
    access.services.user_access_set, so each change is checked and audited. Groups,
    permissions and superuser status are shown, not edited: rights come from roles, and a
    superuser is made on the server (`manage.py createsuperuser`)."""

    list_display = ["username", "role", "is_active", "is_staff", "last_login"]
    actions = [_role_action(role) for role in (*ROLES, None)]
    readonly_fields = ["groups", "user_permissions", "is_superuser"]

    def save_model(self, request, obj, form, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        stored = type(obj).objects.get(pk=obj.pk)
        is_active, is_staff = obj.is_active, obj.is_staff
        obj.is_active, obj.is_staff = stored.is_active, stored.is_staff
        super().save_model(request, obj, form, change)  # names, email, password link
        user_access_set(
            actor=Actor.of_request(request), user=obj, is_active=is_active, is_staff=is_staff,
            now=timezone.now(),
        )  # fmt: skip

    @admin.display(description="role")
    def role(self, user) -> str:
        return role_of(user) or "—"


admin.site.unregister(User)
admin.site.register(User, ChalkwebUserAdmin)
