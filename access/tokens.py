"""API tokens for the REST API and the SDK: made (the text shown once, only its SHA-256 kept)
and revoked here; access/auth.py authenticates requests with them. A token acts as its owner,
narrowed to its scopes (access.services.rights_of)."""

import hashlib
import secrets
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser

from access.actor import Actor
from access.models import ApiToken, AuditAction
from access.rights import Right, parse_scopes
from access.services import AccessDenied, audit, authorize, rights_of
from common.errors import ServiceError

TOKEN_PREFIX = "chalk_"
TOKEN_DISPLAY_CHARS = 12  # "chalk_" and six characters of the random part
MAX_TOKEN_NAME = 100
CREATE_TOKEN_HINT = (
    "create one with `python manage.py create_token NAME --user USERNAME` on the server (or on "
    "the console's API tokens page)"
)


class TokenError(ServiceError):
    code = "invalid_request"


class InvalidTokenNameError(TokenError):
    code = "invalid_name"


def token_hash(plaintext: str) -> str:
    """What is stored of a token's text (API tokens, and runs' attempt tokens alike)."""
    return hashlib.sha256(plaintext.encode("utf-8", errors="surrogatepass")).hexdigest()


def token_create(
    *,
    name: str,
    user: AbstractBaseUser,
    actor: Actor,
    now: datetime,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Creates an API token for `user` and returns it with its text, which is stored only as
    a hash: show it once. Its scopes (default: all of the user's rights) must be within what
    the user may do; only an admin makes tokens for someone else."""
    authorize(actor, Right.READ)
    if actor.user is None or actor.user.pk != user.pk:
        authorize(actor, Right.ADMIN)
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > MAX_TOKEN_NAME:
        raise InvalidTokenNameError(
            f"a token name is 1 to {MAX_TOKEN_NAME} characters that say who or what uses it, "
            'e.g. "alice-laptop" or "ci"'
        )
    held = rights_of(Actor(user=user))
    if scopes is None:
        wanted = [right for right in Right if right in held]
    else:
        try:
            wanted = parse_scopes(scopes)
        except ValueError as exc:
            raise TokenError(str(exc)) from None
    beyond = [right.value for right in wanted if right not in held]
    if beyond or not wanted:
        raise AccessDenied(
            f"{user.get_username()} may not give a token the scope(s) "
            f"{', '.join(beyond) or '(none)'}: a token can do at most what its owner's role "
            f"allows ({', '.join(r.value for r in Right if r in held) or 'nothing'})"
        )
    if expires_at is not None and expires_at <= now:
        raise TokenError("a token's expiry must be in the future")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        name=name,
        token_hash=token_hash(plaintext),
        prefix=plaintext[:TOKEN_DISPLAY_CHARS],
        created_by=user,
        scopes=[right.value for right in wanted],
        expires_at=expires_at,
        created_at=now,
    )
    audit(
        actor=actor,
        action=AuditAction.TOKEN_CREATE,
        now=now,
        target=f"token {token}",
        detail={
            "owner": user.get_username(),
            "scopes": token.scopes,
            "expires_at": (expires_at.isoformat() if expires_at else None),
        },
    )
    return token, plaintext


def token_revoke(*, token: ApiToken, actor: Actor, now: datetime) -> ApiToken:
    """Revokes `token`: its owner or an admin may. Revoking a revoked token keeps its first
    revocation time."""
    if actor.user is None or token.created_by_id != actor.user.pk:
        authorize(actor, Right.ADMIN)
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
    if revoked:
        audit(actor=actor, action=AuditAction.TOKEN_REVOKE, now=now, target=f"token {token}")
    token.refresh_from_db()
    return token
