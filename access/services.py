"""The one door for access: every entry point (console, REST API, admin, commands) and every
service that changes something asks `authorize`, and the services record what they changed
with `audit`. A refusal is AccessDenied (403) naming the role or the scope that is missing."""

import datetime as dt
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from access.actor import PLATFORM, Actor
from access.models import AuditAction, AuditEvent
from access.rights import LEAST_ROLE, ROLE_RIGHTS, ROLES, WHAT_IT_ALLOWS, Right
from common.errors import ServiceError


class AccessDenied(ServiceError):
    code = "forbidden"
    status = 403


NO_ACCOUNT = "Sign in first: this needs an account with a role."
INACTIVE = "The account {name} is deactivated: nothing it or its tokens ask is allowed."
NEEDS_ROLE = (
    "This needs the {role} role, which may {allows}; {name} is {current}. "
    "Ask an admin to give you the role."
)
# A login with no role (for example a staff user from before roles) may do nothing, and only
# someone else can change that: the page says who and how. The admin's Users page needs a
# superuser (the admin role alone does not open it); set_role works for anyone on the server.
NO_ROLE = (
    "This needs the {role} role, which may {allows}; {name} has no role yet, so it may do "
    "nothing here. Ask an admin to give {name} a role (viewer, operator, deployer or admin): a "
    "superuser does it in the admin (Users, tick {name}, then the action “Give the selected "
    "people the … role”), or anyone on the server with "
    "`python manage.py set_role {name} viewer`."
)
NEEDS_SCOPE = (
    "This API token ({token}) lacks the {scope} scope, needed to {allows}. "
    "Create a token with that scope on the console's API tokens page."
)


def role_of(user: AbstractBaseUser | None) -> str | None:
    """The highest role `user` holds (a superuser is an admin), or None."""
    if user is None or not user.is_active:
        return None
    if user.is_superuser:
        return "admin"
    # Read once per user object, that is once per request: a role taken away counts from the
    # next request on.
    if not hasattr(user, "_chalkweb_roles"):
        user._chalkweb_roles = set(user.groups.values_list("name", flat=True)) if user.pk else set()
    return next((role for role in reversed(ROLES) if role in user._chalkweb_roles), None)


def rights_of(actor: Actor) -> frozenset[Right]:
    """What `actor` may do now: the user's role, narrowed to the token's scopes."""
    if actor.is_platform:
        return frozenset(Right)
    role = role_of(actor.user)
    rights = ROLE_RIGHTS[role] if role else frozenset()
    if actor.token is not None:
        rights &= frozenset(Right(scope) for scope in actor.token.scopes)
    return rights


def authorize(actor: Actor, right: Right) -> None:
    """Raises AccessDenied unless `actor` holds `right` now (its user's current role, and its
    token's scopes): a deactivated user or a role taken away counts at once."""
    if actor.is_platform:
        return
    user = actor.user
    if user is None:
        raise AccessDenied(NO_ACCOUNT)
    if not user.is_active:
        raise AccessDenied(INACTIVE.format(name=user.get_username()))
    role = role_of(user)
    if role is None:
        raise AccessDenied(
            NO_ROLE.format(
                role=LEAST_ROLE[right], allows=WHAT_IT_ALLOWS[right], name=user.get_username()
            )
        )
    if right not in ROLE_RIGHTS[role]:
        raise AccessDenied(
            NEEDS_ROLE.format(
                role=LEAST_ROLE[right],
                allows=WHAT_IT_ALLOWS[right],
                name=user.get_username(),
                current=f"a {role}",
            )
        )
    if actor.token is not None and right.value not in actor.token.scopes:
        raise AccessDenied(
            NEEDS_SCOPE.format(
                token=actor.token.name, scope=right.value, allows=WHAT_IT_ALLOWS[right]
            )
        )


def audit(
    *,
    actor: Actor,
    action: AuditAction,
    now: dt.datetime,
    function: str = "",
    target: str = "",
    detail: dict[str, Any] | None = None,
    claimed_name: str = "",
) -> AuditEvent:
    """Records one change. `claimed_name` names an actor with no account (a failed sign-in's
    username); otherwise the actor is the user, or the platform."""
    token = actor.token
    if actor.user is not None:
        name = actor.user.get_username()
    else:
        name = claimed_name[:150] or PLATFORM
    return AuditEvent.objects.create(
        at=now,
        action=action,
        user=actor.user,
        actor=name,
        token_id=token.pk if token is not None else None,
        token_name=token.name if token is not None else "",
        address=actor.address,
        function=function,
        target=target,
        detail=detail or {},
    )


def role_set(*, actor: Actor, user: AbstractBaseUser, role: str | None, now: dt.datetime) -> None:
    """Gives `user` exactly `role` (None: no role). Only an admin may."""
    if role is not None and role not in ROLES:
        raise ServiceError(f"{role!r} is not a role; use one of: {', '.join(ROLES)}")
    authorize(actor, Right.ADMIN)
    with transaction.atomic():
        before = role_of(user)
        user.groups.remove(*Group.objects.filter(name__in=ROLES))
        if role is not None:
            user.groups.add(Group.objects.get(name=role))
        user.__dict__.pop("_chalkweb_roles", None)  # role_of reads the new role from now on
        if before != role:
            audit(
                actor=actor,
                action=AuditAction.ROLE_CHANGE,
                now=now,
                target=f"user {user.get_username()}",
                detail={"before": before, "after": role},
            )


def user_access_set(
    *, actor: Actor, user: AbstractBaseUser, is_active: bool, is_staff: bool, now: dt.datetime
) -> None:
    """Turns `user`'s sign-in (is_active) and admin-site access (is_staff) on or off. Only an
    admin may; what they may do there still comes from their role."""
    authorize(actor, Right.ADMIN)
    before = {"is_active": user.is_active, "is_staff": user.is_staff}
    after = {"is_active": is_active, "is_staff": is_staff}
    if before == after:
        return
    with transaction.atomic():
        type(user).objects.filter(pk=user.pk).update(**after)
        user.is_active, user.is_staff = is_active, is_staff
        audit(
            actor=actor,
            action=AuditAction.USER_CHANGE,
            now=now,
            target=f"user {user.get_username()}",
            detail={"before": before, "after": after},
        )


def ensure_roles() -> None:
    """The four groups, each holding exactly its rights (access/rights.py)."""
    for role in ROLES:
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(
            Permission.objects.filter(
                content_type__app_label="access",
                codename__in=[right.value for right in ROLE_RIGHTS[role]],
            )
        )


def audit_prune(*, before: dt.datetime, batch: int = 10_000) -> int:
    """Deletes events older than `before`, a bounded batch per statement."""
    deleted = 0
    while True:
        ids = list(AuditEvent.objects.filter(at__lt=before).values_list("id", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += AuditEvent.objects.filter(id__in=ids).delete()[0]
