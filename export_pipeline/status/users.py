"""Users, their API keys and their roles on sources."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from export_pipeline.status.models import ApiKey, Role, SourcePermission, User

API_KEY_PREFIX = "ep_"


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret (API key or link token), as stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_user(session: Session, name: str) -> User:
    """A new user; `ValueError` if the name is blank or taken."""
    name = name.strip()
    if not name:
        msg = "a user name must not be blank"
        raise ValueError(msg)
    if session.scalar(select(User).where(User.name == name)) is not None:
        msg = f"a user named {name!r} already exists"
        raise ValueError(msg)
    user = User(name=name, created_at=datetime.now(UTC))
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, name: str) -> User | None:
    """The user of that name; surrounding spaces are ignored, as `create_user` drops them."""
    return session.scalar(select(User).where(User.name == name.strip()))


def issue_api_key(session: Session, user: User) -> str:
    """A new API key for `user`; the only time the key is ever visible."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            user_id=user.id,
            key_hash=hash_secret(key),
            prefix=key[: len(API_KEY_PREFIX) + 6],
            created_at=datetime.now(UTC),
        )
    )
    session.flush()
    return key


def authenticate(session: Session, key: str) -> User | None:
    """The user owning an unrevoked API key, or None."""
    api_key = session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_secret(key), ApiKey.revoked_at.is_(None))
    )
    return api_key.user if api_key else None


def grant_role(session: Session, user: User, source_id: int, role: Role) -> None:
    """Give `user` `role` on the source, replacing any role it had there."""
    permission = session.get(SourcePermission, (user.id, source_id))
    if permission is None:
        session.add(SourcePermission(user_id=user.id, source_id=source_id, role=role.value))
    else:
        permission.role = role.value
    session.flush()


def role_on_source(session: Session, user_id: int, source_id: int) -> Role | None:
    permission = session.get(SourcePermission, (user_id, source_id))
    return Role(permission.role) if permission else None


def readable_source_ids(session: Session, user_id: int) -> list[int]:
    rows = session.scalars(
        select(SourcePermission.source_id)
        .where(SourcePermission.user_id == user_id)
        .order_by(SourcePermission.source_id)
    )
    return list(rows)
