"""Sending one alert to one channel: an apprise URL, or Chalkweb's signed JSON webhook.

The webhook POSTs the JSON body with

    X-Chalkweb-Timestamp: <unix seconds>
    X-Chalkweb-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

A receiver recomputes the HMAC over the timestamp, a dot and the raw bytes it received,
compares in constant time, and rejects a timestamp more than a few minutes old (a replay)."""

import hashlib
import hmac
import json
import logging
import re
import socket
import time
from urllib.parse import urlsplit

import apprise
import requests
from apprise.utils.parse import parse_url
from urllib3.exceptions import NameResolutionError

from alerts import destinations

TIMEOUT_SECONDS = 10


class DeliveryError(Exception):
    """The channel refused the alert: another try would go the same way. str() is the fixed
    short reason a delivery shows ("HTTP 401", "refused: loopback address")."""


class RetryableDeliveryError(DeliveryError):
    """The channel could not be reached, or answered 429 or 5xx: worth trying again."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (requests wraps urllib3's, which wraps the OSError)."""
    found, todo = [], [exc]
    while todo:
        cause = todo.pop()
        if isinstance(cause, BaseException) and not any(cause is f for f in found):
            found.append(cause)
            todo += [cause.__cause__, cause.__context__, getattr(cause, "reason", None)]
            todo += cause.args[:1]
    return found


def _reason_of(exc: requests.RequestException) -> str:
    """A fixed short reason for a failed request: never the error's text, which may quote what
    the other end said."""
    causes = _causes(exc)
    if any(isinstance(c, requests.Timeout | TimeoutError) for c in causes):
        return "timed out"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "connection refused"
    if any(isinstance(c, requests.exceptions.SSLError) for c in causes):
        return "TLS error"
    if any(isinstance(c, socket.gaierror | NameResolutionError) for c in causes):
        return "host not found"
    return "connection failed"


def send_webhook(*, url: str, secret: str, payload: dict, delivery_id: int) -> str:
    """POSTs the signed body; returns the fixed short reason ("HTTP 200"). The answer's body is
    never read: a channel to a service that is no webhook must not show what it says."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Chalkweb-Alerts",
        "X-Chalkweb-Timestamp": timestamp,
        "X-Chalkweb-Signature": signature(secret, timestamp, body),
        "X-Chalkweb-Delivery": str(delivery_id),
    }
    with requests.Session() as session, destinations.guarded() as guard:
        # No proxy from the environment: the guard must see the address connected to.
        session.trust_env = False
        try:
            response = session.post(
                url,
                data=body,
                headers=headers,
                timeout=TIMEOUT_SECONDS,
                allow_redirects=False,  # a redirect could point anywhere
                stream=True,  # the body is never downloaded
            )
            response.close()
        except requests.RequestException as exc:
            if guard.refused is not None:
                raise DeliveryError(guard.refused.reason) from None
            if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
                raise DeliveryError("bad URL") from None
            raise RetryableDeliveryError(_reason_of(exc)) from None
    answer = f"HTTP {response.status_code}"
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableDeliveryError(answer)
    if response.status_code >= 300:
        raise DeliveryError(answer)
    return answer


# --- Apprise ---------------------------------------------------------------------------------

# The Apprise services a channel may use: each sends with requests or smtplib from the calling
# thread (so destinations.guarded sees its connections). Local ones (file://, dbus://…), those
# on other protocols (mqtt, xmpp, irc…) and the rest are refused.
APPRISE_SCHEMES = frozenset(
    {
        "slack", "discord", "workflow", "workflows", "tgram", "ntfy", "ntfys", "pagerduty",
        "opsgenie", "gotify", "gotifys", "mmost", "mmosts", "rocket", "rockets", "matrix",
        "matrixs", "pover", "gchat", "zulip", "mailto", "mailtos", "json", "jsons", "xml",
        "xmls", "form", "forms",
    }
)  # fmt: skip
# Query parameters refused on any scheme: the request's method, following redirects, and
# those that read a file on the server (PGP keys). Apprise's +Header, -param and :field
# parameters are refused too (custom headers such as Metadata-Flavor: Google).
APPRISE_REFUSED_PARAMS = frozenset({"method", "redirect", "pgppub", "pgpprv"})


def apprise_problem(url: str) -> str | None:
    """Why this Apprise URL is not allowed (a sentence), or None."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in APPRISE_SCHEMES:
        return (
            f"Apprise URLs starting {scheme or '(none)'}:// are not allowed; use one of: "
            + ", ".join(f"{s}://" for s in sorted(APPRISE_SCHEMES))
            + ". For anything else, use a Chalkweb webhook."
        )
    parsed = parse_url(url, verify_host=False) or {}
    custom = [*parsed.get("qsd+", {}), *parsed.get("qsd-", {}), *parsed.get("qsd:", {})]
    if custom:
        return (
            "Apprise URLs may not set headers, query parameters or payload fields of their own "
            "(parameters starting with +, - or :); remove them."
        )
    refused = sorted(
        key
        for key in parsed.get("qsd", {})
        if key in APPRISE_REFUSED_PARAMS or "file" in key or "path" in key
    )
    if refused:
        return (
            f"The Apprise parameter {', '.join(refused)} is not allowed (a custom method, "
            "redirects, or a file on the server); remove it."
        )
    return None


