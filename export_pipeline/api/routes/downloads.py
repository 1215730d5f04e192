from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from export_pipeline.api.deps import (
    CurrentUser,
    ExportAccessDep,
    ExportStorageDep,
    SessionDep,
    SettingsDep,
)
from export_pipeline.api.errors import error_responses, validation_error
from export_pipeline.api.file_response import (
    attachment_headers,
    iter_file_chunks,
    media_type_for,
)
from export_pipeline.api.schemas import LinkOut, LinkRequest
from export_pipeline.settings import Settings
from export_pipeline.status.audit import AuditAction, record_event
from export_pipeline.status.links import LinkState, find_link, issue_link, link_state
from export_pipeline.status.models import DownloadLink, Export, ExportStatus, Role, User
from export_pipeline.status.users import role_on_source

log = logging.getLogger(__name__)

router = APIRouter(tags=["downloads"])

LINK_NOT_FOUND = "download link not found"
NOT_READY_RETRY_AFTER_SECONDS = 5


@router.post(
    "/exports/{export_id}/links",
    status_code=status.HTTP_201_CREATED,
    summary="Issue an expiring download link for a completed export",
    description=(
        "The link works only together with the API key of a user who has the exporter "
        "role on the export's source when downloading. Needs the exporter role."
    ),
    responses=error_responses(
        status.HTTP_401_UNAUTHORIZED,
        status.HTTP_403_FORBIDDEN,
        status.HTTP_404_NOT_FOUND,
        status.HTTP_409_CONFLICT,
    ),
)
def create_link(
    access: ExportAccessDep,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    request: Request,
    link_request: LinkRequest | None = None,
) -> LinkOut:
    access.require(Role.EXPORTER)
    ttl = _link_ttl(link_request or LinkRequest(), settings)
    export = access.export
    if export.status != ExportStatus.COMPLETED:
        msg = f"export {export.id} is {export.status}; a link can be issued once it is completed"
        raise HTTPException(status.HTTP_409_CONFLICT, msg)

    now = datetime.now(UTC)
    token, link = issue_link(session, export, user.id, ttl=ttl, now=now)
    record_event(
        session,
        AuditAction.LINK_ISSUED,
        actor_id=user.id,
        source_id=export.source_id,
        export_id=export.id,
        details={"link_id": link.id, "expires_at": link.expires_at.isoformat()},
        at=now,
    )
    session.commit()
    log.info("download link %d issued for export %s to user %d", link.id, export.id, user.id)

    path = request.app.url_path_for("download_export", token=token)
    return LinkOut(url=settings.api_base_url + path, token=token, expires_at=link.expires_at)


@router.get(
    "/downloads/{token}",
    summary="Download an export's file through a link",
    description=(
        "Streams the file. Needs the API key of a user who has the exporter role on the "
        "export's source now; anyone else gets 404, as for an unknown link."
    ),
    response_class=StreamingResponse,
    responses={
        status.HTTP_200_OK: {
            "description": "The file: CSV, or gzip-compressed CSV for `.csv.gz` names.",
            "content": {"text/csv": {}, "application/gzip": {}},
        },
        **error_responses(
            status.HTTP_401_UNAUTHORIZED,
            status.HTTP_404_NOT_FOUND,
            status.HTTP_409_CONFLICT,
            status.HTTP_410_GONE,
        ),
    },
)
def download_export(
    token: str, session: SessionDep, storage: ExportStorageDep, user: CurrentUser
) -> StreamingResponse:
    now = datetime.now(UTC)
    link = find_link(session, token)
    if link is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, LINK_NOT_FOUND)
    export = link.export

    role = role_on_source(session, user.id, export.source_id)
    if role is None or not role.allows(Role.EXPORTER):
        reason = f"role {role.value} cannot download" if role else "no role on the source"
        _deny(session, user, link, reason=reason, at=now)
        raise HTTPException(status.HTTP_404_NOT_FOUND, LINK_NOT_FOUND)
    state = link_state(link, now)
    if state is not LinkState.ACTIVE:
        _deny(session, user, link, reason=f"link {state.value}", at=now)
        msg = f"this download link has {state.value}; ask for a new link to the export"
        if state is LinkState.REVOKED:
            msg = "this download link was revoked; ask for a new link to the export"
        raise HTTPException(status.HTTP_410_GONE, msg)
    _check_file_ready(export)

    assert export.file_uri is not None
    assert export.file_size is not None
    try:
        handle = storage.open_read(export.file_uri)
    except FileNotFoundError:
        log.error("export %s is completed but its file is missing from storage", export.id)
        msg = "the file of this export is no longer available; request a new export"
        raise HTTPException(status.HTTP_410_GONE, msg) from None
    try:
        record_event(
            session,
            AuditAction.DOWNLOADED,
            actor_id=user.id,
            source_id=export.source_id,
            export_id=export.id,
            details={"link_id": link.id, "file_size": export.file_size},
            at=now,
        )
        session.commit()
    except BaseException:
        handle.close()
        raise
    log.info("export %s downloaded by user %d (%d bytes)", export.id, user.id, export.file_size)

    return StreamingResponse(
        iter_file_chunks(handle, length=export.file_size),
        headers=attachment_headers(
            export.file_name, size=export.file_size, sha256=export.sha256 or ""
        ),
        media_type=media_type_for(export.file_name),
    )


def _link_ttl(link_request: LinkRequest, settings: Settings) -> timedelta:
    seconds = link_request.expires_in or settings.link_ttl_seconds
    if seconds > settings.link_max_ttl_seconds:
        msg = f"expires_in may be at most {settings.link_max_ttl_seconds} seconds"
        error = validation_error(("body", "expires_in"), msg, "less_than_equal")
        raise RequestValidationError([error])
    return timedelta(seconds=seconds)


def _check_file_ready(export: Export) -> None:
    """409 while the export runs or when it has no file; 410 once its file expired."""
    current = ExportStatus(export.status)
    if current is ExportStatus.COMPLETED:
        return
    if current is ExportStatus.EXPIRED:
        msg = "the file of this export was deleted after the retention period"
        raise HTTPException(status.HTTP_410_GONE, msg)
    if current.is_terminal:
        msg = f"export {export.id} is {current.value}; it has no file to download"
        raise HTTPException(status.HTTP_409_CONFLICT, msg)
    msg = f"export {export.id} is {current.value}; the file is not ready yet"
    raise HTTPException(
        status.HTTP_409_CONFLICT,
        msg,
        headers={"Retry-After": str(NOT_READY_RETRY_AFTER_SECONDS)},
    )


def _deny(session: Session, user: User, link: DownloadLink, *, reason: str, at: datetime) -> None:
    """Record a refused download; the event names the link by id, never by token."""
    record_event(
        session,
        AuditAction.DENIED,
        actor_id=user.id,
        source_id=link.export.source_id,
        export_id=link.export_id,
        details={"reason": reason, "link_id": link.id},
        at=at,
    )
    session.commit()
    log.warning("download of export %s by user %d denied: %s", link.export_id, user.id, reason)
