"""Expiring download links. A token is a UUID4 (122 random bits) shown once; only
its SHA-256 is stored, so a leaked table holds no usable link."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from export_pipeline.status.audit import AuditAction, record_event
from export_pipeline.status.models import DownloadLink, Export, User
from export_pipeline.status.users import hash_secret


class LinkState(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


def issue_link(
    session: Session, export: Export, user_id: int, *, ttl: timedelta, now: datetime
) -> tuple[str, DownloadLink]:
    """A new link to `export` for `user_id`; returns the token and its stored row."""
    token = str(uuid.uuid4())
    link = DownloadLink(
        token_hash=hash_secret(token),
        export_id=export.id,
        issued_to=user_id,
        issued_at=now,
        expires_at=now + ttl,
    )
    session.add(link)
    session.flush()
    return token, link


def find_link(session: Session, token: str) -> DownloadLink | None:
    try:
        canonical = str(uuid.UUID(token))
    except ValueError:
        return None
    return session.scalar(
        select(DownloadLink).where(DownloadLink.token_hash == hash_secret(canonical))
    )


def get_link(session: Session, link_id: int) -> DownloadLink | None:
    return session.get(DownloadLink, link_id)


def links_of_export(session: Session, export_id: str) -> Sequence[tuple[DownloadLink, str]]:
    """The export's links with the name of the user each was issued to, newest first."""
    rows = session.execute(
        select(DownloadLink, User.name)
        .join(User, User.id == DownloadLink.issued_to)
        .where(DownloadLink.export_id == export_id)
        .order_by(DownloadLink.issued_at.desc(), DownloadLink.id.desc())
    )
    return [(link, name) for link, name in rows]


def revoke_link(session: Session, link: DownloadLink, *, actor_id: int, at: datetime) -> bool:
    """Revoke `link` as of `at` and record who did it; the caller commits.

    One conditional UPDATE: a link that is already revoked keeps its first
    `revoked_at`, no event is recorded, and the result is False.
    """
    result = session.execute(
        update(DownloadLink)
        .where(DownloadLink.id == link.id, DownloadLink.revoked_at.is_(None))
        .values(revoked_at=at)
        .execution_options(synchronize_session=False)
    )
    session.refresh(link)
    if result.rowcount != 1:
        return False
    record_event(
        session,
        AuditAction.LINK_REVOKED,
        actor_id=actor_id,
        source_id=link.export.source_id,
        export_id=link.export_id,
        details={"link_id": link.id},
        at=at,
    )
    return True


def link_state(link: DownloadLink, now: datetime) -> LinkState:
    if link.revoked_at is not None:
        return LinkState.REVOKED
    if now >= link.expires_at:
        return LinkState.EXPIRED
    return LinkState.ACTIVE
