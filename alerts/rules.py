"""A function's alert rules: what its code declares (`alerts=chalkcompute.Alerts(...)` on the
version), each field left out taken from the server's defaults (the CHALK_ALERT_* settings)."""

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

from chalkcompute.alerts import Alerts, InvalidAlertsError
from chalkcompute.words import spelled_duration

if TYPE_CHECKING:
    from scheduling.models import Function


@dataclass(frozen=True)
class Rules:
    channels: tuple[str, ...]  # named in code, beside those chosen on the Channels page
    after_failures: int
    on_recovery: bool
    late_after: dt.timedelta | None  # None: never "late"
    running_after: dt.timedelta | None  # None: never "still running"
    on_skip: bool
    remind_every: dt.timedelta

    def describe(self) -> list[str]:
        """The rules in words, for the function page."""
        lines = [
            f"after {self.after_failures} failed run{'s' * (self.after_failures > 1)} in a row "
            f"(each after its last retry), reminding every {spelled_duration(self.remind_every)}"
            + (", and once when it recovers" if self.on_recovery else "")
        ]
        if self.late_after is not None:
            lines.append(
                f"when a slot's run has not started {spelled_duration(self.late_after)} after it"
            )
        if self.running_after is not None:
            lines.append(
                f"when a run is still running {spelled_duration(self.running_after)} "
                "after it started"
            )
        if self.on_skip:
            lines.append("when a slot is skipped (the previous run still running, or downtime)")
        return lines


def _seconds(value: float | None, default_seconds: int) -> dt.timedelta | None:
    """The declared duration, else the server's; None when either is 0 (off)."""
    seconds = default_seconds if value is None else value
    return dt.timedelta(seconds=seconds) if seconds and seconds > 0 else None


def rules_of(alerts: dict | None) -> Rules:
    """The rules of a version from its stored `alerts` (Alerts.as_dict(); {} or None for a
    version from before alerts were declared in code)."""
    try:
        declared = Alerts.coerce(alerts or None)
    except InvalidAlertsError:  # stored before a rule tightened: the version keeps running
        declared = Alerts()
    return Rules(
        channels=declared.on_failure,
        after_failures=declared.after_failures or max(1, settings.CHALK_ALERT_AFTER_FAILURES),
        on_recovery=(
            settings.CHALK_ALERT_ON_RECOVERY
            if declared.on_recovery is None
            else declared.on_recovery
        ),
        late_after=_seconds(declared.late_after, settings.CHALK_ALERT_LATE_AFTER_SECONDS),
        running_after=_seconds(declared.running_after, settings.CHALK_ALERT_RUNNING_AFTER_SECONDS),
        on_skip=settings.CHALK_ALERT_ON_SKIP if declared.on_skip is None else declared.on_skip,
        remind_every=_seconds(declared.remind_every, settings.CHALK_ALERT_REMIND_SECONDS)
        or dt.timedelta(seconds=3600),
    )


def rules_of_function(function: "Function") -> Rules:
    """The rules of the function's current version (the defaults when it has none)."""
    version = function.current_version
    return rules_of(version.alerts if version is not None else None)
