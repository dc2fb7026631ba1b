"""Reading a console request's input: bad input raises ConsoleInputError, which the page shows
with status 400 (403 for an action the person may not take), and an action that must be
confirmed first raises ConfirmationNeeded; either way nothing is changed."""

MAX_FILTER_TEXT = 200


class ConsoleInputError(Exception):
    def __init__(self, message: str, *, function: str = "", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.function = function  # the row the error belongs to, if any
        self.status = status  # 403 when the person may not do it


class ConfirmationNeeded(Exception):
    """An action that asks before it goes ahead: the page shows `question` with a button that
    posts the same form again, confirmed. Nothing was changed."""

    def __init__(self, question: str) -> None:
        super().__init__(question)
        self.question = question


def filter_text(params, name: str) -> str:
    value = params.get(name, "").strip()
    if len(value) > MAX_FILTER_TEXT:
        raise ConsoleInputError(f"The {name} filter is at most {MAX_FILTER_TEXT} characters.")
    return value
