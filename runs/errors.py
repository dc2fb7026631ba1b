"""Errors the runs services raise, in the one error shape of every service (ServiceError)."""

from common.errors import ServiceError


class RunError(ServiceError):
    code = "invalid_request"


class NotDeployedError(RunError):
    code = "not_deployed"
    status = 409


NOT_DEPLOYED = "{name} has no deployed version to run; deploy it first."


class MissingLogLinesError(RunError):
    """A runner's log batch starts past the lines stored: it must resend from the first one
    missing (a protocol error, answered 400 by the runner API)."""


class InvalidLogLineError(RunError):
    """A log line no runner may send (a system line, an unknown stream or level, text that is
    not a string): the runner API answers 400 and stores none of its batch."""


class BackfillError(RunError):
    """A backfill refused by one of its rules (runs/backfills.py): nothing was written."""


class NoScheduleError(BackfillError):
    code = "no_schedule"


class InvalidRangeError(BackfillError):
    code = "invalid_range"


class InvalidParallelError(BackfillError):
    code = "invalid_max_parallel"


class TooManySlotsError(BackfillError):
    code = "too_many_slots"


class NothingToRunError(BackfillError):
    code = "nothing_to_run"
    status = 409


class ConfirmRequiredError(BackfillError):
    """More slots to run than start without a confirmation; `runs` says how many."""

    code = "confirm_required"

    def __init__(self, message: str, *, runs: int) -> None:
        super().__init__(message)
        self.runs = runs
