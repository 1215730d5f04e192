"""The caller's own account: who they are, their roles, their email and their API keys.

Every user may manage their own keys, whatever their roles. A key is shown once, in
the answer that creates it; listings show its id and prefix only.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field, field_validator

from export_pipeline.api.deps import CurrentUser, SessionDep, bearer_scheme
from export_pipeline.api.errors import error_responses
from export_pipeline.status.audit import AuditAction
from export_pipeline.status.models import ApiKey, Role
from export_pipeline.status.notifications import normalize_email, set_user_email
from export_pipeline.status.users import (
    create_api_key,
    find_api_key,
    hash_secret,
    list_api_keys,
    record_key_event,
    revoke_api_key,
    roles_of_user,
)

log = logging.getLogger(__name__)

router = APIRouter(tags=["keys"])

KEY_NOT_FOUND = "API key not found"
MAX_KEY_ID = 2**31 - 1
"""Key ids are 32-bit integers in the status table."""


class SourceRoleOut(BaseModel):
    source_id: int
    role: Role


class MeOut(BaseModel):
    name: str
    roles: list[SourceRoleOut] = Field(description="The caller's role on each source, by id.")


class MeUpdatedOut(MeOut):
    email: str | None = Field(
        description="Where mail about the caller's exports goes; null for none."
    )


class MeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(
        default=None,
        max_length=320,
        description=(
            "Where to mail when the caller's exports complete or fail; null stops the mail. "
            "Left out, the address stays as it is."
        ),
        examples=["ada@example.com"],
    )

    @field_validator("email")
    @classmethod
    def _valid_address(cls, email: str | None) -> str | None:
        return normalize_email(email) if email is not None else None


class ApiKeyOut(BaseModel):
    id: int
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    created_at: datetime
    revoked_at: datetime | None = Field(description="Set once the key stopped working.")
    current: bool = Field(description="Whether this request was made with this key.")


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut] = Field(description="Oldest key first, revoked keys included.")


class NewApiKeyOut(BaseModel):
    id: int
    key: str = Field(
        description="The API key. It is shown only in this answer: only its hash is stored."
    )
    prefix: str
    created_at: datetime

    @classmethod
    def from_key(cls, key: str, row: ApiKey) -> NewApiKeyOut:
        return cls(id=row.id, key=key, prefix=row.prefix, created_at=row.created_at)


RequestCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


@router.get(
    "/me",
    summary="Read the caller's name and roles",
    responses=error_responses(status.HTTP_401_UNAUTHORIZED),
)
def read_me(session: SessionDep, user: CurrentUser) -> MeOut:
    roles = roles_of_user(session, user.id)
    return MeOut(
        name=user.name,
        roles=[SourceRoleOut(source_id=source_id, role=role) for source_id, role in roles],
    )


@router.patch(
    "/me",
    summary="Change the caller's email address",
    description=(
        "Mail about the caller's exports (completed or failed) goes to `email`, when the "
        "server has a mail server; null removes the address. Answers with the caller's "
        "account and the address now in force."
    ),
    responses=error_responses(status.HTTP_401_UNAUTHORIZED),
)
def update_me(session: SessionDep, user: CurrentUser, update: MeUpdate) -> MeUpdatedOut:
    if "email" in update.model_fields_set:
        set_user_email(session, user, update.email)
        session.commit()
        log.info("email of user %d %s", user.id, "set" if update.email else "removed")
    return MeUpdatedOut(**read_me(session, user).model_dump(), email=user.email)


@router.get(
    "/me/keys",
    summary="List the caller's API keys",
    description="Ids and prefixes only: a key itself is shown once, when it is created.",
    responses=error_responses(status.HTTP_401_UNAUTHORIZED),
)
def read_my_keys(
    session: SessionDep, user: CurrentUser, credentials: RequestCredentials
) -> ApiKeyList:
    current_hash = hash_secret(credentials.credentials) if credentials else None
    return ApiKeyList(
        items=[
            ApiKeyOut(
                id=key.id,
                prefix=key.prefix,
                created_at=key.created_at,
                revoked_at=key.revoked_at,
                current=key.key_hash == current_hash,
            )
            for key in list_api_keys(session, user.id)
        ]
    )


@router.post(
    "/me/keys",
    status_code=status.HTTP_201_CREATED,
    summary="Create another API key for the caller",
    description=(
        "Answers with the new key, once; the caller's other keys keep working. "
        "Keep the key: it cannot be shown again."
    ),
    responses=error_responses(status.HTTP_401_UNAUTHORIZED),
)
def create_my_key(session: SessionDep, user: CurrentUser) -> NewApiKeyOut:
    now = datetime.now(UTC)
    key, row = create_api_key(session, user)
    record_key_event(
        session, AuditAction.KEY_ISSUED, actor_id=user.id, user=user, api_key=row, at=now
    )
    session.commit()
    log.info("API key %d issued to user %d", row.id, user.id)

    return NewApiKeyOut.from_key(key, row)


@router.delete(
    "/me/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke one of the caller's API keys",
    description=(
        "The key stops working at once, even when it is the key of this request. "
        "Revoking a revoked key changes nothing. Another user's key id is 404, as an "
        "unknown one."
    ),
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND),
)
def revoke_my_key(key_id: int, session: SessionDep, user: CurrentUser) -> Response:
    row = find_api_key(session, user.id, key_id) if 0 < key_id <= MAX_KEY_ID else None
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, KEY_NOT_FOUND)

    now = datetime.now(UTC)
    if revoke_api_key(session, user.id, row.id, at=now):
        record_key_event(
            session, AuditAction.KEY_REVOKED, actor_id=user.id, user=user, api_key=row, at=now
        )
        log.info("API key %d of user %d revoked", row.id, user.id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
