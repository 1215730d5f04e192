"""A source's export history, page by page, and the cursors that page through it.

Pages are cut by key, not by offset: a page holds the rows that sort after the last
row of the page before, by `(time, id)` descending. Rows added later sort first (an
export's request time is the moment it is stored), so they show up on a new first
page and never shift a row across the boundary of a page already read. The one
exception lasts milliseconds: a request whose time was taken just before a page was
read, but which was committed just after, sorts behind that page's first row.

A cursor is the last row's key as base64url JSON, together with a fingerprint of the
listing it came from (which list, which source, which filters). It is opaque to
clients and not signed: a forged cursor only moves the position within rows the
caller may read anyway. The audit log pages with the same cursors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, selectinload

from export_pipeline.status.models import Export, ExportStatus, User

T = TypeVar("T")

CURSOR_VERSION = 1
_CURSOR_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")
MALFORMED_CURSOR = (
    "the cursor is not one this API issued: pass the next_cursor of the previous page "
    "unchanged, or leave cursor out to start from the newest"
)
FOREIGN_CURSOR = (
    "the cursor belongs to a listing with other filters (or another source): repeat the "
    "filters of the request that returned it, or leave cursor out to start from the newest"
)


class CursorError(ValueError):
    """A cursor that is malformed or that another listing issued; the message says
    what to do instead."""


@dataclass(frozen=True)
class PageKey:
    """Where a page ends: the last row's time (aware UTC) and id."""

    at: datetime
    id: str | int


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    """None on the last page."""


def listing_scope(listing: str, source_id: int, filters: Mapping[str, Any]) -> str:
    """A short fingerprint of a listing: which list, which source, which filters.

    `filters` must already be canonical (sorted lists, UTC ISO times), so that the
    same filters spelled differently share a scope.
    """
    canonical = json.dumps([listing, source_id, filters], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(key: PageKey, scope: str) -> str:
    at = key.at.astimezone(UTC).isoformat()
    payload: dict[str, Any] = {"v": CURSOR_VERSION, "s": scope, "t": at, "k": key.id}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def decode_cursor(cursor: str, scope: str, key_type: type[str] | type[int]) -> PageKey:
    """The key a cursor holds; `CursorError` unless `encode_cursor` made it for `scope`
    with an id of `key_type`."""
    if not _CURSOR_ALPHABET.fullmatch(cursor):
        raise CursorError(MALFORMED_CURSOR)
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        version, cursor_scope, at_text, key = (payload[name] for name in ("v", "s", "t", "k"))
        at = datetime.fromisoformat(at_text)
        at = at.astimezone(UTC) if at.tzinfo is not None else None
    except (binascii.Error, ValueError, KeyError, TypeError, OverflowError):
        raise CursorError(MALFORMED_CURSOR) from None
    if version != CURSOR_VERSION or at is None or not _is_key(key, key_type):
        raise CursorError(MALFORMED_CURSOR)
    if cursor_scope != scope:
        raise CursorError(FOREIGN_CURSOR)
    return PageKey(at=at, id=key)


def _is_key(key: object, key_type: type[str] | type[int]) -> bool:
    """An id of the listing's type: integers within 64 bits, as the databases hold them,
    and export ids as UUIDs."""
    if type(key) is not key_type:
        return False
    if isinstance(key, int):
        return -(2**63) <= key < 2**63
    return _UUID.fullmatch(key) is not None


def rows_after(
    time_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[Any],
    key: PageKey,
) -> ColumnElement[bool]:
    """Rows that sort after `key` in `(time, id)` descending order. Spelt out rather
    than as a row-value comparison, so both databases can use their time index."""
    return or_(time_column < key.at, and_(time_column == key.at, id_column < key.id))


def cut_page(rows: Sequence[T], limit: int, key_of: Callable[[T], PageKey], scope: str) -> Page[T]:
    """The first `limit` of `rows` (fetched `limit + 1` at most), with a cursor to the
    next page when there was one more row."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(key_of(items[-1]), scope) if more else None)


@dataclass(frozen=True)
class HistoryFilters:
    """Which exports a history page shows; every filter given must hold.

    `requested_from` is included and `requested_to` excluded; both are aware.
    """

    statuses: frozenset[ExportStatus] = field(default_factory=frozenset)
    requested_by: str | None = None
    """A user name."""
    requested_from: datetime | None = None
    requested_to: datetime | None = None

    def canonical(self) -> dict[str, Any]:
        return {
            "statuses": sorted(status.value for status in self.statuses),
            "requested_by": self.requested_by,
            "requested_from": canonical_time(self.requested_from),
            "requested_to": canonical_time(self.requested_to),
        }


def read_history(
    session: Session,
    source_id: int,
    filters: HistoryFilters | None = None,
    *,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Export]:
    """One page of the source's exports, newest request first; the next page starts
    from the returned `next_cursor`. `CursorError` for a cursor that this listing did
    not issue."""
    filters = filters or HistoryFilters()
    canonical = filters.canonical()
    scope = listing_scope("exports", source_id, canonical)
    after = decode_cursor(cursor, scope, str) if cursor is not None else None

    query = (
        select(Export).options(selectinload(Export.requester)).where(Export.source_id == source_id)
    )
    if filters.statuses:
        query = query.where(Export.status.in_(canonical["statuses"]))
    if filters.requested_by is not None:
        requester = select(User.id).where(User.name == filters.requested_by)
        query = query.where(Export.requested_by.in_(requester))
    if filters.requested_from is not None:
        query = query.where(Export.requested_at >= filters.requested_from)
    if filters.requested_to is not None:
        query = query.where(Export.requested_at < filters.requested_to)
    if after is not None:
        query = query.where(rows_after(Export.requested_at, Export.id, after))
    rows = session.scalars(
        query.order_by(Export.requested_at.desc(), Export.id.desc()).limit(limit + 1)
    ).all()

    return cut_page(rows, limit, lambda export: PageKey(export.requested_at, export.id), scope)


def canonical_time(moment: datetime | None) -> str | None:
    """A bound as a scope holds it: the same instant in any offset gives the same text."""
    return moment.astimezone(UTC).isoformat() if moment is not None else None
