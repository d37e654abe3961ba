"""Cursor pagination shared by both backends: one opaque cursor format, one page type.

A cursor is ``base64url(json({"q": <query tag>, "k": <last sort key>}))``. Both backends sort
each list by the same key (a server id, an audit ``ts#id`` string), so a cursor means the
same thing on DynamoDB and PostgreSQL. The query tag binds a cursor to the list it came from:
replaying it on another list (another user's servers, say) is refused, not silently honoured.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import TypeVar

from .base import BadCursor
from .records import AuditEntry

T = TypeVar("T")


class Page(list[T]):
    """A list of records plus ``cursor``: pass it back for the next page; None at the end.

    A ``list`` subclass so callers that only iterate keep working unchanged.
    """

    cursor: str | None

    def __init__(self, items: list[T] | None = None, cursor: str | None = None) -> None:
        super().__init__(items or [])
        self.cursor = cursor


def query_tag(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12]


def encode(tag: str, key: str) -> str:
    raw = json.dumps({"q": tag, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(tag: str, cursor: str | None) -> str | None:
    """The sort key to start after, or None for the first page; BadCursor if foreign or forged."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
        key = body["k"]
        ok = body["q"] == tag and isinstance(key, str)
    except (ValueError, KeyError, TypeError):
        raise BadCursor("malformed cursor") from None
    if not ok:
        raise BadCursor("cursor belongs to another list")
    return str(key)


def cut(tag: str, rows: list[T], limit: int | None, key_of: Callable[[T], str]) -> Page[T]:
    """Trim a ``limit + 1`` fetch to a page; the extra row only tells that a next page exists."""
    if limit is None or len(rows) <= limit:
        return Page(rows, None)
    rows = rows[:limit]
    return Page(rows, encode(tag, key_of(rows[-1])))


def audit_key(entry: AuditEntry) -> str:
    """The audit sort key (``ts#id``): both backends order the audit log by it."""
    return f"{entry.ts:017.6f}#{entry.id}"


def chained(tag: str, sources: list[Callable[[int | None, str | None], Page[T]]], limit: int | None,
            cursor: str | None) -> Page[T]:
    """One paged list made of several paged lists read in turn (e.g. owned, then shared servers).

    The cursor names the source and that source's own cursor, so each source keeps its key order
    and its own binding checks; a cursor may lead to an empty last page when later sources are empty.
    """
    after = decode(tag, cursor)
    index, inner = 0, None
    if after is not None:
        head, _, rest = after.partition(":")
        if not head.isdigit() or int(head) >= len(sources):
            raise BadCursor("malformed cursor")
        index, inner = int(head), rest or None
    out: list[T] = []
    while index < len(sources):
        if limit is not None and len(out) >= limit:
            return Page(out, encode(tag, f"{index}:"))
        page = sources[index](None if limit is None else limit - len(out), inner)
        out.extend(page)
        if page.cursor is not None:
            return Page(out, encode(tag, f"{index}:{page.cursor}"))
        index, inner = index + 1, None
    return Page(out, None)
