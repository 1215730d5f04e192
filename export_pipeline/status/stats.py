"""How a source is used, per period and per user: exports requested, leads exported,
downloads and large exports.

The status table gives plain rows and the periods are cut here, in Python, so that
SQLite and PostgreSQL (whose date functions differ) give the same answer. Periods
are UTC: a day starts at midnight, a week on Monday (ISO 8601), a month on its 1st.

An export counts in the period and for the user of its request: `exports_requested`
all of them, `leads_exported` and `large_exports` those that completed (a file that
expired later still counts). A download counts in the period it happened, for the
user who downloaded; the parts of a resumed download (byte ranges that do not start at
the first byte) are audited but not counted again.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from export_pipeline.status.audit import AuditAction
from export_pipeline.status.models import AuditEvent, Export, ExportStatus, User

_FINISHED = (ExportStatus.COMPLETED, ExportStatus.EXPIRED)
_LATEST = datetime.max.replace(tzinfo=UTC)


class StatsPeriod(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


def period_start(moment: datetime, period: StatsPeriod) -> datetime:
    """The start of the UTC period holding `moment` (an aware datetime)."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is StatsPeriod.DAY:
        return day
    if period is StatsPeriod.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def period_end(start: datetime, period: StatsPeriod) -> datetime:
    """The start of the period after the one starting at `start`; the latest datetime
    there is for the period that holds it."""
    try:
        if period is StatsPeriod.DAY:
            return start + timedelta(days=1)
        if period is StatsPeriod.WEEK:
            return start + timedelta(weeks=1)
        year, month = divmod(start.year * 12 + start.month, 12)
        return start.replace(year=year, month=month + 1, day=1)
    except (OverflowError, ValueError):
        return _LATEST


def default_range(now: datetime, period: StatsPeriod) -> tuple[datetime, datetime]:
    """The last twelve calendar months up to `now`: from the 1st of the month eleven
    months before this one (moved back to the Monday before it for weeks), to `now`."""
    now = now.astimezone(UTC)
    year, month = divmod(now.year * 12 + now.month - 1 - 11, 12)
    first = datetime(year, month + 1, 1, tzinfo=UTC)
    return period_start(first, period), now


@dataclass(frozen=True)
class ExportFact:
    requested_at: datetime
    requested_by: str
    lead_count: int | None
    """The leads of a completed export; None for one that did not complete."""
    large: bool


@dataclass(frozen=True)
class DownloadFact:
    occurred_at: datetime
    user: str | None
    """None when the event names no user."""


@dataclass
class UsageRow:
    """What one user did in one period; `period_end` is the next period's start."""

    period_start: datetime
    period_end: datetime
    user: str | None
    exports_requested: int = 0
    leads_exported: int = 0
    downloads: int = 0
    large_exports: int = 0


def summarize_usage(
    exports: Iterable[ExportFact], downloads: Iterable[DownloadFact], period: StatsPeriod
) -> list[UsageRow]:
    """One row per period and user with anything to count, by period then user name
    (a download without a user last)."""
    rows: dict[tuple[datetime, str | None], UsageRow] = {}

    def row_for(moment: datetime, user: str | None) -> UsageRow:
        start = period_start(moment, period)
        row = rows.get((start, user))
        if row is None:
            row = rows[start, user] = UsageRow(start, period_end(start, period), user)
        return row

    for export in exports:
        row = row_for(export.requested_at, export.requested_by)
        row.exports_requested += 1
        if export.lead_count is not None:
            row.leads_exported += export.lead_count
            row.large_exports += export.large
    for download in downloads:
        row_for(download.occurred_at, download.user).downloads += 1

    return sorted(rows.values(), key=lambda r: (r.period_start, r.user is None, r.user or ""))


def is_large(details: Mapping[str, Any] | None, lead_count: int | None, threshold: int) -> bool:
    """Whether a completed export was large: as its `completed` event recorded it, or,
    for an export completed before events recorded it, by `threshold` now."""
    recorded = (details or {}).get("large")
    if isinstance(recorded, bool):
        return recorded
    return lead_count is not None and lead_count >= threshold


def read_usage(
    session: Session,
    source_id: int,
    *,
    period: StatsPeriod,
    start: datetime,
    end: datetime,
    large_threshold: int,
) -> list[UsageRow]:
    """The source's usage from `start` (included) to `end` (excluded), both aware. A
    period cut by either bound counts only its part inside them."""
    export_rows = session.execute(
        select(
            Export.id,
            Export.requested_at,
            User.name,
            Export.status,
            Export.lead_count,
            AuditEvent.details,
        )
        .join(User, User.id == Export.requested_by)
        .outerjoin(
            AuditEvent,
            and_(
                AuditEvent.export_id == Export.id,
                AuditEvent.action == AuditAction.COMPLETED.value,
            ),
        )
        .where(
            Export.source_id == source_id,
            Export.requested_at >= start,
            Export.requested_at < end,
        )
    ).all()
    download_rows = session.execute(
        select(AuditEvent.occurred_at, User.name, AuditEvent.details)
        .outerjoin(User, User.id == AuditEvent.actor_id)
        .where(
            AuditEvent.source_id == source_id,
            AuditEvent.action == AuditAction.DOWNLOADED.value,
            AuditEvent.occurred_at >= start,
            AuditEvent.occurred_at < end,
        )
    ).all()

    exports = {
        export_id: _export_fact(requested_at, name, status, lead_count, details, large_threshold)
        for export_id, requested_at, name, status, lead_count, details in export_rows
    }
    downloads = [
        DownloadFact(occurred_at, name)
        for occurred_at, name, details in download_rows
        if starts_a_download(details)
    ]
    return summarize_usage(exports.values(), downloads, period)


def starts_a_download(details: Mapping[str, Any] | None) -> bool:
    """Whether a `downloaded` event began a transfer: the whole file, or a range from
    its first byte, rather than the rest of an interrupted download."""
    byte_range = (details or {}).get("range")
    return not byte_range or str(byte_range).startswith("0-")


def _export_fact(
    requested_at: datetime,
    requested_by: str,
    status: str,
    lead_count: int | None,
    completed_details: dict[str, Any] | None,
    large_threshold: int,
) -> ExportFact:
    finished = ExportStatus(status) in _FINISHED and lead_count is not None
    return ExportFact(
        requested_at=requested_at,
        requested_by=requested_by,
        lead_count=lead_count if finished else None,
        large=finished and is_large(completed_details, lead_count, large_threshold),
    )
