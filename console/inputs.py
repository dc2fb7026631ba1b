"""Reading a console request's input: bad input raises ConsoleInputError, which the page shows
with status 400; nothing is changed."""

MAX_FILTER_TEXT = 200


class ConsoleInputError(Exception):
    def __init__(self, message: str, *, function: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.function = function  # the row the error belongs to, if any


def filter_text(params, name: str) -> str:
    value = params.get(name, "").strip()
    if len(value) > MAX_FILTER_TEXT:
        raise ConsoleInputError(f"The {name} filter is at most {MAX_FILTER_TEXT} characters.")
    return value
