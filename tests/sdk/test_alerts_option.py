"""`alerts=chalkcompute.Alerts(...)` on the decorator: checked when the function is defined, sent
with the deploy, shown in its summary."""

import pytest

import chalkcompute
from chalkcompute import Alerts, InvalidAlertsError
from chalkcompute.deploy import format_summary
from chalkcompute.spec import FunctionSpec, InvalidSpecError


def job():
    pass


def test_it_takes_durations_as_seconds_or_shorthand():
    alerts = Alerts(on_failure=["ops-slack", "pager"], late_after="5m", running_after=3600)

    assert alerts.late_after == 300.0
    assert alerts.running_after == 3600.0
    assert alerts.on_failure == ("ops-slack", "pager")
    assert Alerts(remind_every="1d").remind_every == 86400.0
    assert Alerts(late_after="90s").late_after == 90.0


def test_zero_turns_a_duration_rule_off():
    alerts = Alerts(late_after=0, running_after="0s")

    assert (alerts.late_after, alerts.running_after) == (0.0, 0.0)
    assert alerts.describe() == "never late, never running"


def test_a_single_channel_name_is_a_list_of_one():
    assert Alerts(on_failure="ops-slack").on_failure == ("ops-slack",)


def test_every_field_left_out_is_the_servers_default():
    assert Alerts().as_dict() == {
        "on_failure": [],
        "after_failures": None,
        "on_recovery": None,
        "late_after": None,
        "running_after": None,
        "on_skip": None,
        "remind_every": None,
    }
    assert Alerts().describe() == ""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"late_after": "5 minutes"},
            'late_after must be a number of seconds or a duration such as "90s"',
        ),
        ({"late_after": "5"}, "late_after must be a number of seconds or a duration"),
        ({"late_after": 5}, "late_after must be from 10s to 7d, or 0 for never, not 5"),
        ({"late_after": "8d"}, "late_after must be from 10s to 7d, or 0 for never, not '8d'"),
        ({"remind_every": 0}, "remind_every must be from 1m to 30d, not 0"),
        ({"late_after": float("nan")}, "late_after must be from 10s to 7d"),
        ({"late_after": 10**400}, "late_after must be from 10s to 7d"),
        ({"running_after": True}, "running_after must be a number of seconds"),
        ({"remind_every": "30s"}, "remind_every must be from 1m to 30d, not '30s'"),
        ({"after_failures": 0}, "after_failures must be a whole number from 1 to 100, not 0"),
        ({"after_failures": 2.0}, "after_failures must be a whole number from 1 to 100"),
        ({"after_failures": True}, "after_failures must be a whole number from 1 to 100"),
        ({"on_recovery": "yes"}, "on_recovery must be True, False or None"),
        ({"on_skip": 1}, "on_skip must be True, False or None"),
        ({"on_failure": {"ops": 1}}, "on_failure must be a list of channel names"),
        ({"on_failure": 5}, "on_failure must be a list of channel names"),
        ({"on_failure": [""]}, "a channel name is a string of 1 to 100 characters"),
        ({"on_failure": ["x" * 101]}, "a channel name is a string of 1 to 100 characters"),
        ({"on_failure": ["ops", " ops "]}, "on_failure names the channel 'ops' twice"),
        ({"on_failure": [f"c{i}" for i in range(21)]}, "on_failure names 21 channels; at most 20"),
    ],
)
def test_it_refuses_wrong_values_saying_what_is_right(options, message):
    with pytest.raises(InvalidAlertsError) as excinfo:
        Alerts(**options)
    assert message in str(excinfo.value)


def test_the_decorator_checks_alerts_when_the_function_is_defined():
    with pytest.raises(chalkcompute.InvalidFunctionError) as excinfo:
        chalkcompute.function(schedule="10m", alerts={"late_after": "soon"})(job)
    assert "late_after must be a number of seconds" in str(excinfo.value)

    with pytest.raises(chalkcompute.InvalidFunctionError, match="alerts must be a chalkcompute"):
        chalkcompute.function(schedule="10m", alerts=["ops-slack"])(job)


def test_the_decorator_keeps_them_on_the_spec():
    declared = chalkcompute.function(
        schedule="10m", alerts=Alerts(on_failure=["ops-slack"], late_after="5m")
    )(job)

    assert declared.alerts == Alerts(on_failure=("ops-slack",), late_after=300)
    assert declared.spec.as_dict()["alerts"]["late_after"] == 300.0


def test_the_json_form_refuses_unknown_fields():
    with pytest.raises(InvalidSpecError) as excinfo:
        FunctionSpec.from_dict({"alerts": {"late": 300}})
    assert excinfo.value.problems[0].path == "alerts"
    assert "alerts has no field late; the fields are on_failure, after_failures" in str(
        excinfo.value
    )


def test_the_deploy_summary_shows_them():
    document = {
        "name": "nightly",
        "version": 2,
        "cron": None,
        "secrets": [],
        "console_url": "http://x/functions/nightly",
        "alerts": Alerts(on_failure=["ops-slack"], late_after="5m", on_skip=True).as_dict(),
    }

    summary = format_summary(document)

    assert "  alerts     to ops-slack, late after 5m, on skipped slots" in summary.splitlines()
    document["alerts"] = Alerts().as_dict()
    assert "alerts" not in format_summary(document)
