"""Keyset pagination for the console's lists.

Numbered pages need COUNT(*) and OFFSET, both of which read every row before the page: at a
million runs that is most of a request's time. A keyset page reads only its own rows through
an index: "older" and "newer" links carry the key of the last (or first) row shown, and the
next page is `WHERE key > cursor ORDER BY key LIMIT size + 1` (the extra row says whether
there is a page after it).
"""

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import BadRequest
from django.db.models import QuerySet


@dataclass(frozen=True)
class KeysetPage:
    items: list
    # Cursors for the links: pass `previous` as ?before= and `next` as ?after=.
    previous: Any = None
    next: Any = None

    @property
    def is_paginated(self) -> bool:
        return self.previous is not None or self.next is not None


def keyset_page(
    queryset: QuerySet,
    *,
    key: str,
    size: int,
    after: Any = None,
    before: Any = None,
    descending: bool = False,
) -> KeysetPage:
    """The page of `queryset` ordered by the unique `key` (descending for newest first) that
    starts after `after`, or, given `before`, the page that ends just before `before`."""
    forward = f"-{key}" if descending else key
    backward = key if descending else f"-{key}"
    if before is not None:
        # The page before the cursor: read towards the start, then show in display order.
        lookup = f"{key}__gt" if descending else f"{key}__lt"
        rows = list(queryset.filter(**{lookup: before}).order_by(backward)[: size + 1])
        more_before = len(rows) > size
        rows = rows[:size][::-1]
        if not rows:  # nothing before it any more: show the first page
            return keyset_page(queryset, key=key, size=size, descending=descending)
        return KeysetPage(
            items=rows,
            previous=_key(rows[0], key) if more_before else None,
            next=_key(rows[-1], key),
        )
    if after is not None:
        lookup = f"{key}__lt" if descending else f"{key}__gt"
        queryset = queryset.filter(**{lookup: after})
    rows = list(queryset.order_by(forward)[: size + 1])
    more_after = len(rows) > size
    rows = rows[:size]
    return KeysetPage(
        items=rows,
        previous=_key(rows[0], key) if after is not None and rows else None,
        next=_key(rows[-1], key) if more_after else None,
    )


def _key(row: Any, key: str) -> Any:
    return getattr(row, key)


def int_cursor(params, name: str) -> int | None:
    """A numeric cursor (?after=, ?before=) from the query string; a bad one is a 400."""
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise BadRequest(f"{name} must be a whole number, as in the page's own links")
    return int(raw)


def text_cursor(params, name: str, max_length: int = 200) -> str | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if len(raw) > max_length:
        raise BadRequest(f"{name} is longer than any name here")
    return raw


def pager_query(params, *cursors: str) -> str:
    """The page's other query parameters (its filters) for the pager's links, ending in "&"
    when there are any: `?{{ pager_query }}after=…`."""
    kept = params.copy()
    for name in cursors or ("after", "before"):
        kept.pop(name, None)
    encoded = kept.urlencode()
    return f"{encoded}&" if encoded else ""
