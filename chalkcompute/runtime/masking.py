"""Secret values masked in everything a run reports: its log, its error and its return value.

A Masker is built from the secret values of one attempt and masks each of them in the forms a
program commonly prints it:

- the value; the value stripped of surrounding whitespace and of a trailing newline;
- each line of a multi-line value, and that line stripped;
- of each of those, the inside of its repr() and ascii() (of the str, and of its UTF-8 bytes;
  in either quotes, as the text around it may take), and of its JSON string (escaped to
  ASCII, as json.dumps does by default, or not).

Forms of fewer than MIN_MASKED_LENGTH characters are left alone (masking "1" would blank every
digit of the log). Encodings the program applies itself (base64, hex, URL-encoding, a
compressed or encrypted copy) are out of reach.

Every occurrence of every form is found, overlapping ones too, and each stretch of text they
cover becomes one MASK. `stream()` masks text that arrives in chunks: it holds back the last
`window` (longest form - 1) characters until more text or the end of the stream shows whether
they start a secret, so a secret split across two writes is masked too. A pause in the stream
(`flush(final=False)`) lets out all but a tail that may still start a secret, however long the
rest takes to come.

Each stream is masked on its own: the runner's streams (stdout and stderr pipes, printed
stdout and stderr, chalk_logger records) are separate texts, so a secret whose parts a program
writes to two of them is not recognised (as with its own encodings, above).
"""

import json
from collections.abc import Iterable

MASK = "********"
MIN_MASKED_LENGTH = 3


def secret_forms(value: str) -> set[str]:
    """The texts masked for one secret value (see the module's docstring)."""
    bases = {value, value.strip(), value.rstrip("\r\n")}
    lines = value.splitlines()
    if len(lines) > 1:
        for line in lines:
            bases.update((line, line.strip()))
    forms: set[str] = set()
    for base in bases:
        if len(base.strip()) < MIN_MASKED_LENGTH:
            continue
        forms.update((base, json.dumps(base)[1:-1], json.dumps(base, ensure_ascii=False)[1:-1]))
        # repr() quotes with ' unless the text has ' and no "; a value inside a longer text
        # gets that text's quotes: with a " after it, the ' quoted form (its ' escaped).
        for text in (base, base + '"'):
            cut = len(text) - len(base)
            forms.update((repr(text)[1 : -1 - cut], ascii(text)[1 : -1 - cut]))
            try:
                forms.add(repr(text.encode("utf-8"))[2 : -1 - cut])
            except UnicodeEncodeError:  # a lone surrogate: no bytes ever print as it
                pass
    return forms


class Masker:
    """Masks the forms of a set of secret values; one instance serves every path of an
    attempt (log lines, chalk_logger records, the exception, the traceback, the return)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if isinstance(secret, str):
                forms |= secret_forms(secret)
        self.forms = tuple(sorted(forms, key=lambda form: (-len(form), form)))
        self.window = len(self.forms[0]) - 1 if self.forms else 0
        self._firsts = {form[0] for form in self.forms}

    def start_of_secret(self, text: str, lo: int = 0) -> int:
        """Where the longest tail of `text[lo:]` that is the start of a form begins
        (`len(text)` if none)."""
        for start in range(lo, len(text)):
            if text[start] in self._firsts:
                tail = text[start:]
                if any(form.startswith(tail) for form in self.forms):
                    return start
        return len(text)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The stretches [start, end) of `text` covered by an occurrence of a form, merged,
        in order."""
        found = []
        for form in self.forms:
            start = text.find(form)
            while start >= 0:
                found.append((start, start + len(form)))
                start = text.find(form, start + 1)
        if not found:
            return found
        found.sort()
        merged = [list(found[0])]
        for start, end in found[1:]:
            if start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return [(start, end) for start, end in merged]

    def render(self, text: str, lo: int, hi: int, masked_to_lo: bool) -> tuple[str, int, bool]:
        """`text[lo:hi]` masked; the position it ends at, past `hi` when a masked stretch that
        starts before `hi` goes on beyond it (that stretch is whole in `text`); and whether it
        ends with that MASK. `masked_to_lo`: what was output before `lo` ends with a MASK, which
        a stretch that goes on from there (or starts right at `lo`) continues."""
        out = []
        pos, masked = lo, masked_to_lo
        for start, end in self.spans(text) if self.forms else ():
            if end <= lo:
                continue
            if start >= hi:
                break
            if start > pos:
                out.append(text[pos:start])
                masked = False
            if not masked:
                out.append(MASK)
            pos, masked = end, True
        if pos < hi:
            out.append(text[pos:hi])
            pos, masked = hi, False
        return "".join(out), pos, masked

    def mask(self, text: str, *, cut_start: bool = False, cut_end: bool = False) -> str:
        """`text` masked. A text cut from a longer one (`cut_start`, `cut_end`) loses its
        first or last `window` characters, which may hold part of a secret that the cut
        made unrecognisable."""
        if not self.forms:
            return text
        lo = min(self.window, len(text)) if cut_start else 0
        hi = max(lo, len(text) - self.window) if cut_end else len(text)
        return self.render(text, lo, hi, masked_to_lo=False)[0]

    def stream(self) -> "MaskingStream":
        return MaskingStream(self)


class MaskingStream:
    """Masks a stream of chunks as if it were one text: `feed()` each chunk and use what it
    returns, `flush(final=False)` when the stream pauses and `flush()` at its end (a secret
    that goes on after that is not recognised)."""

    def __init__(self, masker: Masker) -> None:
        self.masker = masker
        self._carry = ""  # the last `window` characters seen, not all of them output yet
        self._done = 0  # how many characters at the start of the carry are already output
        self._masked = False  # the output so far ends with a MASK that ends at `_done`

    def feed(self, text: str) -> str:
        if not self.masker.forms:
            return text
        buffer = self._carry + text
        # Text before `hi` is output: a secret starting there would end within `buffer`.
        return self._output(buffer, max(self._done, len(buffer) - self.masker.window))

    def flush(self, final: bool = True) -> str:
        """What is held back: all of it at the end of the stream (`final`); at a pause, all
        but a tail that may start a secret, which waits for the rest however long it takes
        (let out on a timer, a secret written in two parts would show)."""
        buffer = self._carry
        if not buffer:
            return ""
        if not final:
            return self._output(buffer, max(self._done, self.masker.start_of_secret(buffer)))
        out = self.masker.render(buffer, self._done, len(buffer), self._masked)[0]
        self._carry, self._done, self._masked = "", 0, False
        return out

    def pending(self) -> int:
        """How many characters are held back."""
        return len(self._carry) - self._done

    def _output(self, buffer: str, hi: int) -> str:
        """`buffer` masked up to `hi` (or past it, to the end of a MASK); keeps its last
        `window` characters for the text to come."""
        out, pos, self._masked = self.masker.render(buffer, self._done, hi, self._masked)
        keep = min(self.masker.window, len(buffer))
        self._carry = buffer[len(buffer) - keep :]
        self._done = pos - (len(buffer) - keep)
        return out
