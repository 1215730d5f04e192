"""The audit log: who did what to which export, and when."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CompoundSelect, case, select, union
from sqlalchemy.orm import Session

from export_pipeline.status.history import (
    Page,
    PageKey,
    canonical_time,
    cut_page,
    decode_cursor,
    listing_scope,
    rows_after,
)
from export_pipeline.status.models import AuditEvent, SourcePermission, User


class AuditAction(enum.StrEnum):
    REQUESTED = "requested"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LINK_ISSUED = "link_issued"
    LINK_REVOKED = "link_revoked"
    DOWNLOADED = "downloaded"
    DENIED = "denied"
    EXPIRED = "expired"
    ROLE_GRANTED = "role_granted"
    ROLE_REVOKED = "role_revoked"
    KEY_ISSUED = "key_issued"
    KEY_REVOKED = "key_revoked"


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


@dataclass(frozen=True)
class AuditFilters:
    """Which events an audit page shows; every filter given must hold.

    `occurred_from` is included and `occurred_to` excluded; both are aware.
    """

    actor: str | None = None
    """A user name."""
    actions: frozenset[AuditAction] = field(default_factory=frozenset)
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None

    def canonical(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "actions": sorted(action.value for action in self.actions),
            "occurred_from": canonical_time(self.occurred_from),
            "occurred_to": canonical_time(self.occurred_to),
        }


@dataclass(frozen=True)
class AuditEntry:
    """An audit event as people read it: the actor by name, None for the system or for
    someone the source does not know (`actor_outside`)."""

    id: int
    occurred_at: datetime
    actor: str | None
    action: str
    export_id: str | None
    details: dict[str, Any]
    actor_outside: bool = False


def read_audit_log(
    session: Session,
    source_id: int,
    filters: AuditFilters | None = None,
    *,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[AuditEntry]:
    """One page of the source's audit events, newest first by `(occurred_at, id)`.

    `CursorError` for a cursor that this listing did not issue. An event recorded
    later with an earlier time (the status sensor records a run's own start and end
    times, seconds after the fact) can land behind a page already read.
    """
    filters = filters or AuditFilters()
    canonical = filters.canonical()
    scope = listing_scope("audit", source_id, canonical)
    after = decode_cursor(cursor, scope, int) if cursor is not None else None

    known = AuditEvent.actor_id.in_(_actors_known_to(source_id))
    query = (
        select(AuditEvent, case((known, User.name), else_=None))
        .outerjoin(User, User.id == AuditEvent.actor_id)
        .where(AuditEvent.source_id == source_id)
    )
    if filters.actor is not None:
        query = query.where(User.name == filters.actor, known)
    if filters.actions:
        query = query.where(AuditEvent.action.in_(canonical["actions"]))
    if filters.occurred_from is not None:
        query = query.where(AuditEvent.occurred_at >= filters.occurred_from)
    if filters.occurred_to is not None:
        query = query.where(AuditEvent.occurred_at < filters.occurred_to)
    if after is not None:
        query = query.where(rows_after(AuditEvent.occurred_at, AuditEvent.id, after))
    rows = session.execute(
        query.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc()).limit(limit + 1)
    ).all()

    entries = [
        AuditEntry(
            id=event.id,
            occurred_at=event.occurred_at,
            actor=actor,
            action=event.action,
            export_id=event.export_id,
            details=event.details,
            actor_outside=event.actor_id is not None and actor is None,
        )
        for event, actor in rows
    ]
    return cut_page(entries, limit, lambda entry: PageKey(entry.occurred_at, entry.id), scope)


def _actors_known_to(source_id: int) -> CompoundSelect:
    """The users a source's admins may see named: those with a role on it now, and those
    who did anything on it but be refused (a former member, say). A user of another
    source who only knocked stays unnamed, or the log would tell who else uses the
    product."""
    return union(
        select(SourcePermission.user_id).where(SourcePermission.source_id == source_id),
        select(AuditEvent.actor_id).where(
            AuditEvent.source_id == source_id,
            AuditEvent.actor_id.is_not(None),
            AuditEvent.action != AuditAction.DENIED.value,
        ),
    )
