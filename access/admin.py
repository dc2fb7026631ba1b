"""The admin side of access: the audit trail (read-only), people's roles (an action that goes
through access.services.role_set), API tokens (seen and revoked, never made here), and the
rights every Chalkweb admin action checks."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils import timezone

from access.actor import Actor
from access.auth import token_state
from access.models import ApiToken, AuditEvent
from access.rights import ROLES, Right
from access.selectors import tokens_visible_to
from access.services import rights_of, role_of, role_set, user_access_set
from access.tokens import token_revoke


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


@admin.register(ApiToken)
class ApiTokenAdmin(RightsAdmin):
    """Tokens are made on the console's API tokens page (or `manage.py create_token`), where
    the text is shown once in the response: never here, where it would pass through the
    messages cookie. An admin revokes anyone's token here or there."""

    list_display = [
        "name",
        "prefix",
        "created_by",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "last_used_from",
        "revoked_at",
        "state",
    ]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "created_by__username"]
    actions = ["revoke"]
    fields = list_display
    readonly_fields = list_display

    def get_queryset(self, request):
        # The console's rule (with the owners selected, for state).
        return tokens_visible_to(Actor.of_request(request))

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        # The API's own rule, so a token it refuses (no owner, owner deactivated) is not "active".
        state = token_state(token, timezone.now())
        return f"{state.word}: {state.reason}" if state.word == "refused" else state.word

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the token's audit events keep pointing at it

    @admin.action(description="Revoke selected tokens", permissions=["admin"])
    def revoke(self, request, queryset) -> None:
        actor, now = Actor.of_request(request), timezone.now()
        for token in queryset:
            token_revoke(token=token, actor=actor, now=now)
        self.message_user(request, f"Revoked {queryset.count()} token(s).", messages.SUCCESS)
