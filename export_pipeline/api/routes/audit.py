from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.exceptions import RequestValidationError

from export_pipeline.api.deps import SessionDep, SettingsDep, SourceAccessDep
from export_pipeline.api.errors import error_responses, validation_error
from export_pipeline.api.schemas import (
    AuditEventList,
    AuditEventOut,
    AuditQuery,
    StatsQuery,
    UsageOut,
    UsageStats,
)
from export_pipeline.status.audit import AuditFilters, read_audit_log
from export_pipeline.status.models import Role
from export_pipeline.status.stats import default_range, read_usage

router = APIRouter(tags=["audit"])

ADMIN_ONLY = error_responses(
    status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN, status.HTTP_404_NOT_FOUND
)


@router.get(
    "/sources/{source_id}/audit",
    summary="List a source's audit events, newest first, a page at a time",
    description=(
        "Who did what to which export: requests, runs, links, downloads and refusals. "
        "Filters combine with AND; pages work as in the export history. Needs the admin role."
    ),
    responses=ADMIN_ONLY,
)
def read_audit_events(
    access: SourceAccessDep,
    session: SessionDep,
    query: Annotated[AuditQuery, Query()],
) -> AuditEventList:
    access.require(Role.ADMIN)
    filters = AuditFilters(
        actor=query.actor,
        actions=frozenset(query.action),
        occurred_from=query.occurred_from,
        occurred_to=query.occurred_to,
    )
    page = read_audit_log(
        session, access.source_id, filters, limit=query.limit, cursor=query.cursor
    )
    return AuditEventList(
        items=[AuditEventOut.from_entry(entry) for entry in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/sources/{source_id}/exports/stats",
    summary="Count a source's exports, leads, downloads and large exports per period and user",
    description=(
        "Periods are UTC days, ISO weeks (Monday to Sunday) or calendar months. An export "
        "counts in the period of its request, a download in the period it happened; a "
        "period cut by `from` or `to` counts only its part inside. Needs the admin role."
    ),
    responses=ADMIN_ONLY,
)
def read_export_stats(
    access: SourceAccessDep,
    session: SessionDep,
    settings: SettingsDep,
    query: Annotated[StatsQuery, Query()],
) -> UsageStats:
    access.require(Role.ADMIN)
    default_start, default_end = default_range(datetime.now(UTC), query.period)
    start, end = query.start or default_start, query.end or default_end
    if end <= start:
        msg = f"the range ends at {end.isoformat()}, not after its start {start.isoformat()}; "
        msg += "give both from and to"
        error = validation_error(("query", "to" if query.end else "from"), msg, "value_error")
        raise RequestValidationError([error])

    rows = read_usage(
        session,
        access.source_id,
        period=query.period,
        start=start,
        end=end,
        large_threshold=settings.large_export_leads,
    )
    return UsageStats(
        period=query.period,
        start=start,
        end=end,
        items=[UsageOut.from_row(row) for row in rows],
    )
