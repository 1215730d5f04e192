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
from export_pipeline.api.routes.keys import NewApiKeyOut
from export_pipeline.api.schemas import ErrorOut
from export_pipeline.status.audit import AuditAction
from export_pipeline.status.models import Role, User
from export_pipeline.status.users import (
    MAX_USER_NAME_LENGTH,
    LastAdminError,
    check_user_name,
    create_api_key,
    create_user,
    find_user,
    grant_role,
    members_of_source,
    record_key_event,
    record_role_event,
    revoke_role,
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
    if find_user(session, new_member.name) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, _name_taken(new_member.name))

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
    user = _find_user(session, name)

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


def _find_user(session: Session, name: str) -> User:
    user = find_user(session, name)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, USER_NOT_FOUND)
    return user


def _name_taken(name: str) -> str:
    return f"a user named {name!r} already exists; give it a role with PUT .../members/{name}"
