"""The members of a source: who has which role on it. Only its admins manage them.

A source always keeps at least one admin, so it never becomes unmanageable through
the API; operators can still do anything with `export-pipeline users`. A role
removed or lowered here takes effect with the user's next request.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from export_pipeline.api.deps import CurrentUser, SessionDep, SourceAccess, SourceAccessDep
from export_pipeline.api.errors import error_responses
from export_pipeline.api.routes.keys import KEY_NOT_FOUND, MAX_KEY_ID, NewApiKeyOut
from export_pipeline.api.schemas import ErrorOut
from export_pipeline.status.audit import AuditAction
from export_pipeline.status.models import Role, User
from export_pipeline.status.users import (
    MAX_USER_NAME_LENGTH,
    LastAdminError,
    check_user_name,
    create_api_key,
    create_user,
    find_api_key,
    find_user,
    grant_role,
    list_api_keys,
    members_of_source,
    record_key_event,
    record_role_event,
    revoke_api_key,
    revoke_role,
    role_on_source,
    roles_of_user,
    taken_name,
)

log = logging.getLogger(__name__)

router = APIRouter(tags=["members"])

USER_NOT_FOUND = "user not found"
MEMBER_PATH = "/sources/{source_id}/members/{name:path}"
"""`:path` so that a name holding a `/` (possible from the command line) is reachable."""


class MemberOut(BaseModel):
    name: str
    role: Role


class MemberList(BaseModel):
    items: list[MemberOut] = Field(description="By user name.")


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


UserName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_USER_NAME_LENGTH),
    AfterValidator(check_user_name),
]


class NewMember(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: UserName = Field(description="A name no user has yet; surrounding spaces are dropped.")
    role: Role


class NewMemberOut(BaseModel):
    name: str
    role: Role
    api_key: NewApiKeyOut = Field(
        description="The new user's first API key, shown only in this answer."
    )


def get_admin_access(access: SourceAccessDep) -> SourceAccess:
    """The caller's access to the path's source: 404 without a role, 403 below admin.

    A dependency, so that a caller below admin gets 403 before the body is checked."""
    access.require(Role.ADMIN)
    return access


AdminAccessDep = Annotated[SourceAccess, Depends(get_admin_access)]

CONFLICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    status.HTTP_409_CONFLICT: {
        "model": ErrorOut,
        "description": "The change would leave the source without an admin, or the name is taken.",
    }
}
ADMIN_ERRORS = (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN, status.HTTP_404_NOT_FOUND)


@router.get(
    "/sources/{source_id}/members",
    summary="List the users with a role on a source",
    description="Needs the admin role.",
    responses=error_responses(*ADMIN_ERRORS),
)
def read_members(access: AdminAccessDep, session: SessionDep) -> MemberList:
    members = members_of_source(session, access.source_id)
    return MemberList(items=[MemberOut(name=user.name, role=role) for user, role in members])


@router.post(
    "/sources/{source_id}/members",
    status_code=status.HTTP_201_CREATED,
    summary="Create a user with a role on a source",
    description=(
        "Creates the user and answers with its first API key, once: hand it to the user. "
        "To give a role to an existing user, use `PUT .../members/{name}`. Needs the admin "
        "role."
    ),
    responses={**error_responses(*ADMIN_ERRORS), **CONFLICT_RESPONSES},
)
def create_member(
    access: AdminAccessDep, session: SessionDep, actor: CurrentUser, new_member: NewMember
) -> NewMemberOut:
    source_id = access.source_id
    taken = taken_name(session, new_member.name)
    if taken is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, _name_taken(taken))

    now = datetime.now(UTC)
    try:
        user = create_user(session, new_member.name)
        grant_role(session, user, source_id, new_member.role)
        key, row = create_api_key(session, user)
    except IntegrityError:
        # Another request created a user of that name since the check above.
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, _name_taken(new_member.name)) from None
    record_role_event(
        session,
        AuditAction.ROLE_GRANTED,
        actor_id=actor.id,
        user=user,
        source_id=source_id,
        role=new_member.role,
        at=now,
    )
    record_key_event(
        session,
        AuditAction.KEY_ISSUED,
        actor_id=actor.id,
        user=user,
        api_key=row,
        source_id=source_id,
        at=now,
    )
    session.commit()
    log.info(
        "user %d created by user %d with role %s on source %d and API key %d",
        user.id,
        actor.id,
        new_member.role.value,
        source_id,
        row.id,
    )

    return NewMemberOut(
        name=user.name, role=new_member.role, api_key=NewApiKeyOut.from_key(key, row)
    )


KEYS_PATH = "/sources/{source_id}/members/{name}/keys"


class MemberKeyOut(BaseModel):
    id: int
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    created_at: datetime
    revoked_at: datetime | None = Field(description="Set once the key stopped working.")


class MemberKeyList(BaseModel):
    items: list[MemberKeyOut] = Field(description="Oldest key first, revoked keys included.")


# Declared before MEMBER_PATH, whose `:path` name would otherwise take ".../keys" in.
@router.get(
    KEYS_PATH,
    summary="List a member's API keys",
    description=(
        "Ids and prefixes only, never a key. A user without a role on the source is 404. "
        "Needs the admin role."
    ),
    responses=error_responses(*ADMIN_ERRORS),
)
def read_member_keys(access: AdminAccessDep, session: SessionDep, name: str) -> MemberKeyList:
    user = _find_member(session, name, access.source_id)
    return MemberKeyList(
        items=[
            MemberKeyOut(
                id=key.id, prefix=key.prefix, created_at=key.created_at, revoked_at=key.revoked_at
            )
            for key in list_api_keys(session, user.id)
        ]
    )


@router.post(
    KEYS_PATH,
    status_code=status.HTTP_201_CREATED,
    summary="Create another API key for a member",
    description=(
        "Answers with the new key, once: hand it to the user; their other keys keep "
        "working. A key works on every source of its user, so this needs the admin role "
        "on each source the member has a role on (403 otherwise)."
    ),
    responses=error_responses(*ADMIN_ERRORS),
)
def create_member_key(
    access: AdminAccessDep, session: SessionDep, actor: CurrentUser, name: str
) -> NewApiKeyOut:
    user = _find_member(session, name, access.source_id)
    _require_admin_of_every_source(session, actor, user, doing="issue a key for")

    now = datetime.now(UTC)
    key, row = create_api_key(session, user)
    record_key_event(
        session,
        AuditAction.KEY_ISSUED,
        actor_id=actor.id,
        user=user,
        api_key=row,
        source_id=access.source_id,
        at=now,
    )
    session.commit()
    log.info("API key %d issued to user %d by user %d", row.id, user.id, actor.id)

    return NewApiKeyOut.from_key(key, row)


@router.delete(
    KEYS_PATH + "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a member's API key",
    description=(
        "The key stops working at once, on every source of its user, so this needs the "
        "admin role on each source the member has a role on (403 otherwise; removing "
        "the member's role here stops their access to this source whatever their keys). "
        "Revoking a revoked key changes nothing; another user's key id is 404. Needs the "
        "admin role."
    ),
    responses=error_responses(*ADMIN_ERRORS),
)
def revoke_member_key(
    access: AdminAccessDep, session: SessionDep, actor: CurrentUser, name: str, key_id: int
) -> Response:
    user = _find_member(session, name, access.source_id)
    row = find_api_key(session, user.id, key_id) if 0 < key_id <= MAX_KEY_ID else None
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, KEY_NOT_FOUND)
    _require_admin_of_every_source(session, actor, user, doing="revoke a key of")

    now = datetime.now(UTC)
    if revoke_api_key(session, user.id, row.id, at=now):
        record_key_event(
            session,
            AuditAction.KEY_REVOKED,
            actor_id=actor.id,
            user=user,
            api_key=row,
            source_id=access.source_id,
            at=now,
        )
        log.info("API key %d of user %d revoked by user %d", row.id, user.id, actor.id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    MEMBER_PATH,
    summary="Give an existing user a role on a source, or change it",
    description=(
        "The last admin of a source cannot be demoted (409). An unknown user is 404; "
        "`POST .../members` creates users. Needs the admin role."
    ),
    responses={**error_responses(*ADMIN_ERRORS), **CONFLICT_RESPONSES},
)
def put_member(
    access: AdminAccessDep,
    session: SessionDep,
    actor: CurrentUser,
    name: str,
    change: RoleChange,
) -> MemberOut:
    source_id = access.source_id
    user = _find_user(session, name)

    now = datetime.now(UTC)
    try:
        previous = grant_role(session, user, source_id, change.role, keep_an_admin=True)
    except LastAdminError as error:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    if previous is not change.role:
        record_role_event(
            session,
            AuditAction.ROLE_GRANTED,
            actor_id=actor.id,
            user=user,
            source_id=source_id,
            role=change.role,
            previous_role=previous,
            at=now,
        )
        log.info(
            "user %d given role %s on source %d by user %d",
            user.id,
            change.role.value,
            source_id,
            actor.id,
        )
    session.commit()

    return MemberOut(name=user.name, role=change.role)


@router.delete(
    MEMBER_PATH,
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a user's role on a source",
    description=(
        "The user loses access to the source, its exports and their download links with "
        "the next request. The last admin of a source cannot be removed (409). A user "
        "without a role on the source is 404. Needs the admin role."
    ),
    responses={**error_responses(*ADMIN_ERRORS), **CONFLICT_RESPONSES},
)
def delete_member(
    access: AdminAccessDep, session: SessionDep, actor: CurrentUser, name: str
) -> Response:
    source_id = access.source_id
    user = _find_member(session, name, source_id)

    now = datetime.now(UTC)
    try:
        removed = revoke_role(session, user, source_id, keep_an_admin=True)
    except LastAdminError as error:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    if removed is None:
        msg = f"user {user.name!r} has no role on source {source_id}"
        raise HTTPException(status.HTTP_404_NOT_FOUND, msg)
    record_role_event(
        session,
        AuditAction.ROLE_REVOKED,
        actor_id=actor.id,
        user=user,
        source_id=source_id,
        role=removed,
        at=now,
    )
    session.commit()
    log.info(
        "role %s of user %d on source %d removed by user %d", removed, user.id, source_id, actor.id
    )

    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _find_member(session: Session, name: str, source_id: int) -> User:
    """The user of that name with a role on the source; 404 alike for an unknown user
    and for a user of other sources only, so that names cannot be probed."""
    user = find_user(session, name)
    if user is None or role_on_source(session, user.id, source_id) is None:
        msg = f"user {name!r} has no role on source {source_id}"
        raise HTTPException(status.HTTP_404_NOT_FOUND, msg)
    return user


def _require_admin_of_every_source(
    session: Session, actor: User, member: User, *, doing: str
) -> None:
    """403 unless the caller administers every source the member has a role on: a key
    opens all of them."""
    if member.id == actor.id:
        return
    for source_id, _role in roles_of_user(session, member.id):
        if role_on_source(session, actor.id, source_id) is not Role.ADMIN:
            msg = (
                f"only an admin of every source of user {member.name!r} may {doing} them; "
                "remove their role on this source instead to end their access here"
            )
            raise HTTPException(status.HTTP_403_FORBIDDEN, msg)


def _find_user(session: Session, name: str) -> User:
    user = find_user(session, name)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, USER_NOT_FOUND)
    return user


def _name_taken(name: str) -> str:
    return f"a user named {name!r} already exists; give it a role with PUT .../members/{name}"
