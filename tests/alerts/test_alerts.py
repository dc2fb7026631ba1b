"""Alerts end to end: runs ended through runs.services reach real receivers (an SMTP server,
an HTTP server) through apprise and the signed webhook, with the no-storm rule on a pinned
clock and deliveries retried with backoff."""

import datetime as dt
import hashlib
import hmac
import json

import pytest
import time_machine
from django.utils import timezone

from access.models import AuditEvent
from access.services import AccessDenied
from alerts import channels, services
from alerts.models import AlertState, Channel, Delivery
from chalkcompute.retries import Retries
from common.crypto import decrypt
from runs import services as run_services
from runs.models import Run
from tests.personas import acting
from tests.runs.support import deploy

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def channel(name, url, *, kind="apprise", default=True, functions=(), who="ada"):
    return channels.channel_create(
        name=name,
        kind=kind,
        url=url,
        is_default=default,
        functions=list(functions),
        actor=acting(who, "admin"),
        now=timezone.now(),
    )


def verified(received, secret: str) -> dict:
    """The body, once its signature checks out the way a receiver checks it."""
    timestamp = received.headers["X-Chalkweb-Timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + received.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(received.headers["X-Chalkweb-Signature"], f"sha256={expected}")
    return json.loads(received.body)


@pytest.fixture
def report():
    return deploy("nightly-report", 'chalk_logger.info("hi")')


def test_a_failed_run_reaches_a_signed_webhook(report, http_receiver, end_run):
    _, secret = channel("ops-hook", http_receiver.url + "/hook", kind="webhook")
    lines = [("INFO", f"step {i}") for i in range(30)] + [("ERROR", "db password ****")]
    run = end_run(report, "failed", at=T0, lines=lines, error=("KeyError", "'rate'", "Traceback …"))

    [received] = http_receiver.requests
    assert received.path == "/hook"
    body = verified(received, secret)
    assert body["kind"] == "failed"
    assert body["function"] == "nightly-report"
    assert body["run"] == run.id
    assert body["status"] == "failed"
    assert body["reason"] == "KeyError: 'rate'"
    assert body["log_tail"][-1] == "db password ****"
    assert len(body["log_tail"]) == 20
    assert body["console_url"].endswith(f"/runs/{run.id}")
    assert body["sent_at"]
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.kind, delivery.tries) == ("sent", "failed", 1)
    assert delivery.answer == "HTTP 200"  # a fixed short reason, never the answer's body
    assert delivery.run_id == run.id and delivery.function_id == report.id


def test_a_tampered_or_replayed_body_fails_the_signature(report, http_receiver, end_run):
    _, secret = channel("ops-hook", http_receiver.url, kind="webhook")
    end_run(report, "failed", at=T0)
    [received] = http_receiver.requests
    received.body = received.body.replace(b"failed", b"succeeded")
    with pytest.raises(AssertionError):
        verified(received, secret)


def test_the_failure_mail_reaches_an_smtp_server(report, smtp_server, end_run):
    channel(
        "ops-mail",
        f"mailto://127.0.0.1:{smtp_server.port}?from=alerts@example.com&to=ops@example.com"
        "&mode=insecure",
    )
    end_run(report, "failed", at=T0, error=("KeyError", "'rate'", ""))

    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ["ops@example.com"]
    text = mail.content.decode()
    assert "Chalkweb: nightly-report failed" in text
    assert "KeyError: 'rate'" in text
    assert Delivery.objects.get().status == "sent"


def test_apprise_json_target(report, http_receiver, end_run):
    channel("ops-json", http_receiver.url.replace("http://", "json://"))
    end_run(report, "failed", at=T0)
    end_run(report, "succeeded", at=T0 + dt.timedelta(minutes=1))

    failed, recovered = (r.json() for r in http_receiver.requests)
    assert failed["title"] == "Chalkweb: nightly-report failed"
    assert failed["type"] == "failure"
    assert recovered["title"] == "Chalkweb: nightly-report recovered"
    assert recovered["type"] == "success"


