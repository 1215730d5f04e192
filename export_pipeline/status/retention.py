"""Retention in the status table: which exports are past it, and expiring one.

The files themselves are deleted by the retention job (`defs/retention`), which calls
`expire_export` only once a file is gone, so a completed export always has its file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session

from export_pipeline.status.audit import AuditAction, record_event
from export_pipeline.status.exports import UNSETTLED, mark_expired
from export_pipeline.status.models import DownloadLink, Export, ExportStatus


@dataclass(frozen=True)
class ExpiringFile:
    """A completed export past retention, and where its file is."""

    export_id: str
    file_uri: str | None
    completed_at: datetime


def retention_cutoff(as_of: datetime, retention_days: int) -> datetime:
    """Exports completed before this instant are past retention at `as_of`."""
    return as_of - timedelta(days=retention_days)


def exports_past_retention(
    session: Session,
    *,
    completed_before: datetime,
    after: ExpiringFile | None = None,
    limit: int = 500,
) -> list[ExpiringFile]:
    """Completed exports finished before `completed_before`, oldest first, a batch at a
    time: pass the last one of a batch as `after` for the next."""
    query = select(Export.id, Export.file_uri, Export.completed_at).where(
        Export.status == ExportStatus.COMPLETED.value,
        Export.completed_at < completed_before,
    )
    if after is not None:
        query = query.where(
            tuple_(Export.completed_at, Export.id) > tuple_(after.completed_at, after.export_id)
        )
    rows = session.execute(query.order_by(Export.completed_at, Export.id).limit(limit))
    return [ExpiringFile(export_id, uri, completed_at) for export_id, uri, completed_at in rows]


def expire_export(
    session: Session, export_id: str, *, at: datetime, retention_days: int
) -> int | None:
    """Mark a completed export `expired` and revoke its active download links, with an
    `expired` event and a `link_revoked` event per link (no actor: the system did it).

    `at` is when this happens, the real current time, never the reference time the
    retention period was counted back from: it becomes the export's `updated_at`, the
    links' `revoked_at` and the events' time. A link already revoked, or expired by `at`,
    keeps its state and time.

    Returns how many links were revoked, or None when the export is not completed
    (already expired, or gone): then nothing changes. The caller commits.
    """
    export = session.get(Export, export_id)
    if export is None:
        return None
    completed_at = export.completed_at
    details = {
        "retention_days": retention_days,
        "completed_at": completed_at.isoformat() if completed_at else None,
    }
    if not mark_expired(session, export, at=at, details=details):
        return None

    link_ids = session.scalars(
        select(DownloadLink.id).where(
            DownloadLink.export_id == export_id,
            DownloadLink.revoked_at.is_(None),
            DownloadLink.expires_at > at,
        )
    ).all()
    if link_ids:
        session.execute(
            update(DownloadLink)
            .where(DownloadLink.id.in_(link_ids), DownloadLink.revoked_at.is_(None))
            .values(revoked_at=at)
            .execution_options(synchronize_session=False)
        )
    for link_id in link_ids:
        record_event(
            session,
            AuditAction.LINK_REVOKED,
            source_id=export.source_id,
            export_id=export_id,
            details={"link_id": link_id, "reason": "the export expired"},
            at=at,
        )
    return len(link_ids)


def settled_partials(session: Session, partial_keys: Iterable[str]) -> list[str]:
    """The keys of `.partial/` folders that no run can still be writing: their export
    is neither pending nor processing, or does not exist. A folder's key is its
    export's id."""
    keys = sorted(set(partial_keys))
    if not keys:
        return []
    unsettled = set(
        session.scalars(
            select(Export.id).where(
                Export.id.in_(keys), Export.status.in_([status.value for status in UNSETTLED])
            )
        )
    )
    return [key for key in keys if key not in unsettled]
