"""`chalkcompute.FunctionError`: the base of every error the SDK raises about a function, as in
Chalk's own SDK, so `except chalkcompute.FunctionError:` catches them. The definition errors
are ValueErrors too (InvalidFunctionError, InvalidImageError, InvalidScheduleError, …)."""


class FunctionError(Exception):
    """Base of the SDK's errors about a function: its definition, its deploy, its run."""


class RemoteExecutionError(FunctionError):
    """A run started by `.remote()` ended without success; the message says how, and
    `run_id`, `status`, `error_type` and `logs_url` say where to look."""

    def __init__(
        self, message: str, *, run_id: int, status: str, error_type: str = "", logs_url: str = ""
    ) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.status = status
        self.error_type = error_type
        self.logs_url = logs_url


class NotInRunError(FunctionError, RuntimeError):
    """`current_run()` was called outside a Chalkweb run."""
