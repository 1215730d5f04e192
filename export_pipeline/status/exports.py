"""Export requests and their lifecycle in the status table.

`pending -> processing -> completed | failed`, and `cancelled` from either of the
first two. Each transition is one conditional UPDATE, so two processes racing to move
the same export cannot move it backwards or twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select, true, update
from sqlalchemy.orm import Session

from export_pipeline.engine.filters import ExportFilters, FrozenFilters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import Source
from export_pipeline.settings import Settings
from export_pipeline.status.audit import AuditAction, record_event
from export_pipeline.status.history import read_history
from export_pipeline.status.models import Export, ExportStatus
from export_pipeline.status.notifications import enqueue_export_notifications
from export_pipeline.storage import FileFacts

UNSETTLED = (ExportStatus.PENDING, ExportStatus.PROCESSING)
DEFAULT_LARGE_EXPORT_LEADS: int = Settings.model_fields["large_export_leads"].default
"""The default of the `large_export_leads` setting, for callers without settings."""


def export_file_name(source: Source, requested_at: datetime, export_id: str, suffix: str) -> str:
    """`<source slug>_<UTC request time>_<first 8 of the export id><suffix>`: sortable by
    time and unique per export even for requests in the same second."""
    stamp = requested_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{source.slug}_{stamp}_{export_id[:8]}{suffix}"


def request_export(
    session: Session,
    *,
    source: Source,
    requested_by: int,
    filters: ExportFilters,
    frozen: FrozenFilters,
    options: ExportOptions,
    requested_at: datetime,
    retry_of: str | None = None,
) -> Export:
    """Persist a pending export request and its audit event; the caller commits.
    `retry_of` names the failed or cancelled export this one repeats: while one retry of
    it is pending or processing, another makes the flush or commit fail with an
    integrity error (see `unsettled_retry`)."""
    export_id = str(uuid.uuid4())
    export = Export(
        id=export_id,
        source_id=source.source_id,
        file_name=export_file_name(source, requested_at, export_id, options.file_suffix),
        requested_by=requested_by,
        requested_at=requested_at,
        status=ExportStatus.PENDING.value,
        filters=filters.model_dump(mode="json"),
        frozen_filters=frozen.to_json(),
        options=options.model_dump(mode="json"),
        updated_at=requested_at,
        retry_of=retry_of,
    )
    session.add(export)
    record_event(
        session,
        AuditAction.REQUESTED,
        actor_id=requested_by,
        source_id=source.source_id,
        export_id=export_id,
        details={"retry_of": retry_of} if retry_of else {},
        at=requested_at,
    )
    session.flush()
    return export


def get_export(session: Session, export_id: str) -> Export | None:
    return session.get(Export, export_id)


def unsettled_retry(session: Session, original_id: str) -> Export | None:
    """The pending or processing retry of `original_id`; there is at most one."""
    return session.scalar(
        select(Export).where(
            Export.retry_of == original_id,
            Export.status.in_([status.value for status in UNSETTLED]),
        )
    )


def list_exports(session: Session, source_id: int, *, limit: int = 100) -> Sequence[Export]:
    """The source's newest exports, newest request first; `history.read_history` pages
    through them all and filters them."""
    return read_history(session, source_id, limit=limit).items


def exports_awaiting_run(
    session: Session, *, limit: int = 100, requested_before: datetime | None = None
) -> Sequence[Export]:
    """Pending exports no Dagster run has picked up yet, oldest first; only those
    requested before `requested_before`, if given."""
    recent = Export.requested_at < requested_before if requested_before is not None else true()
    return session.scalars(
        select(Export)
        .where(
            Export.status == ExportStatus.PENDING.value,
            Export.dagster_run_id.is_(None),
            recent,
        )
        .order_by(Export.requested_at)
        .limit(limit)
    ).all()


def unsettled_exports(session: Session) -> Sequence[Export]:
    """Exports whose run has not reached a terminal state as far as this table knows."""
    return session.scalars(
        select(Export).where(Export.status.in_([status.value for status in UNSETTLED]))
    ).all()


def attach_run(session: Session, export_id: str, run_id: str, *, at: datetime) -> bool:
    """Record the Dagster run of a pending export; False if it already had one."""
    result = session.execute(
        update(Export)
        .where(Export.id == export_id, Export.dagster_run_id.is_(None))
        .values(dagster_run_id=run_id, updated_at=at)
    )
    return result.rowcount == 1


def mark_processing(session: Session, export: Export, *, at: datetime) -> bool:
    changed = _transition(
        session,
        export,
        ExportStatus.PROCESSING,
        from_statuses=(ExportStatus.PENDING,),
        values={"started_at": at},
        at=at,
    )
    if changed:
        record_event(
            session,
            AuditAction.STARTED,
            source_id=export.source_id,
            export_id=export.id,
            details={"dagster_run_id": export.dagster_run_id},
            at=at,
        )
    return changed


def mark_completed(
    session: Session,
    export: Export,
    *,
    lead_count: int,
    facts: FileFacts,
    at: datetime,
    large_threshold: int = DEFAULT_LARGE_EXPORT_LEADS,
) -> bool:
    """Record a finished file; the `completed` event says `large` when the export has at
    least `large_threshold` leads, so the statistics keep the threshold of that time.
    The requester's notifications are queued in the same transaction."""
    changed = _transition(
        session,
        export,
        ExportStatus.COMPLETED,
        from_statuses=UNSETTLED,
        values={
            "started_at": export.started_at or at,
            "completed_at": at,
            "lead_count": lead_count,
            "file_uri": facts.uri,
            "file_size": facts.size,
            "sha256": facts.sha256,
        },
        at=at,
    )
    if changed:
        record_event(
            session,
            AuditAction.COMPLETED,
            source_id=export.source_id,
            export_id=export.id,
            details={
                "lead_count": lead_count,
                "file_size": facts.size,
                "large": lead_count >= large_threshold,
            },
            at=at,
        )
        enqueue_export_notifications(session, export, at=at)
    return changed


