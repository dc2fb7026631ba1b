"""The one base of every service's errors (plain Python: services import it, and so may
anything below the web layer)."""


class ServiceError(ValueError):
    """A rule a service enforces, broken: nothing was changed. Every entry point shows
    `message` as it is; the REST API answers `status` with {"error": code, "detail": message}."""

    code = "invalid_request"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
