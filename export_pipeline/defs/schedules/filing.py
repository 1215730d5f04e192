"""Filing the due ticks of export schedules as ordinary export requests.

Each due tick is checked the way the API checks a request: its filters are resolved at
the tick's time (a relative range becomes calendar dates in the schedule's time zone),
validated against what the source holds now, and frozen with the tick's time as the
request time. A tick that cannot be filed (the source is gone, a status or attribute
no longer exists, the owner lost the exporter role) is recorded as the schedule's last
error and as a `failed` audit event, and the schedule waits for its next tick. The
export request sensor then starts a run for each filed export, as for any other.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
from pydantic import ValidationError
from sqlalchemy.orm import Session

from export_pipeline.defs.exports.resources import StatusTableResource
from export_pipeline.engine.filters import (
    ExportFilters,
    FrozenFilters,
    ScheduleFilters,
    freeze_filters,
    resolve_schedule_filters,
)
from export_pipeline.engine.options import ExportOptions
from export_pipeline.engine.source_checks import check_against_source, describe_problems
from export_pipeline.leads.catalog import Source, read_catalog
from export_pipeline.leads.store import LeadStore
from export_pipeline.status.models import ExportSchedule, Role
from export_pipeline.status.schedules import Tick, due_schedules, file_tick, plan_tick, skip_tick
from export_pipeline.status.users import role_on_source

log = logging.getLogger(__name__)

SCHEDULES_PER_EVALUATION = 50
"""Due schedules handled per evaluation; any more wait for the next one."""


@dataclass(frozen=True)
class Filing:
    """What one due tick came to: an export, or the reason it filed none."""

    schedule_id: str
    tick: datetime
    export_id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class _DueTick:
    tick: Tick
    source_id: int
    owner_id: int
    owner: str
    time_zone: str
    filters: dict[str, Any]
    options: dict[str, Any]
    planning_error: str | None


@dataclass(frozen=True)
class _Request:
    source: Source
    filters: ExportFilters
    frozen: FrozenFilters
    options: ExportOptions


def file_due_schedules(
    status_table: StatusTableResource,
    lead_store: LeadStore,
    *,
    now: datetime,
    limit: int = SCHEDULES_PER_EVALUATION,
) -> list[Filing]:
    """File every tick due at `now` (aware), at most `limit` schedules.

    Each schedule is filed or skipped in a transaction of its own. A tick that another
    evaluation handled meanwhile is left out of the result. Raises `LeadStoreBusy` when
    the lead store stays locked; nothing is filed then, and the ticks stay due.
    """
    with status_table.session() as session:
        due = [
            _due_tick(schedule, now) for schedule in due_schedules(session, now=now, limit=limit)
        ]
    if not due:
        return []

    with lead_store.reading() as connection:
        requests = [_prepare(connection, tick) for tick in due]

    filings = []
    for tick, request in zip(due, requests, strict=True):
        with status_table.session() as session:
            filing = _file_or_skip(session, tick, request, now)
        if filing is not None:
            filings.append(filing)
    return filings


def _due_tick(schedule: ExportSchedule, now: datetime) -> _DueTick:
    due = schedule.next_tick_at
    assert due is not None
    planning_error = None
    try:
        at, following = plan_tick(schedule.cron, schedule.time_zone, due, now)
    except ValueError as error:
        at, following, planning_error = due, None, str(error)
    return _DueTick(
        tick=Tick(schedule_id=schedule.id, due=due, at=at, following=following),
        source_id=schedule.source_id,
        owner_id=schedule.owner_id,
        owner=schedule.owner.name,
        time_zone=schedule.time_zone,
        filters=dict(schedule.filters),
        options=dict(schedule.options),
        planning_error=planning_error,
    )


def _prepare(connection: duckdb.DuckDBPyConnection, due: _DueTick) -> _Request | str:
    """The export request of the tick, checked against the source; else why not."""
    if due.planning_error is not None:
        return due.planning_error
    catalog = read_catalog(connection, due.source_id)
    if catalog is None:
        return f"source {due.source_id} no longer exists"
    try:
        schedule_filters = ScheduleFilters.model_validate(
            {**due.filters, "time_zone": due.time_zone}
        )
    except ValidationError as error:
        return _describe(error.errors(), ("filters",))
    try:
        options = ExportOptions.model_validate(due.options)
    except ValidationError as error:
        return _describe(error.errors(), ("options",))
    try:
        filters = resolve_schedule_filters(schedule_filters, filed_at=due.tick.at)
    except (ValidationError, ValueError) as error:
        return f"filters: {error}"
    problems = check_against_source(connection, catalog, filters, options)
    if problems:
        return describe_problems(problems)
    frozen = freeze_filters(filters, requested_at=due.tick.at)
    return _Request(source=catalog.source, filters=filters, frozen=frozen, options=options)


def _file_or_skip(
    session: Session, due: _DueTick, request: _Request | str, now: datetime
) -> Filing | None:
    tick = due.tick
    role = role_on_source(session, due.owner_id, due.source_id)
    error = request if isinstance(request, str) else None
    if role is None or not role.allows(Role.EXPORTER):
        error = (
            f"the schedule's owner {due.owner!r} no longer has the exporter role on source "
            f"{due.source_id}; an admin can delete the schedule, or give the role back"
        )

    if error is not None:
        if not skip_tick(session, tick, error=error, at=now):
            return None
        log.warning(
            "export schedule %s filed nothing for its tick at %s: %s",
            tick.schedule_id,
            tick.at.isoformat(),
            error,
        )
        return Filing(schedule_id=tick.schedule_id, tick=tick.at, error=error)

    assert isinstance(request, _Request)
    export = file_tick(
        session,
        tick,
        source=request.source,
        filters=request.filters,
        frozen=request.frozen,
        options=request.options,
    )
    if export is None:
        return None
    log.info(
        "export schedule %s filed export %s on source %d for its tick at %s",
        tick.schedule_id,
        export.id,
        due.source_id,
        tick.at.isoformat(),
    )
    return Filing(schedule_id=tick.schedule_id, tick=tick.at, export_id=export.id)


def _describe(errors: Sequence[Any], prefix: tuple[str, ...]) -> str:
    """Pydantic's errors as one line, each led by its field (`filters.statuses: ...`)."""
    parts = []
    for entry in errors:
        loc = [str(part) for part in entry["loc"]]
        parts.append(f"{'.'.join([*prefix, *loc])}: {entry['msg']}")
    return "; ".join(parts)
