from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Header, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from export_pipeline.api.deps import (
    CurrentUser,
    ExportAccessDep,
    ExportStorageDep,
    SessionDep,
    SettingsDep,
    deny,
)
from export_pipeline.api.errors import error_responses, validation_error
from export_pipeline.api.file_response import (
    RangeNotSatisfiableError,
    attachment_headers,
    iter_file_chunks,
    media_type_for,
    requested_range,
    unsatisfiable_range_headers,
)
from export_pipeline.api.schemas import ErrorOut, LinkList, LinkOut, LinkRequest, LinkSummary
from export_pipeline.settings import Settings
from export_pipeline.status.audit import AuditAction, record_event
from export_pipeline.status.links import (
    LinkState,
    find_link,
    get_link,
    issue_link,
    link_state,
    links_of_export,
    revoke_link,
)
from export_pipeline.status.models import DownloadLink, Export, ExportStatus, Role, User
from export_pipeline.status.users import role_on_source
from export_pipeline.storage import ExportStorage

log = logging.getLogger(__name__)

router = APIRouter(tags=["downloads"])

LINK_NOT_FOUND = "download link not found"
MAX_LINK_ID = 2**31 - 1
"""Link ids are 32-bit integers in the status table."""
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
        running = not ExportStatus(export.status).is_terminal
        headers = {"Retry-After": str(NOT_READY_RETRY_AFTER_SECONDS)} if running else None
        raise HTTPException(status.HTTP_409_CONFLICT, msg, headers=headers)

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
    return LinkOut(
        id=link.id, url=settings.api_base_url + path, token=token, expires_at=link.expires_at
    )


@router.get(
    "/exports/{export_id}/links",
    summary="List an export's download links, newest first",
    description=(
        "Every link issued to the export, with its state; never a token. Needs the exporter role."
    ),
    responses=error_responses(
        status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN, status.HTTP_404_NOT_FOUND
    ),
)
def read_links(access: ExportAccessDep, session: SessionDep) -> LinkList:
    access.require(Role.EXPORTER)
    now = datetime.now(UTC)
    items = [
        LinkSummary(
            id=link.id,
            issued_to=issued_to,
            issued_at=link.issued_at,
            expires_at=link.expires_at,
            revoked_at=link.revoked_at,
            state=link_state(link, now),
        )
        for link, issued_to in links_of_export(session, access.export.id)
    ]
    return LinkList(items=items)


@router.delete(
    "/links/{link_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Revoke a download link",
    description=(
        "The link answers 410 from then on. Allowed to the user it was issued to while "
        "they keep the exporter role, and to admins of the source. Revoking a revoked "
        "link changes nothing and answers 204 again."
    ),
    responses=error_responses(
        status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN, status.HTTP_404_NOT_FOUND
    ),
)
def revoke_download_link(link_id: int, session: SessionDep, user: CurrentUser) -> Response:
    link = get_link(session, link_id) if 0 < link_id <= MAX_LINK_ID else None
    role = role_on_source(session, user.id, link.export.source_id) if link else None
    if link is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, LINK_NOT_FOUND)
    if role is None:
        _deny_download(session, user, link, reason="revoke without a role on the source")
        raise HTTPException(status.HTTP_404_NOT_FOUND, LINK_NOT_FOUND)
    issuer_may = link.issued_to == user.id and role.allows(Role.EXPORTER)
    if not (issuer_may or role is Role.ADMIN):
        _deny_download(session, user, link, reason=f"revoke by role {role.value}")
        msg = "only the user the link was issued to (with the exporter role) or an admin "
        msg += f"of the source can revoke it; your role there is {role.value}"
        raise HTTPException(status.HTTP_403_FORBIDDEN, msg)

    if revoke_link(session, link, actor_id=user.id, at=datetime.now(UTC)):
        session.commit()
        log.info(
            "download link %d of export %s revoked by user %d", link.id, link.export_id, user.id
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/downloads/{token}",
    summary="Download an export's file, or a byte range of it, through a link",
    description=(
        "Streams the file. Needs the API key of a user who has the exporter role on the "
        "export's source now; anyone else gets 404, as for an unknown link. A single "
        "`Range` (`bytes=a-b`, `bytes=a-`, `bytes=-n`) answers 206 with that part, to "
        "resume a download; with `If-Range`, only while the file's ETag still matches. "
        "Several ranges, or a malformed `Range`, get the whole file."
    ),
    response_class=StreamingResponse,
    responses={
        status.HTTP_200_OK: {
            "description": "The file: CSV, or gzip-compressed CSV for `.csv.gz` names.",
            "content": {"text/csv": {}, "application/gzip": {}},
        },
        status.HTTP_206_PARTIAL_CONTENT: {
            "description": "The requested range of the file; `Content-Range` says which.",
            "content": {"text/csv": {}, "application/gzip": {}},
        },
        **error_responses(
            status.HTTP_401_UNAUTHORIZED,
            status.HTTP_404_NOT_FOUND,
            status.HTTP_409_CONFLICT,
            status.HTTP_410_GONE,
        ),
        status.HTTP_416_RANGE_NOT_SATISFIABLE: {
            "model": ErrorOut,
            "description": "The range starts beyond the file's end; `Content-Range` "
            "gives the file's size as `bytes */<size>`.",
        },
    },
)
def download_export(
    token: str,
    session: SessionDep,
    storage: ExportStorageDep,
    user: CurrentUser,
    range_header: Annotated[
        str | None, Header(alias="Range", description="One range: `bytes=0-1048575`.")
    ] = None,
    if_range: Annotated[
        str | None,
        Header(alias="If-Range", description="Honour `Range` only if this is the ETag."),
    ] = None,
) -> StreamingResponse:
    now = datetime.now(UTC)
    link, export, size = _permitted_download(session, user, token, now=now)
    sha256 = export.sha256 or ""
    try:
        byte_range = requested_range(range_header, if_range=if_range, size=size, sha256=sha256)
    except RangeNotSatisfiableError:
        msg = f"the requested range starts beyond the end of the file, which has {size} bytes"
        raise HTTPException(
            status.HTTP_416_RANGE_NOT_SATISFIABLE,
            msg,
            headers=unsatisfiable_range_headers(size),
        ) from None

    handle = _open_file(session, user, link, storage)
    try:
        details: dict[str, object] = {"link_id": link.id, "file_size": size}
        if byte_range is not None:
            handle.seek(byte_range.start)
            details["range"] = f"{byte_range.start}-{byte_range.end}"
        record_event(
            session,
            AuditAction.DOWNLOADED,
            actor_id=user.id,
            source_id=export.source_id,
            export_id=export.id,
            details=details,
            at=now,
        )
        session.commit()
    except BaseException:
        handle.close()
        raise
    sent = f"bytes {details['range']} of {size}" if byte_range else f"{size} bytes"
    log.info("export %s downloaded by user %d (%s)", export.id, user.id, sent)

    return StreamingResponse(
        iter_file_chunks(handle, length=byte_range.length if byte_range else size),
        status_code=status.HTTP_206_PARTIAL_CONTENT if byte_range else status.HTTP_200_OK,
        headers=attachment_headers(
            export.file_name, size=size, sha256=sha256, byte_range=byte_range
        ),
        media_type=media_type_for(export.file_name),
    )


