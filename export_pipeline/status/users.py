"""Users, their API keys and their roles on sources.

A key is shown once, when it is issued; the table keeps its SHA-256 and a short
prefix to tell keys apart. Revoking a key or removing a role changes the rows every
request reads, so it takes effect with the next request.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.orm import Session, aliased, selectinload

from export_pipeline.status.audit import AuditAction, record_event
from export_pipeline.status.models import ApiKey, AuditEvent, Role, SourcePermission, User

API_KEY_PREFIX = "ep_"
API_KEY_SHOWN_CHARACTERS = 6
"""How many characters after `ep_` the stored prefix keeps, to tell keys apart."""
MAX_USER_NAME_LENGTH = 200


class LastAdminError(ValueError):
    """The change would leave a source without any admin."""

    def __init__(self, user_name: str, source_id: int) -> None:
        super().__init__(
            f"{user_name!r} is the last admin of source {source_id}; make another user admin first"
        )


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret (API key or link token), as stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_user_name(name: str) -> str:
    """The name without surrounding spaces; `ValueError` if it is blank, too long, or
    holds control or invisible formatting characters (a newline or a right-to-left mark
    would let a name pass for another in listings and logs)."""
    name = name.strip()
    if not name:
        msg = "a user name must not be blank"
        raise ValueError(msg)
    if len(name) > MAX_USER_NAME_LENGTH:
        msg = f"a user name must be at most {MAX_USER_NAME_LENGTH} characters"
        raise ValueError(msg)
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in name):
        msg = "a user name must not contain control or invisible formatting characters"
        raise ValueError(msg)
    if "/" in name:
        msg = "a user name must not contain '/': it is part of the API's member paths"
        raise ValueError(msg)
    return name


def create_user(session: Session, name: str) -> User:
    """A new user; `ValueError` if the name is not a valid one (`check_user_name`) or
    is taken, in any letter case, so that "Alice" cannot pass for "alice" in listings."""
    name = check_user_name(name)
    taken = taken_name(session, name)
    if taken is not None:
        msg = f"a user named {taken!r} already exists"
        raise ValueError(msg)
    user = User(name=name, created_at=datetime.now(UTC))
    session.add(user)
    session.flush()
    return user


def taken_name(session: Session, name: str) -> str | None:
    """The existing user name equal to `name` but for letter case, if there is one."""
    return session.scalar(select(User.name).where(func.lower(User.name) == name.lower()))


def find_user(session: Session, name: str) -> User | None:
    """The user of that name; surrounding spaces are ignored, as `create_user` drops them."""
    return session.scalar(select(User).where(User.name == name.strip()))


def list_users(session: Session) -> Sequence[User]:
    """Every user by name, with their roles and keys loaded."""
    return session.scalars(
        select(User)
        .options(selectinload(User.permissions), selectinload(User.api_keys))
        .order_by(User.name)
    ).all()


def create_api_key(session: Session, user: User) -> tuple[str, ApiKey]:
    """A new API key for `user` and its stored row; the returned key is the only time
    the key is ever visible."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey(
        user_id=user.id,
        key_hash=hash_secret(key),
        prefix=key[: len(API_KEY_PREFIX) + API_KEY_SHOWN_CHARACTERS],
        created_at=datetime.now(UTC),
    )
    session.add(api_key)
    session.flush()
    return key, api_key


def issue_api_key(session: Session, user: User) -> str:
    """A new API key for `user`; the only time the key is ever visible."""
    key, _ = create_api_key(session, user)
    return key


def authenticate(session: Session, key: str) -> User | None:
    """The user owning an unrevoked API key, or None."""
    api_key = find_active_api_key(session, key)
    return api_key.user if api_key else None


def find_active_api_key(session: Session, key: str) -> ApiKey | None:
    """The stored row of an unrevoked API key, or None."""
    return session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_secret(key), ApiKey.revoked_at.is_(None))
    )


def list_api_keys(session: Session, user_id: int) -> Sequence[ApiKey]:
    """Every key of the user, revoked ones included, oldest first."""
    return session.scalars(
        select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id)
    ).all()


def find_api_key(session: Session, user_id: int, key_id: int) -> ApiKey | None:
    """The user's key with that id; None for an unknown id or another user's key."""
    return session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id))


def revoke_api_key(session: Session, user_id: int, key_id: int, *, at: datetime) -> bool:
    """Revoke the user's key `key_id` from `at` on.

    True when this call revoked it; False when it was revoked already (which keeps
    its first revocation time) or is not a key of this user.
    """
    revoked = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=at)
        .execution_options(synchronize_session="fetch")
    )
    return revoked.rowcount > 0


def revoke_all_api_keys(session: Session, user_id: int, *, at: datetime) -> list[ApiKey]:
    """Revoke every unrevoked key of the user; returns the keys this call revoked."""
    active = session.scalars(
        select(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.id)
    ).all()
    return [key for key in active if revoke_api_key(session, user_id, key.id, at=at)]


