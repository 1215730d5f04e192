"""The audit log: who did what to which export, and when."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from export_pipeline.status.models import AuditEvent


class AuditAction(enum.StrEnum):
    REQUESTED = "requested"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LINK_ISSUED = "link_issued"
    DOWNLOADED = "downloaded"
    DENIED = "denied"
    EXPIRED = "expired"


def record_event(
    session: Session,
    action: AuditAction,
    *,
    actor_id: int | None = None,
    source_id: int | None = None,
    export_id: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Add an event to the session; it is written when the caller commits.

    `details` must never hold a token, an API key or lead contents.
    """
    event = AuditEvent(
        occurred_at=at or datetime.now(UTC),
        actor_id=actor_id,
        action=action.value,
        source_id=source_id,
        export_id=export_id,
        details=details or {},
    )
    session.add(event)
    return event