def test_no_storms_one_alert_a_reminder_then_one_recovered(
    report, http_receiver, end_run, settings
):
    settings.CHALK_ALERT_REMIND_SECONDS = 3600
    channel("ops-hook", http_receiver.url, kind="webhook")

    def kinds():
        return [r.json()["kind"] for r in http_receiver.requests]

    with time_machine.travel(T0, tick=False) as clock:
        for _ in range(3):  # failing every minute
            end_run(report, "failed", at=timezone.now())
            clock.shift(dt.timedelta(minutes=1))
        assert kinds() == ["failed"]

        clock.shift(dt.timedelta(minutes=56))  # 59 minutes after the alert: not yet
        end_run(report, "failed", at=timezone.now())
        assert kinds() == ["failed"]

        clock.shift(dt.timedelta(minutes=1))  # an hour after it: one reminder
        end_run(report, "failed", at=timezone.now())
        assert kinds() == ["failed", "failed"]
        assert http_receiver.requests[-1].json()["failures"] == 5

        clock.shift(dt.timedelta(minutes=1))
        end_run(report, "failed", at=timezone.now())
        end_run(report, "succeeded", at=timezone.now())
        end_run(report, "succeeded", at=timezone.now())
        assert kinds() == ["failed", "failed", "recovered"]

        end_run(report, "failed", at=timezone.now())  # a new failure alerts at once
        assert kinds() == ["failed", "failed", "recovered", "failed"]
    state = AlertState.objects.get(function=report)
    assert (state.state, state.consecutive_failures) == ("failing", 1)


def test_success_and_cancel_alert_nothing(report, http_receiver, end_run):
    channel("ops-hook", http_receiver.url, kind="webhook")
    end_run(report, "succeeded", at=T0)
    end_run(report, "timed_out", at=T0 + dt.timedelta(minutes=1))
    assert [r.json()["status"] for r in http_receiver.requests] == ["timed_out"]


def test_only_the_last_attempt_alerts(http_receiver, end_run, django_capture_on_commit_callbacks):
    flaky = deploy("flaky", "pass", retries=Retries(max_retries=1, initial_delay=60))
    channel("ops-hook", http_receiver.url, kind="webhook")
    run = end_run(flaky, "failed", at=timezone.now())  # its retry is a minute away
    assert run.status == "retrying"
    assert http_receiver.requests == []

    second = run.attempts.get(number=2)
    with django_capture_on_commit_callbacks(execute=True):
        second, _ = run_services.attempt_claim(
            attempt_id=second.id, executor="local", executor_ref="1@w", now=second.not_before
        )
        run_services.attempt_begin(attempt=second, now=second.not_before)
        run_services.attempt_finish(
            attempt=second, status="failed", now=second.not_before, reason="exit 1"
        )
    assert Run.objects.get(id=run.id).status == "failed"
    [received] = http_receiver.requests
    assert received.json()["run"] == run.id


def test_after_n_failures_in_a_row(report, http_receiver, end_run, settings):
    settings.CHALK_ALERT_AFTER_FAILURES = 3
    channel("ops-hook", http_receiver.url, kind="webhook")
    for minute in range(2):
        end_run(report, "failed", at=T0 + dt.timedelta(minutes=minute))
    end_run(report, "succeeded", at=T0 + dt.timedelta(minutes=2))  # not a recovery: no alert
    for minute in range(3, 6):
        end_run(report, "failed", at=T0 + dt.timedelta(minutes=minute))
    assert [r.json()["failures"] for r in http_receiver.requests] == [3]


def test_a_functions_own_channels_replace_the_defaults(http_receiver, end_run):
    report = deploy("nightly-report", "pass")
    other = deploy("other", "pass")
    channel("everyone", http_receiver.url + "/default", kind="webhook")
    channel("team", http_receiver.url + "/team", kind="webhook", default=False, functions=[report])
    end_run(report, "failed", at=T0)
    end_run(other, "failed", at=T0)
    assert sorted(r.path for r in http_receiver.requests) == ["/default", "/team"]
    assert {r.path: r.json()["function"] for r in http_receiver.requests} == {
        "/team": "nightly-report",
        "/default": "other",
    }


