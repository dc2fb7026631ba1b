"""Sign-ins reach the audit trail from Django's own auth signals: every way of signing in
(the console's form, the admin's) sends them."""

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.utils import timezone

from access.actor import Actor
from access.models import AuditAction
from access.services import audit


def _address(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None if request is not None else None


@receiver(user_logged_in)
def _signed_in(sender, request, user, **_) -> None:
    audit(
        actor=Actor(user=user, address=_address(request)),
        action=AuditAction.SIGN_IN,
        now=timezone.now(),
    )


@receiver(user_login_failed)
def _sign_in_failed(sender, credentials, request=None, **_) -> None:
    username = str(credentials.get("username", ""))
    audit(
        actor=Actor(address=_address(request)),
        action=AuditAction.SIGN_IN_FAILED,
        now=timezone.now(),
        claimed_name=username or "(no username)",
        detail={"username": username[:150]},
    )
