"""Expiring download links. A token is a UUID4 (122 random bits) shown once; only
its SHA-256 is stored, so a leaked table holds no usable link."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from export_pipeline.status.models import DownloadLink, Export
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


def link_state(link: DownloadLink, now: datetime) -> LinkState:
    if link.revoked_at is not None:
        return LinkState.REVOKED
    if now >= link.expires_at:
        return LinkState.EXPIRED
    return LinkState.ACTIVE
