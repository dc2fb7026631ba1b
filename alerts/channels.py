"""Alert channels: the rules of one, creating and deleting them (checked and audited, for the
console, the API and the admin alike), and which channels a function's alerts go to: those its
code names and those chosen for it on the Channels page, else every default channel. The one
place a channel's URL and signing secret are encrypted and decrypted (common.crypto)."""

import datetime as dt
import secrets
from urllib.parse import parse_qs, urlsplit

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q

from access.actor import Actor
from access.models import AuditAction
from access.rights import Right
from access.services import audit, authorize
from alerts import destinations, senders
from alerts.models import Channel, ChannelKind
from alerts.rules import Rules
from common.crypto import SecretDecryptionError, decrypt, encrypt
from common.errors import ServiceError
from scheduling.models import Function


class AlertsError(ServiceError):
    pass


# Who may add and delete channels: admins. A channel decides where the control worker, which
# sits next to the database and the broker, connects and what it sends there (failed runs' last
# log lines, tokens in the URL): server configuration, like CHALK_ALERT_ALLOWED_NETWORKS, not an
# operator's day-to-day work. Operators and up may still send a test alert to a channel.
MANAGE_CHANNELS = Right.ADMIN


class ChannelExistsError(AlertsError):
    code = "conflict"
    status = 409


def functions_named(names: list[str]) -> list[Function]:
    names = sorted({name.strip() for name in names if name.strip()})
    found = {f.name: f for f in Function.objects.filter(name__in=names)}
    missing = [name for name in names if name not in found]
    if missing:
        raise AlertsError(f"There is no function named {', '.join(missing)}.")
    return list(found.values())


def display_of(url: str) -> str:
    """Scheme and host, and the scheme alone when the "host" is a token (slack://TOKEN/…,
    tgram://BOT_TOKEN/…): only a name with a dot, localhost or an IPv6 address is shown."""
    parts = urlsplit(url)
    try:
        host = parts.hostname or ""
    except ValueError:
        host = ""
    if host and ("." in host or ":" in host or host == "localhost"):
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://…"


def _check_destination(url: str, kind: str) -> None:
    """The URL's host (and a mailto's smtp= server) must not be a private or local address
    (alerts/destinations.py); checked again at every send."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise AlertsError("The URL's port is not a number from 1 to 65535.") from None
    hosts = [(host, port)] if host else []
    if kind == ChannelKind.APPRISE:
        # An Apprise "host" is often a token (slack://T000/B000/XXX): only a name with a dot,
        # an address or localhost is resolved now; the send checks whatever it connects to.
        hosts = [(h, p) for h, p in hosts if "." in h or ":" in h or h == "localhost"]
        hosts += [(smtp, None) for smtp in parse_qs(parts.query).get("smtp", []) if smtp]
    for host, port in hosts:
        try:
            destinations.check_host(host, port)
        except destinations.Refused as refused:
            raise AlertsError(str(refused)) from None


def channel_check(*, name: str, kind: str, url: str) -> None:
    """The rules of a new channel (AlertsError says which is broken). The console, the API and
    the admin all come through here."""
    if not name.strip() or len(name) > 100:
        raise AlertsError("A channel needs a name of 1 to 100 characters.")
    if kind not in ChannelKind.values:
        raise AlertsError(f"A channel's kind is one of: {', '.join(ChannelKind.values)}.")
    if kind == ChannelKind.WEBHOOK:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AlertsError("A webhook's URL is an http:// or https:// URL.")
    else:
        problem = senders.check_apprise_url(url)
        if problem is not None:
            raise AlertsError(problem)
    _check_destination(url, kind)


def channel_create(
    *,
    name: str,
    kind: str,
    url: str,
    actor: Actor,
    now: dt.datetime,
    is_default: bool = False,
    functions: list[Function] = (),
) -> tuple[Channel, str]:
    """(channel, its webhook signing secret: shown once, never again)."""
    authorize(actor, MANAGE_CHANNELS)
    name, url = name.strip(), url.strip()
    channel_check(name=name, kind=kind, url=url)
    secret = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            channel = Channel.objects.create(
                name=name,
                kind=kind,
                url_encrypted=encrypt(url),
                display=display_of(url),
                secret_encrypted=encrypt(secret),
                is_default=is_default,
                created_at=now,
                created_by=actor.name,
            )
            channel.functions.set(functions)
            audit(
                actor=actor,
                action=AuditAction.CHANNEL_CREATE,
                now=now,
                target=f"channel {name}",
                detail={
                    "kind": kind,
                    "url": channel.display,
                    "default": is_default,
                    "functions": sorted(f.name for f in functions),
                },
            )
    except IntegrityError:
        raise ChannelExistsError(f"There is a channel named {name!r} already.") from None
    return channel, secret


def channel_delete(*, channel: Channel, actor: Actor, now: dt.datetime) -> None:
    authorize(actor, MANAGE_CHANNELS)
    with transaction.atomic():
        audit(
            actor=actor,
            action=AuditAction.CHANNEL_DELETE,
            now=now,
            target=f"channel {channel.name}",
            detail={"kind": channel.kind, "url": channel.display},
        )
        channel.delete()


def channel_address(channel: Channel) -> tuple[str, str]:
    """The channel's URL and webhook signing secret, decrypted: for a delivery only, never shown.
    Raises senders.DeliveryError when no key of CHALK_SECRETS_KEY decrypts them."""
    try:
        return decrypt(channel.url_encrypted), decrypt(channel.secret_encrypted)
    except SecretDecryptionError:
        raise senders.DeliveryError("cannot decrypt the channel (CHALK_SECRETS_KEY)") from None


def channels_of(function: Function, rules: Rules) -> list[Channel]:
    """The channels the function's code names and those chosen for it on the Channels page,
    else every default channel (one query)."""
    chosen = Exists(
        Channel.functions.through.objects.filter(channel=OuterRef("pk"), function=function)
    ) | Q(name__in=rules.channels)
    channels = list(
        Channel.objects.annotate(chosen=chosen).filter(Q(chosen=True) | Q(is_default=True))
    )
    return [c for c in channels if c.chosen] or channels