def mark_failed(session: Session, export: Export, *, error: str, at: datetime) -> bool:
    """Record a failure and its readable reason, and queue the requester's notifications
    in the same transaction."""
    changed = _transition(
        session,
        export,
        ExportStatus.FAILED,
        from_statuses=UNSETTLED,
        values={"completed_at": at, "error": error},
        at=at,
    )
    if changed:
        record_event(
            session,
            AuditAction.FAILED,
            source_id=export.source_id,
            export_id=export.id,
            details={"error": error},
            at=at,
        )
        enqueue_export_notifications(session, export, at=at)
    return changed


def mark_cancelled(
    session: Session, export: Export, *, at: datetime, actor_id: int | None = None
) -> bool:
    changed = _transition(
        session,
        export,
        ExportStatus.CANCELLED,
        from_statuses=UNSETTLED,
        values={"completed_at": at},
        at=at,
    )
    if changed:
        record_event(
            session,
            AuditAction.CANCELLED,
            actor_id=actor_id,
            source_id=export.source_id,
            export_id=export.id,
            at=at,
        )
    return changed


def mark_expired(
    session: Session, export: Export, *, at: datetime, details: dict[str, object] | None = None
) -> bool:
    """`completed -> expired`, once retention has deleted the file, with an `expired`
    event holding `details`; False for an export that is not completed (already
    expired, say). The file's facts stay, for the history."""
    changed = _transition(
        session,
        export,
        ExportStatus.EXPIRED,
        from_statuses=(ExportStatus.COMPLETED,),
        values={},
        at=at,
    )
    if changed:
        record_event(
            session,
            AuditAction.EXPIRED,
            source_id=export.source_id,
            export_id=export.id,
            details=details,
            at=at,
        )
    return changed


def start_attempt(session: Session, export_id: str, *, at: datetime) -> int:
    """Count a run's attempt at the export (retries included) and note it alive;
    returns the attempt's number, from 1."""
    session.execute(
        update(Export)
        .where(Export.id == export_id)
        .values(attempts=Export.attempts + 1, heartbeat_at=at, leads_written=0, updated_at=at)
    )
    return session.scalar(select(Export.attempts).where(Export.id == export_id)) or 1


def record_progress(
    session: Session, export_id: str, *, written: int, total: int | None, at: datetime
) -> ExportStatus | None:
    """Note how far the run is, as a heartbeat; returns the export's status, so that
    the run learns of a cancellation, or None if the export is gone."""
    session.execute(
        update(Export)
        .where(Export.id == export_id)
        .values(leads_written=written, lead_total=total, heartbeat_at=at)
    )
    current = session.scalar(select(Export.status).where(Export.id == export_id))
    return ExportStatus(current) if current else None


def silent_exports(session: Session, *, since: datetime) -> Sequence[Export]:
    """Processing exports whose run has given no sign of life since `since`."""
    return session.scalars(
        select(Export).where(
            Export.status == ExportStatus.PROCESSING.value,
            Export.heartbeat_at.is_not(None),
            Export.heartbeat_at < since,
        )
    ).all()


def recently_cancelled(session: Session, *, since: datetime) -> Sequence[Export]:
    """Exports cancelled at or after `since`, whose runs may still need stopping."""
    return session.scalars(
        select(Export).where(
            Export.status == ExportStatus.CANCELLED.value, Export.completed_at >= since
        )
    ).all()


def _transition(
    session: Session,
    export: Export,
    to: ExportStatus,
    *,
    from_statuses: Sequence[ExportStatus],
    values: dict[str, object],
    at: datetime,
) -> bool:
    result = session.execute(
        update(Export)
        .where(Export.id == export.id, Export.status.in_([s.value for s in from_statuses]))
        .values(status=to.value, updated_at=at, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    session.refresh(export)
    return True