def check_apprise_url(url: str) -> str | None:
    """Why the URL cannot be a channel (a sentence), or None."""
    problem = apprise_problem(url)
    if problem is None and not apprise.Apprise().add(url):
        problem = (
            "Apprise does not accept this URL; see https://github.com/caronc/apprise/wiki for "
            "the URL of each service (slack://, discord://, mailto://, ntfy://, json://, …)."
        )
    return problem


NOTIFY_TYPES = {
    "failed": apprise.NotifyType.FAILURE,
    "late": apprise.NotifyType.FAILURE,
    "still_running": apprise.NotifyType.WARNING,
    "skipped": apprise.NotifyType.WARNING,
    "recovered": apprise.NotifyType.SUCCESS,
    "test": apprise.NotifyType.INFO,
}
# The title's last words for the alerts that are not about a run's status.
TITLES = {
    "recovered": "recovered",
    "late": "is late",
    "still_running": "is still running",
    "skipped": "skipped a slot",
}


def message(payload: dict) -> tuple[str, str]:
    """(title, body) of an alert as text, for apprise's channels."""
    name = payload["function"] or "Chalkweb"
    if payload["kind"] == "test":
        return ("Chalkweb: test alert", "This channel receives Chalkweb's alerts.")
    title = f"Chalkweb: {name} {TITLES.get(payload['kind'], payload['status'])}"
    lines = [f"Run {payload['run']}: {payload['status']}."] if payload["run"] else []
    if payload.get("reason"):
        lines.append(payload["reason"])
    if payload.get("failures", 0) > 1 and payload["kind"] == "failed":
        lines.append(f"{payload['failures']} failed runs in a row.")
    if payload.get("log_tail"):
        lines += ["", "Last log lines:", *payload["log_tail"]]
    lines += ["", payload["console_url"]]
    return title, "\n".join(lines)


def _apprise_reason(log: str) -> str:
    """A fixed short reason from what Apprise logged (never its text: it may quote the
    answer)."""
    text = log.lower()
    if "timed out" in text or "timeout" in text:
        return "timed out"
    if "connection refused" in text:
        return "connection refused"
    status = re.search(r"error=(\d{3})\b", log)
    if status:
        return f"HTTP {status[1]}"
    return "not sent"


def send_apprise(*, url: str, payload: dict) -> str:
    if apprise_problem(url) is not None:  # made before the rule, or the rule has grown
        raise DeliveryError("refused: Apprise URL not allowed")
    title, body = message(payload)
    # Sent from this thread (no thread pool, no per-service timeout thread), so that the
    # guard sees every connection; the service's own connect and read timeouts still apply.
    notifier = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False, service_timeout=0))
    if not notifier.add(url):
        raise DeliveryError("Apprise URL not accepted")
    with (
        destinations.guarded() as guard,
        apprise.LogCapture(level=logging.DEBUG) as log,
    ):
        sent = notifier.notify(body=body, title=title, notify_type=NOTIFY_TYPES[payload["kind"]])
    if guard.refused is not None:
        raise DeliveryError(guard.refused.reason)
    if not sent:
        raise RetryableDeliveryError(_apprise_reason(log.getvalue()))
    return "sent"