@router.head(
    "/downloads/{token}",
    summary="Read a download's headers without its body",
    description=(
        "The same checks and headers as the download (size, ETag, file name), without "
        "the file, and without counting as a download. `Range` is ignored, as RFC 9110 "
        "asks for any method other than GET."
    ),
    response_class=Response,
    responses=error_responses(
        status.HTTP_401_UNAUTHORIZED,
        status.HTTP_404_NOT_FOUND,
        status.HTTP_409_CONFLICT,
        status.HTTP_410_GONE,
    ),
)
def download_export_headers(
    token: str, session: SessionDep, storage: ExportStorageDep, user: CurrentUser
) -> Response:
    link, export, size = _permitted_download(session, user, token, now=datetime.now(UTC))
    _open_file(session, user, link, storage).close()
    return Response(
        headers=attachment_headers(export.file_name, size=size, sha256=export.sha256 or ""),
        media_type=media_type_for(export.file_name),
    )


def _permitted_download(
    session: Session, user: User, token: str, *, now: datetime
) -> tuple[DownloadLink, Export, int]:
    """The link, its export and the file's size, once the user, the link and the
    export all allow a download; otherwise the HTTP error, with refusals of a known
    link recorded as denied."""
    link = find_link(session, token)
    if link is None:
        # No source to file it under: the source-less event is for operators only.
        deny(session, user.id, reason="unknown download link")
        raise HTTPException(status.HTTP_404_NOT_FOUND, LINK_NOT_FOUND)
    export = link.export

    role = role_on_source(session, user.id, export.source_id)
    if role is None or not role.allows(Role.EXPORTER):
        reason = f"role {role.value} cannot download" if role else "no role on the source"
        _deny_download(session, user, link, reason=reason)
        raise HTTPException(status.HTTP_404_NOT_FOUND, LINK_NOT_FOUND)
    state = link_state(link, now)
    if state is not LinkState.ACTIVE:
        _deny_download(session, user, link, reason=f"link {state.value}")
        msg = f"this download link has {state.value}; ask for a new link to the export"
        if state is LinkState.REVOKED:
            msg = "this download link was revoked; ask for a new link to the export"
        raise HTTPException(status.HTTP_410_GONE, msg)
    try:
        _check_file_ready(export)
    except HTTPException:
        _deny_download(session, user, link, reason=f"export {export.status}")
        raise

    assert export.file_uri is not None
    assert export.file_size is not None
    return link, export, export.file_size


def _open_file(
    session: Session, user: User, link: DownloadLink, storage: ExportStorage
) -> BinaryIO:
    export = link.export
    assert export.file_uri is not None
    try:
        return storage.open_read(export.file_uri)
    except FileNotFoundError:
        log.error("export %s is completed but its file is missing from storage", export.id)
        _deny_download(session, user, link, reason="file missing from storage")
        msg = "the file of this export is no longer available; request a new export"
        raise HTTPException(status.HTTP_410_GONE, msg) from None


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


def _deny_download(session: Session, user: User, link: DownloadLink, *, reason: str) -> None:
    deny(
        session,
        user.id,
        reason=reason,
        source_id=link.export.source_id,
        export_id=link.export_id,
        link_id=link.id,
    )