def test_a_busy_receiver_is_retried_with_backoff(report, http_receiver, end_run):
    channel("ops-hook", http_receiver.url, kind="webhook")
    http_receiver.answers = [503, 429]
    end_run(report, "failed", at=T0)
    assert len(http_receiver.requests) == 3
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.tries, delivery.answer) == ("sent", 3, "HTTP 200")
    # Each try is signed afresh, over the same body.
    assert len({r.body for r in http_receiver.requests}) == 1


def test_a_receiver_down_fails_after_six_tries(report, http_receiver, end_run):
    channel("ops-hook", http_receiver.url, kind="webhook")
    http_receiver.answers = [500] * 10
    end_run(report, "failed", at=T0)
    assert len(http_receiver.requests) == 6
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.tries) == ("failed", 6)
    assert delivery.answer == "HTTP 500"


def test_a_refusal_is_not_retried(report, http_receiver, end_run):
    channel("ops-hook", http_receiver.url, kind="webhook")
    http_receiver.answers = [401]
    end_run(report, "failed", at=T0)
    assert len(http_receiver.requests) == 1
    assert Delivery.objects.get().status == "failed"


def test_an_unreachable_channel_records_the_error(report, end_run, loopback_allowed):
    from tests.alerts.support import free_port

    channel("nowhere", f"http://127.0.0.1:{free_port()}/", kind="webhook")
    end_run(report, "failed", at=T0)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.tries) == ("failed", 6)
    assert delivery.answer == "connection refused"


def test_a_test_alert(http_receiver, eager_tasks, django_capture_on_commit_callbacks):
    chan, secret = channel("ops-hook", http_receiver.url, kind="webhook")
    with django_capture_on_commit_callbacks(execute=True):
        services.channel_test(channel=chan, actor=acting("olga", "operator"), now=T0)
    body = verified(http_receiver.requests[0], secret)
    assert body["kind"] == "test"
    assert Delivery.objects.get().kind == "test"


def test_urls_are_encrypted_and_shown_as_scheme_and_host(db):
    slack = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
    chan, secret = channel("slack", slack)
    assert chan.display == "slack://…"
    assert slack not in chan.url_encrypted and decrypt(chan.url_encrypted) == slack
    assert secret not in chan.secret_encrypted and decrypt(chan.secret_encrypted) == secret
    hook, _ = channel("hook", "https://hooks.example.com/x/y?token=abc", kind="webhook")
    assert hook.display == "https://hooks.example.com"


def test_who_may_manage_channels_and_the_audit_trail(db):
    body = {"name": "x", "kind": "webhook", "url": "https://a.example.com", "now": T0}
    for who, role in (("v", "viewer"), ("olga", "operator"), ("dee", "deployer")):
        with pytest.raises(AccessDenied, match="needs the admin role"):
            channels.channel_create(**body, actor=acting(who, role))
    chan, _ = channel("hook", "https://hooks.example.com/x?token=abc", kind="webhook")
    with pytest.raises(AccessDenied, match="needs the admin role"):
        channels.channel_delete(channel=chan, actor=acting("olga", "operator"), now=T0)
    # An operator may still try a channel an admin made.
    test = services.channel_test(channel=chan, actor=acting("olga", "operator"), now=T0)
    assert test.kind == "test"
    channels.channel_delete(channel=chan, actor=acting("ada", "admin"), now=T0)
    assert not Channel.objects.exists()
    events = list(AuditEvent.objects.order_by("id").values_list("action", "actor", "target"))
    assert events[-3:] == [
        ("channel_create", "ada", "channel hook"),
        ("channel_test", "olga", "channel hook"),
        ("channel_delete", "ada", "channel hook"),
    ]
    assert "abc" not in json.dumps(list(AuditEvent.objects.values_list("detail", flat=True)))


def test_bad_channels_are_refused(db):
    with pytest.raises(channels.AlertsError, match="bogus:// are not allowed"):
        channel("x", "bogus://nothing")
    with pytest.raises(channels.AlertsError, match="Apprise does not accept"):
        channel("x", "slack://")
    with pytest.raises(channels.AlertsError, match="http:// or https://"):
        channel("x", "ftp://example.com", kind="webhook")
    channel("x", "https://a.example.com", kind="webhook")
    with pytest.raises(channels.AlertsError, match="already"):
        channel("x", "https://b.example.com", kind="webhook")
