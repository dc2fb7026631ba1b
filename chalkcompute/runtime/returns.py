"""What a run keeps of its function's return value (Run.return_value), on every executor.

The function's process (child.py) turns the value into a text: its JSON (`json.dumps`, no
`default`; NaN and the infinities are not JSON) or, when it is not JSON, its repr(). The runner
masks the run's secrets in that text as in its log (masking.py) and reports it, and the server
keeps it in one of three formats:

- "json": the value itself, as JSON; `remote()` gives it back as Python values;
- "repr": a string, its repr() (or its JSON text, when a masked secret left it no longer JSON);
- "cut": a string, the first MAX_RETURN_BYTES of either text: the whole was longer.

None, the return of most functions, is kept as no value.
"""

import json

from chalkcompute.runtime.masking import Masker

JSON, REPR, CUT = "json", "repr", "cut"
FORMATS = (JSON, REPR, CUT)
# A result to look at and hand back, not a data channel: larger data belongs in storage.
MAX_RETURN_BYTES = 65_536


def size(text: str) -> int:
    """The UTF-8 bytes of a text, as the cap counts them."""
    return len(text.encode("utf-8", "surrogatepass"))


def cut(text: str) -> str:
    """The longest start of `text` within MAX_RETURN_BYTES, in whole characters."""
    return text.encode("utf-8", "surrogatepass")[:MAX_RETURN_BYTES].decode("utf-8", "ignore")


def kept(text: str, format: str, masker: Masker) -> tuple[object, str]:
    """(return_value, format) as the runner reports them: `text` with the secrets masked,
    parsed again if JSON. A mask can be longer than what it hides, so the cap is applied
    again; and a secret masked across JSON's syntax (a number, say) leaves a text, as does a
    format the function's process had no business sending."""
    masked = masker.mask(text, cut_end=format == CUT)
    if size(masked) > MAX_RETURN_BYTES or format == CUT:
        return cut(masked), CUT
    if format == JSON:
        try:
            return json.loads(masked), JSON
        except (ValueError, RecursionError):
            pass
    return masked, REPR
