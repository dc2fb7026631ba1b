"""Bearer-token authentication for the REST API (`Authorization: Bearer chalk_…`).

Tokens (access/tokens.py) are looked up by their SHA-256; the text itself is never stored. Every
app's endpoints use these classes through the REST_FRAMEWORK defaults.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.http import HttpRequest
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS, BasePermission

from access.actor import Actor
from access.models import ApiToken
from access.rights import Right
from access.services import authorize
from access.tokens import CREATE_TOKEN_HINT, token_hash

# last_used_at is informational: one write a minute per token is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)

NO_TOKEN = (
    "This endpoint needs an API token: send the header `Authorization: Bearer <token>`. "
    f"To get a token, {CREATE_TOKEN_HINT}, then export CHALK_COMPUTE_TOKEN=<token>"
)
MALFORMED_HEADER = (
    "The Authorization header must be `Bearer <token>` with a single token and no spaces. "
    f"To get a token, {CREATE_TOKEN_HINT}"
)
UNKNOWN_TOKEN = (
    f"This API token is not valid on this server. To get a token, {CREATE_TOKEN_HINT}, then "
    "export CHALK_COMPUTE_TOKEN=<token>"
)
EXPIRED_TOKEN = (
    "This API token ({name}, {prefix}…) expired at {at:%Y-%m-%d %H:%M} UTC. To get a new one, "
    f"{CREATE_TOKEN_HINT}, then export CHALK_COMPUTE_TOKEN=<token>"
)
# A token acts as its owner's role, so one without an owner is refused on purpose. Such tokens
# come from before owners were required (`create_token NAME` had no --user, and deleting a user
# left their tokens). The admin cannot give a token an owner: the way out is a new token.
OWNERLESS_TOKEN = (
    "This API token ({name}, {prefix}…) was made before tokens had owners: it acts as no one, "
    "so it is refused. Make a new token on the console's API tokens page (signed in as the "
    "person it should act as) or on the server with `python manage.py create_token NAME --user "
    "USERNAME`, then revoke this one"
)
INACTIVE_OWNER = (
    "This API token ({name}, {prefix}…) belongs to {user}, whose account is deactivated: its "
    "tokens may do nothing until an admin activates it again"
)
REVOKED_TOKEN = (
    "This API token ({name}, {prefix}…) was revoked. To get a new one, "
    f"{CREATE_TOKEN_HINT}, then export CHALK_COMPUTE_TOKEN=<token>"
)


@dataclass(frozen=True)
class TokenState:
    word: str  # what a list of tokens shows: active, revoked, expired or refused
    reason: str = ""  # the API's 401 text when the token is refused; empty when active


def token_state(token: ApiToken, now: datetime) -> TokenState:
    """Whether `token` authenticates now, and why not. The one rule: the bearer authentication
    answers with its reason, and every list of tokens (the console's, the admin's) shows it, so
    no list calls "active" a token the API refuses. Wants `created_by` selected."""
    words = {"name": token.name, "prefix": token.prefix}
    if token.revoked_at is not None:
        return TokenState("revoked", REVOKED_TOKEN.format(**words))
    if token.expires_at is not None and token.expires_at <= now:
        return TokenState("expired", EXPIRED_TOKEN.format(**words, at=token.expires_at))
    owner = token.created_by
    if owner is None:
        return TokenState("refused", OWNERLESS_TOKEN.format(**words))
    if not owner.is_active:
        return TokenState("refused", INACTIVE_OWNER.format(**words, user=owner.get_username()))
    return TokenState("active")


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: HttpRequest):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None  # DRF answers 401 NO_TOKEN via the exception handler
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(MALFORMED_HEADER, code="invalid_token")
        try:
            plaintext = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(UNKNOWN_TOKEN, code="invalid_token") from None
        token = (
            ApiToken.objects.select_related("created_by")
            .filter(token_hash=token_hash(plaintext))
            .first()
        )
        if token is None:
            raise exceptions.AuthenticationFailed(UNKNOWN_TOKEN, code="invalid_token")
        now = timezone.now()
        state = token_state(token, now)
        if state.reason:
            raise exceptions.AuthenticationFailed(state.reason, code="invalid_token")
        owner = token.created_by
        address = request.META.get("REMOTE_ADDR") or None
        stale = token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION
        if stale or token.last_used_from != address:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_from=address)
            token.last_used_at, token.last_used_from = now, address
        return owner, token

    def authenticate_header(self, request: HttpRequest) -> str:
        # Makes DRF answer 401 (with WWW-Authenticate), not 403, to a request without a token.
        return f'{self.keyword} realm="api"'


class HasApiToken(BasePermission):
    """Allows requests that authenticated with an API token (session logins do not count), and
    asks access for the read right on reads; each write's service checks its own right."""

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.auth, ApiToken):
            raise exceptions.NotAuthenticated(NO_TOKEN)
        if request.method in SAFE_METHODS:
            authorize(Actor.of_request(request), Right.READ)
        return True


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "access.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix="Bearer"
        )
