"""`chalkcompute.Alerts`: who hears when a function goes wrong, and when, declared in code.

    @chalkcompute.function(schedule="0 3 * * *",
                           alerts=chalkcompute.Alerts(on_failure=["ops-slack"], late_after="5m"))

Every field left out takes the server's default (the CHALK_ALERT_* settings), so `Alerts()`
means "as the operator set it up". Checked when the function is defined, like every option.
Standard library only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import Any

from chalkcompute import words

MAX_CHANNELS = 20
MAX_CHANNEL_NAME = 100
MAX_AFTER_FAILURES = 100
# Bounds of each duration, in seconds: the server looks for late and long runs every few
# seconds, so shorter ones would promise what it cannot keep.
DURATION_BOUNDS = {
    "late_after": (10, 7 * 86400),
    "running_after": (10, 7 * 86400),
    "remind_every": (60, 30 * 86400),
}
# 0 turns these off for the function, whatever the server's default.
CAN_BE_OFF = ("late_after", "running_after")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"([0-9]{1,6})([smhd])")


class InvalidAlertsError(ValueError):
    pass


def parse_duration(name: str, value: object) -> float | None:
    """Seconds from a number of seconds or "90s"/"5m"/"2h"/"1d"; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if not match:
            raise InvalidAlertsError(
                f'{name} must be a number of seconds or a duration such as "90s", "5m", "2h" '
                f'or "1d", not {value!r:.60}'
            )
        seconds = float(int(match[1]) * _UNITS[match[2]])
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidAlertsError(f'{name} must be a number of seconds or a duration such as "5m"')
    else:
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    low, high = DURATION_BOUNDS[name]
    if seconds == 0 and name in CAN_BE_OFF:
        return 0.0
    if not math.isfinite(seconds) or not low <= seconds <= high:
        off = ", or 0 for never" if name in CAN_BE_OFF else ""
        raise InvalidAlertsError(
            f"{name} must be from {words.interval(low)} to {words.interval(high)}{off}, "
            f"not {value!r:.60}"
        )
    return seconds


def _channels(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, (bytes, dict)) or not hasattr(value, "__iter__"):
        raise InvalidAlertsError(
            f'on_failure must be a list of channel names, e.g. ["ops-slack"], not {value!r:.60}'
        )
    names = []
    for name in value:
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_CHANNEL_NAME:
            raise InvalidAlertsError(
                f"on_failure holds {name!r:.60}; a channel name is a string of 1 to "
                f"{MAX_CHANNEL_NAME} characters, as named on the console's Channels page"
            )
        if name.strip() in names:
            raise InvalidAlertsError(f"on_failure names the channel {name.strip()!r} twice")
        names.append(name.strip())
    if len(names) > MAX_CHANNELS:
        raise InvalidAlertsError(f"on_failure names {len(names)} channels; at most {MAX_CHANNELS}")
    return tuple(sorted(names))


def _flag(name: str, value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise InvalidAlertsError(f"{name} must be True, False or None (the server's default)")


@dataclass(frozen=True)
class Alerts:
    """When the function's channels hear of it. None takes the server's default.

    on_failure: the channels (by name) that get this function's alerts, beside those chosen
        for it on the Channels page; none named: the default channels.
    after_failures: failed runs in a row (each after its last retry) before the alert.
    on_recovery: say "recovered" at the first success after a failure alert.
    late_after: alert when a slot's run has not started this long after the slot (workers
        down, queue stuck), measured from the slot; 0: never.
    running_after: alert when a run is still running this long after it started; 0: never.
    on_skip: alert when a slot is skipped (the previous run still running, or downtime).
    remind_every: while it stays failing or late, remind at most this often.
    """

    on_failure: tuple[str, ...] = ()
    after_failures: int | None = None
    on_recovery: bool | None = None
    late_after: float | str | None = None
    running_after: float | str | None = None
    on_skip: bool | None = None
    remind_every: float | str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "on_failure", _channels(self.on_failure))
        count = self.after_failures
        if count is not None and (
            isinstance(count, bool)
            or not isinstance(count, int)
            or not 1 <= count <= MAX_AFTER_FAILURES
        ):
            raise InvalidAlertsError(
                f"after_failures must be a whole number from 1 to {MAX_AFTER_FAILURES}, "
                f"not {count!r:.60}"
            )
        for name in ("on_recovery", "on_skip"):
            _flag(name, getattr(self, name))
        for name in DURATION_BOUNDS:
            object.__setattr__(self, name, parse_duration(name, getattr(self, name)))

    @classmethod
    def coerce(cls, value: object) -> Alerts:
        """An Alerts from itself, None (the defaults) or its JSON object."""
        if value is None:
            return cls()
        if isinstance(value, Alerts):
            return value
        if not isinstance(value, dict):
            raise InvalidAlertsError(
                "alerts must be a chalkcompute.Alerts(...), e.g. "
                'Alerts(on_failure=["ops-slack"], late_after="5m")'
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known, key=str)
        if unknown:
            raise InvalidAlertsError(
                f"alerts has no field {', '.join(map(str, unknown))}; the fields are "
                f"{', '.join(f.name for f in fields(cls))}"
            )
        # The JSON form is as as_dict() writes it: a list of names, durations in seconds.
        if not isinstance(value.get("on_failure", []), list):
            raise InvalidAlertsError('on_failure must be a list of channel names, e.g. ["ops"]')
        for name in DURATION_BOUNDS:
            if isinstance(value.get(name), str):
                raise InvalidAlertsError(f"{name} must be a number of seconds in JSON")
        return cls(**value)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "on_failure": list(self.on_failure)
        }

    def describe(self) -> str:
        """The fields that are set, as the deploy summary shows them: "to ops-slack, late
        after 5m"; "" when every field is the server's default."""
        parts = []
        if self.on_failure:
            parts.append(f"to {', '.join(self.on_failure)}")
        if self.after_failures is not None:
            parts.append(f"after {self.after_failures} failures in a row")
        if self.on_recovery is not None:
            parts.append("on recovery" if self.on_recovery else "not on recovery")
        for name, said in (
            ("late_after", "late after"),
            ("running_after", "running after"),
            ("remind_every", "remind every"),
        ):
            value = getattr(self, name)
            if value == 0:
                parts.append(f"never {said.split()[0]}")
            elif value is not None:
                parts.append(f"{said} {words.interval(value)}")
        if self.on_skip is not None:
            parts.append("on skipped slots" if self.on_skip else "not on skipped slots")
        return ", ".join(parts)