def grant_role(
    session: Session, user: User, source_id: int, role: Role, *, keep_an_admin: bool = False
) -> Role | None:
    """Give `user` `role` on the source, replacing any role it had there; returns the
    role it had before.

    With `keep_an_admin`, demoting the source's last admin raises `LastAdminError`
    and changes nothing, even when two admins demote each other at the same moment.
    """
    previous = role_on_source(session, user.id, source_id)
    if previous is None:
        session.add(SourcePermission(user_id=user.id, source_id=source_id, role=role.value))
        session.flush()
        return None
    if previous is role:
        return previous

    statement = update(SourcePermission).where(*_permission_of(user, source_id))
    guarded = keep_an_admin and previous is Role.ADMIN
    if guarded:
        _lock_admins(session, source_id)
        statement = statement.where(_an_admin_remains(source_id))
    changed = session.execute(
        statement.values(role=role.value).execution_options(synchronize_session="fetch")
    )
    if guarded and changed.rowcount == 0:
        raise LastAdminError(user.name, source_id)
    return previous


def revoke_role(
    session: Session, user: User, source_id: int, *, keep_an_admin: bool = False
) -> Role | None:
    """Remove `user`'s role on the source; returns the role removed, None if it had none.

    With `keep_an_admin`, removing the source's last admin raises `LastAdminError`
    and changes nothing, even when two admins remove each other at the same moment.
    """
    previous = role_on_source(session, user.id, source_id)
    if previous is None:
        return None

    statement = delete(SourcePermission).where(*_permission_of(user, source_id))
    guarded = keep_an_admin and previous is Role.ADMIN
    if guarded:
        _lock_admins(session, source_id)
        statement = statement.where(_an_admin_remains(source_id))
    removed = session.execute(statement.execution_options(synchronize_session="fetch"))
    if guarded and removed.rowcount == 0:
        raise LastAdminError(user.name, source_id)
    return previous


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


def roles_of_user(session: Session, user_id: int) -> list[tuple[int, Role]]:
    """The user's (source id, role) pairs by source id."""
    rows = session.execute(
        select(SourcePermission.source_id, SourcePermission.role)
        .where(SourcePermission.user_id == user_id)
        .order_by(SourcePermission.source_id)
    )
    return [(source_id, Role(role)) for source_id, role in rows]


def members_of_source(session: Session, source_id: int) -> list[tuple[User, Role]]:
    """The users with a role on the source and their roles, by user name."""
    rows = session.execute(
        select(User, SourcePermission.role)
        .join(SourcePermission, SourcePermission.user_id == User.id)
        .where(SourcePermission.source_id == source_id)
        .order_by(User.name)
    )
    return [(user, Role(role)) for user, role in rows]


def admin_count(session: Session, source_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(SourcePermission)
            .where(
                SourcePermission.source_id == source_id, SourcePermission.role == Role.ADMIN.value
            )
        )
        or 0
    )


def record_role_event(
    session: Session,
    action: AuditAction,
    *,
    actor_id: int | None,
    user: User,
    source_id: int,
    role: Role,
    previous_role: Role | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Audit a role granted, changed or removed; `actor_id` None means an operator at
    the command line."""
    details: dict[str, Any] = {"user": user.name, "user_id": user.id, "role": role.value}
    if action is AuditAction.ROLE_GRANTED:
        details["previous_role"] = previous_role.value if previous_role else None
    return record_event(
        session, action, actor_id=actor_id, source_id=source_id, details=details, at=at
    )


def record_key_event(
    session: Session,
    action: AuditAction,
    *,
    actor_id: int | None,
    user: User,
    api_key: ApiKey,
    source_id: int | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Audit a key issued or revoked, naming it by id and prefix, never by the key.

    Keys belong to users, not sources: `source_id` is set only when the key was issued
    through a source (an admin adding a member).
    """
    details = {
        "user": user.name,
        "user_id": user.id,
        "key_id": api_key.id,
        "prefix": api_key.prefix,
    }
    return record_event(
        session, action, actor_id=actor_id, source_id=source_id, details=details, at=at
    )


def _permission_of(user: User, source_id: int) -> tuple[ColumnElement[bool], ...]:
    return (SourcePermission.user_id == user.id, SourcePermission.source_id == source_id)


def _an_admin_remains(source_id: int) -> ColumnElement[bool]:
    """True for a row that is not an admin role, or whose source has another admin.

    Checked inside the statement that changes the row, so SQLite (one writer at a
    time) cannot change two admins on one count."""
    others = aliased(SourcePermission)
    admins = (
        select(func.count())
        .select_from(others)
        .where(others.source_id == source_id, others.role == Role.ADMIN.value)
        .scalar_subquery()
    )
    return or_(SourcePermission.role != Role.ADMIN.value, admins > 1)


def _lock_admins(session: Session, source_id: int) -> None:
    """Lock the source's admin rows until the transaction ends (PostgreSQL).

    Without it, two transactions could each demote a different admin, both counting
    two admins in their snapshot. Locked, the second waits for the first and then
    counts again. SQLite has no row locks and needs none: its writers take turns.
    """
    session.execute(
        select(SourcePermission.user_id)
        .where(SourcePermission.source_id == source_id, SourcePermission.role == Role.ADMIN.value)
        .order_by(SourcePermission.user_id)
        .with_for_update()
    ).all()
