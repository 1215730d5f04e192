"""What routes receive by injection: app-lifetime objects, a session, the caller, and
the caller's access to the source or export a path names.

The app-lifetime objects live on `app.state`; `main.create_app` puts them there.
A user without any role on a source gets 404 for the source and its exports, exactly
as if they did not exist, so ids cannot be probed.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from export_pipeline.leads.store import LeadStore
from export_pipeline.settings import Settings
from export_pipeline.status.audit import AuditAction, record_event
from export_pipeline.status.exports import get_export
from export_pipeline.status.models import Export, Role, User
from export_pipeline.status.users import authenticate, role_on_source
from export_pipeline.storage import ExportStorage

log = logging.getLogger(__name__)

SOURCE_NOT_FOUND = "source not found"
MAX_SOURCE_ID = 2**31 - 1
"""Source ids are 32-bit integers in the status table."""
EXPORT_NOT_FOUND = "export not found"


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """A status-table session for one request; routes commit what they change."""
    with request.app.state.session_factory() as session:
        yield session


def get_lead_store(request: Request) -> LeadStore:
    return request.app.state.lead_store


def get_export_storage(request: Request) -> ExportStorage:
    return request.app.state.export_storage


SettingsDep = Annotated[Settings, Depends(get_settings)]
# Closed when the route returns, not after the response: a download may stream for
# minutes and must not hold a pooled connection all that time.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
LeadStoreDep = Annotated[LeadStore, Depends(get_lead_store)]
ExportStorageDep = Annotated[ExportStorage, Depends(get_export_storage)]

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An API key, as printed once by `export-pipeline users create`.",
)


def get_current_user(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> User:
    """The user owning the request's API key; 401 without a valid one."""
    if credentials is None:
        raise _unauthorized("missing API key: send it as 'Authorization: Bearer <api key>'")
    user = authenticate(session, credentials.credentials)
    if user is None:
        raise _unauthorized("the API key is unknown or revoked: ask an admin for a new one")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


@dataclass(frozen=True)
class SourceAccess:
    source_id: int
    role: Role
    user_id: int
    session: Session

    def require(self, needed: Role) -> None:
        """403 unless the caller's role includes `needed`; the refusal is audited."""
        if not self.role.allows(needed):
            deny(
                self.session,
                self.user_id,
                reason=_too_low(self.role, needed),
                source_id=self.source_id,
            )
        require_role(self.role, needed)


@dataclass(frozen=True)
class ExportAccess:
    export: Export
    role: Role
    user_id: int
    session: Session

    def require(self, needed: Role) -> None:
        """403 unless the caller's role on the export's source includes `needed`; the
        refusal is audited."""
        if not self.role.allows(needed):
            deny(
                self.session,
                self.user_id,
                reason=_too_low(self.role, needed),
                source_id=self.export.source_id,
                export_id=self.export.id,
            )
        require_role(self.role, needed)


def get_source_access(source_id: int, session: SessionDep, user: CurrentUser) -> SourceAccess:
    """The caller's role on the path's source; 404 when they have none, and for ids
    no source can have. A refusal of a possible id is audited."""
    if not 0 < source_id <= MAX_SOURCE_ID:
        raise HTTPException(status.HTTP_404_NOT_FOUND, SOURCE_NOT_FOUND)
    role = role_on_source(session, user.id, source_id)
    if role is None:
        deny(session, user.id, reason="no role on the source", source_id=source_id)
        raise HTTPException(status.HTTP_404_NOT_FOUND, SOURCE_NOT_FOUND)
    return SourceAccess(source_id=source_id, role=role, user_id=user.id, session=session)


def get_export_access(export_id: str, session: SessionDep, user: CurrentUser) -> ExportAccess:
    """The path's export and the caller's role on its source; 404 for a malformed or
    unknown id, and for an export on a source the caller has no role on (audited)."""
    export = find_export(session, export_id)
    if export is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, EXPORT_NOT_FOUND)
    role = role_on_source(session, user.id, export.source_id)
    if role is None:
        deny(
            session,
            user.id,
            reason="no role on the source",
            source_id=export.source_id,
            export_id=export.id,
        )
        raise HTTPException(status.HTTP_404_NOT_FOUND, EXPORT_NOT_FOUND)
    return ExportAccess(export=export, role=role, user_id=user.id, session=session)


def deny(
    session: Session,
    user_id: int,
    *,
    reason: str,
    source_id: int | None = None,
    export_id: str | None = None,
    link_id: int | None = None,
) -> None:
    """Record a refused attempt in the audit log, committed at once because the
    request ends in an error. A link is named by its id, never by its token."""
    details: dict[str, object] = {"reason": reason}
    if link_id is not None:
        details["link_id"] = link_id
    record_event(
        session,
        AuditAction.DENIED,
        actor_id=user_id,
        source_id=source_id,
        export_id=export_id,
        details=details,
    )
    session.commit()
    log.info("user %d denied on source %s: %s", user_id, source_id, reason)


def _too_low(role: Role, needed: Role) -> str:
    return f"role {role.value} lacks {needed.value}"


SourceAccessDep = Annotated[SourceAccess, Depends(get_source_access)]
ExportAccessDep = Annotated[ExportAccess, Depends(get_export_access)]


def find_export(session: Session, export_id: str) -> Export | None:
    """The export with this id in any UUID spelling; None when malformed or unknown."""
    try:
        canonical = str(uuid.UUID(export_id))
    except ValueError:
        return None
    return get_export(session, canonical)


def require_role(role: Role, needed: Role) -> None:
    """403 naming the role needed unless `role` includes it."""
    if not role.allows(needed):
        msg = f"this needs the {needed.value} role on the source (or one above it); "
        msg += f"your role there is {role.value}"
        raise HTTPException(status.HTTP_403_FORBIDDEN, msg)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"}
    )


_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
"""`\u0000` in JSON text, where its backslash is not itself escaped."""


async def reject_nul(request: Request) -> None:
    """422 for a NUL character anywhere in the path, the query or a JSON body: no id,
    name, filter or URL holds one, and PostgreSQL can neither store nor compare text
    with one."""
    where = None
    if "\x00" in request.url.path:
        where = "path"
    elif "%00" in request.url.query:
        where = "query"
    elif request.method in ("POST", "PUT", "PATCH"):
        body = await request.body()
        if b"\x00" in body or _JSON_NUL.search(body):
            where = "body"
    if where is not None:
        error = {
            "loc": [where],
            "msg": "a NUL character is not allowed here",
            "type": "value_error",
        }
        raise RequestValidationError([error])
