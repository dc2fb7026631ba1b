"""`chalkcompute.current_run()`: inside a run, the facts of that run as the server decided them
(runs/runner_api.py): its id, attempt number, trigger, slot, the slot of the function's last
success before it, and the function's name and version.

The runner hands them to the function's process as environment variables (VARIABLES), so the
programs it starts, in any language, read them too; an instant is ISO 8601 in UTC
("2026-03-01T12:00:00Z"), and empty when there is none. Standard library only.
"""

import datetime as dt
import os
from dataclasses import dataclass

from chalkcompute.errors import NotInRunError

# Each field of RunContext, and the environment variable that carries it.
VARIABLES = {
    "run_id": "CHALK_RUN_ID",
    "attempt": "CHALK_RUN_ATTEMPT",
    "trigger": "CHALK_RUN_TRIGGER",
    "slot": "CHALK_RUN_SLOT",
    "previous_success_slot": "CHALK_RUN_PREVIOUS_SUCCESS_SLOT",
    "function": "CHALK_FUNCTION_NAME",
    "version": "CHALK_FUNCTION_VERSION",
}


@dataclass(frozen=True)
class RunContext:
    """The run a function is in: what `current_run()` returns."""

    run_id: int
    attempt: int  # 1, then 2 for the first retry, …
    trigger: str  # "schedule"; "manual" (console, admin) or "api" (API, CLI, remote()) by hand
    # The scheduled instant this run is for (aware, UTC), a retry's too; None for a run
    # started by hand.
    slot: dt.datetime | None
    # The slot of the function's last succeeded run that had one, before this run's slot (for
    # a run started by hand, before it was started); None if there is none.
    previous_success_slot: dt.datetime | None
    function: str
    version: int


def utc_text(moment: dt.datetime | None) -> str | None:
    """An instant as a run's facts carry it: ISO 8601 in UTC."""
    if moment is None:
        return None
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")  # noqa: UP017 - 3.10


def environment(facts: dict) -> dict[str, str]:
    """The variables of a run's facts as the server sends them (RunContext's fields, instants
    as utc_text): what the runner puts in the function's environment."""
    return {
        variable: "" if facts[field] is None else str(facts[field])
        for field, variable in VARIABLES.items()
    }


def current_run() -> RunContext:
    """The run this code runs in. Raises NotInRunError anywhere else (a local call, a test)."""
    values = {field: os.environ.get(variable, "") for field, variable in VARIABLES.items()}
    if not values["run_id"]:
        raise NotInRunError(
            "current_run() is only available inside a Chalkweb run; here CHALK_RUN_ID is not "
            "set (code that also runs locally or in tests can catch chalkcompute.NotInRunError)"
        )
    return RunContext(
        run_id=int(values["run_id"]),
        attempt=int(values["attempt"]),
        trigger=values["trigger"],
        slot=_moment(values["slot"]),
        previous_success_slot=_moment(values["previous_success_slot"]),
        function=values["function"],
        version=int(values["version"]),
    )


def _moment(text: str) -> dt.datetime | None:
    # Run images may have Python 3.10, whose fromisoformat() does not read "Z".
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
