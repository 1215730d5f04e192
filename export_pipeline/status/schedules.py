"""Recurring exports: their definitions in the status table, and the ticks they file.

A schedule names a standard 5-field cron expression and an IANA time zone; its ticks
are the moments the expression matches in that zone, with cron's own daylight-saving
rules (cronsim follows Debian's cron): a tick at a time of day that the spring change
skips comes when the clocks have moved on (02:30 becomes 03:00), one in the hour that
the autumn change repeats comes once, and hourly ticks follow the clock.

`next_tick_at` holds the next tick to file. Filing a tick records it and moves
`next_tick_at` on in the same transaction as the export request, conditional on
`next_tick_at` being unchanged, so a tick is filed once even when two evaluations race
or the daemon restarts in between. Ticks missed while nothing evaluated (the daemon
was down) collapse into one: the latest of them is filed, and `next_tick_at` moves past
the present.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from export_pipeline.engine.filters import ExportFilters, FrozenFilters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import Source
from export_pipeline.status.audit import AuditAction, record_event
from export_pipeline.status.exports import request_export
from export_pipeline.status.models import AuditEvent, Export, ExportSchedule

CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
MAX_CRON_LENGTH = 100
MAX_ERROR_LENGTH = 2000


def check_cron(expression: str) -> str:
    """The expression with single spaces; `ValueError` saying what is wrong with it.

    Five fields, each as cron takes it (numbers, `*`, ranges, lists, steps, month and
    weekday names; cronsim's `L` and `#` too). The minute must be one number: a tick
    files a whole export, so a schedule fires at most once an hour.
    """
    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        msg = (
            f"a cron expression has {len(CRON_FIELDS)} fields ({', '.join(CRON_FIELDS)}), "
            f"such as '0 6 * * 1' for 06:00 every Monday; {expression!r} has {len(fields)}"
        )
        raise ValueError(msg)
    if not fields[0].isdigit():
        msg = (
            f"the minute field must be a single number such as 0 or 30, not {fields[0]!r}: "
            "a schedule files at most one export an hour"
        )
        raise ValueError(msg)
    normalized = " ".join(fields)
    try:
        ticks = CronSim(normalized, datetime(2000, 1, 1, tzinfo=UTC))
        next(ticks)
    except CronSimError as error:
        msg = f"{expression!r} is not a valid cron expression: {error}"
        raise ValueError(msg) from None
    except StopIteration:
        msg = f"{expression!r} never matches a date; check its day, month and weekday"
        raise ValueError(msg) from None
    return normalized


def describe_cron(expression: str) -> str:
    """An English description, such as 'At 06:00 on Monday'."""
    return CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC)).explain()


def next_tick(expression: str, time_zone: str, after: datetime) -> datetime:
    """The first tick strictly after `after` (aware), as a UTC instant."""
    zone = ZoneInfo(time_zone)
    return next(CronSim(expression, after.astimezone(zone))).astimezone(UTC)


def plan_tick(
    expression: str, time_zone: str, due: datetime, now: datetime
) -> tuple[datetime, datetime]:
    """For a schedule whose next tick `due` is at or before `now`: the tick to file (the
    latest one at or before `now`, `due` itself unless ticks were missed) and the tick
    after it, which lies after `now`. All UTC instants."""
    zone = ZoneInfo(time_zone)
    latest = due
    for tick in CronSim(expression, due.astimezone(zone)):
        following = tick.astimezone(UTC)
        if following > now:
            return latest, following
        latest = following
    msg = f"{expression!r} has no tick after {latest.isoformat()}"
    raise ValueError(msg)


def create_schedule(
    session: Session,
    *,
    source_id: int,
    owner_id: int,
    name: str,
    cron: str,
    time_zone: str,
    filters: dict[str, Any],
    options: dict[str, Any],
    enabled: bool,
    now: datetime,
) -> ExportSchedule:
    """A new schedule whose first tick is the first after `now`; the caller commits.

    `cron`, `time_zone`, `filters` and `options` must be validated already."""
    schedule = ExportSchedule(
        id=str(uuid.uuid4()),
        source_id=source_id,
        owner_id=owner_id,
        name=name,
        cron=cron,
        time_zone=time_zone,
        filters=filters,
        options=options,
        enabled=enabled,
        created_at=now,
        updated_at=now,
        next_tick_at=next_tick(cron, time_zone, now) if enabled else None,
    )
    session.add(schedule)
    session.flush()
    return schedule


def get_schedule(session: Session, schedule_id: str) -> ExportSchedule | None:
    """The schedule with this id in any UUID spelling; None when malformed or unknown."""
    try:
        canonical = str(uuid.UUID(schedule_id))
    except ValueError:
        return None
    return session.get(ExportSchedule, canonical)


def list_schedules(session: Session, source_id: int) -> Sequence[ExportSchedule]:
    """The source's schedules, oldest first."""
    return session.scalars(
        select(ExportSchedule)
        .where(ExportSchedule.source_id == source_id)
        .order_by(ExportSchedule.created_at, ExportSchedule.id)
    ).all()


def update_schedule(
    session: Session, schedule: ExportSchedule, changes: dict[str, Any], *, now: datetime
) -> ExportSchedule:
    """Apply validated `changes` (column names to values); the caller commits.

    Resuming, or changing the cron expression or time zone, counts ticks afresh from
    `now`: ticks that fell while the schedule was paused are never filed. Pausing
    clears `next_tick_at`.
    """
    timing = {"cron", "time_zone", "enabled"}
    retimed = any(
        key in timing and getattr(schedule, key) != value for key, value in changes.items()
    )
    for key, value in changes.items():
        setattr(schedule, key, value)
    if retimed:
        schedule.next_tick_at = (
            next_tick(schedule.cron, schedule.time_zone, now) if schedule.enabled else None
        )
    schedule.updated_at = now
    session.flush()
    return schedule


def delete_schedule(session: Session, schedule: ExportSchedule) -> None:
    """Delete the schedule; the exports it filed stay, with their `schedule_id`."""
    session.delete(schedule)
    session.flush()


def due_schedules(session: Session, *, now: datetime, limit: int = 50) -> Sequence[ExportSchedule]:
    """Enabled schedules whose next tick is at or before `now`, most overdue first."""
    return session.scalars(
        select(ExportSchedule)
        .where(ExportSchedule.enabled.is_(True), ExportSchedule.next_tick_at <= now)
        .order_by(ExportSchedule.next_tick_at, ExportSchedule.id)
        .limit(limit)
    ).all()


@dataclass(frozen=True)
class Tick:
    """One tick of a schedule as a sensor evaluation handles it."""

    schedule_id: str
    due: datetime
    """The schedule's `next_tick_at` when the evaluation read it."""
    at: datetime
    """The tick filed: the export's request time and the filters' reference time."""
    following: datetime | None
    """The next tick after this one, later than the evaluation time; None when the
    expression matches no later date (the schedule then files nothing more)."""


def file_tick(
    session: Session,
    tick: Tick,
    *,
    source: Source,
    filters: ExportFilters,
    frozen: FrozenFilters,
    options: ExportOptions,
) -> Export | None:
    """Request the export of `tick` as the schedule's owner and record the tick as filed,
    in the caller's transaction. None when the tick is no longer the schedule's next
    (another evaluation filed it, or the schedule was paused, changed or deleted): then
    nothing is written."""
    schedule = session.get(ExportSchedule, tick.schedule_id)
    if schedule is None:
        return None
    if not _claim(session, tick, last_export_id=None, last_error=None, error_at=None):
        return None
    export = request_export(
        session,
        source=source,
        requested_by=schedule.owner_id,
        filters=filters,
        frozen=frozen,
        options=options,
        requested_at=tick.at,
    )
    export.schedule_id = schedule.id
    schedule.last_export_id = export.id
    requested = session.scalars(
        select(AuditEvent).where(
            AuditEvent.export_id == export.id, AuditEvent.action == AuditAction.REQUESTED.value
        )
    ).one()
    requested.details = {
        **requested.details,
        "schedule_id": schedule.id,
        "scheduled_for": tick.at.isoformat(),
    }
    session.flush()
    return export


def skip_tick(session: Session, tick: Tick, *, error: str, at: datetime) -> bool:
    """Record that `tick` filed nothing because of `error`: on the schedule as its last
    error, and as a `failed` event without an export. False, with nothing written, when
    the tick is no longer the schedule's next."""
    error = error[:MAX_ERROR_LENGTH]
    schedule = session.get(ExportSchedule, tick.schedule_id)
    if schedule is None:
        return False
    previous_export = schedule.last_export_id
    if not _claim(session, tick, last_export_id=previous_export, last_error=error, error_at=at):
        return False
    record_event(
        session,
        AuditAction.FAILED,
        source_id=schedule.source_id,
        details={
            "schedule_id": schedule.id,
            "schedule": schedule.name,
            "scheduled_for": tick.at.isoformat(),
            "error": error,
        },
        at=at,
    )
    return True


def _claim(
    session: Session,
    tick: Tick,
    *,
    last_export_id: str | None,
    last_error: str | None,
    error_at: datetime | None,
) -> bool:
    """Move the schedule past `tick`, if its next tick is still `tick.due`."""
    result = session.execute(
        update(ExportSchedule)
        .where(
            ExportSchedule.id == tick.schedule_id,
            ExportSchedule.enabled.is_(True),
            ExportSchedule.next_tick_at == tick.due,
        )
        .values(
            next_tick_at=tick.following,
            last_tick_at=tick.at,
            last_export_id=last_export_id,
            last_error=last_error,
            last_error_at=error_at,
        )
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount == 1
