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
import time

import apprise
import requests

TIMEOUT_SECONDS = 10
MAX_ANSWER = 2000


class DeliveryError(Exception):
    """The channel refused the alert: another try would go the same way."""


class RetryableDeliveryError(DeliveryError):
    """The channel could not be reached, or answered 429 or 5xx: worth trying again."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def send_webhook(*, url: str, secret: str, payload: dict, delivery_id: int) -> str:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Chalkweb-Alerts",
        "X-Chalkweb-Timestamp": timestamp,
        "X-Chalkweb-Signature": signature(secret, timestamp, body),
        "X-Chalkweb-Delivery": str(delivery_id),
    }
    try:
        response = requests.post(
            url, data=body, headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False
        )
    except requests.RequestException as exc:
        raise RetryableDeliveryError(f"{type(exc).__name__}: {exc}"[:MAX_ANSWER]) from None
    answer = f"HTTP {response.status_code}: {response.text}"[:MAX_ANSWER]
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableDeliveryError(answer)
    if response.status_code >= 300:
        raise DeliveryError(answer)
    return answer


def check_apprise_url(url: str) -> bool:
    return apprise.Apprise().add(url)


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


def send_apprise(*, url: str, payload: dict) -> str:
    title, body = message(payload)
    notifier = apprise.Apprise()
    with apprise.LogCapture(level=logging.WARNING) as log:
        if not notifier.add(url):
            raise DeliveryError("apprise does not accept this URL: " + log.getvalue()[-500:])
        sent = notifier.notify(body=body, title=title, notify_type=NOTIFY_TYPES[payload["kind"]])
    said = log.getvalue().strip()[-MAX_ANSWER:]
    if not sent:
        raise RetryableDeliveryError(said or "apprise could not send the alert")
    return said or "sent"
