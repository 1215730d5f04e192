from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError

from export_pipeline.api.deps import (
    SOURCE_NOT_FOUND,
    CurrentUser,
    ExportAccessDep,
    LeadStoreDep,
    SessionDep,
    SourceAccessDep,
)
from export_pipeline.api.errors import error_responses, validation_error
from export_pipeline.api.schemas import ExportHistoryQuery, ExportList, ExportOut, ExportRequest
from export_pipeline.api.validation import check_request_against_source
from export_pipeline.engine.filters import freeze_filters
from export_pipeline.leads.catalog import read_catalog
from export_pipeline.status.exports import request_export
from export_pipeline.status.history import CursorError, HistoryFilters, read_history
from export_pipeline.status.models import Role

log = logging.getLogger(__name__)

router = APIRouter(tags=["exports"])


@router.post(
    "/sources/{source_id}/exports",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Request an export of a source's leads",
    description=(
        "Validates the filters and options against the source, freezes them at the "
        "request time and queues the export as `pending`; a background run writes the "
        "file. Answers with the export and its URL in `Location`. Needs the exporter role."
    ),
    response_description="The queued export.",
    responses={
        status.HTTP_202_ACCEPTED: {
            "headers": {
                "Location": {
                    "description": "The export's URL path.",
                    "schema": {"type": "string"},
                }
            }
        },
        **error_responses(
            status.HTTP_401_UNAUTHORIZED,
            status.HTTP_403_FORBIDDEN,
            status.HTTP_404_NOT_FOUND,
            status.HTTP_503_SERVICE_UNAVAILABLE,
        ),
    },
)
def create_export(
    access: SourceAccessDep,
    session: SessionDep,
    lead_store: LeadStoreDep,
    user: CurrentUser,
    request: Request,
    response: Response,
    export_request: ExportRequest | None = None,
) -> ExportOut:
    access.require(Role.EXPORTER)
    export_request = export_request or ExportRequest()

    with lead_store.reading() as connection:
        catalog = read_catalog(connection, access.source_id)
        if catalog is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, SOURCE_NOT_FOUND)
        check_request_against_source(connection, catalog, export_request)
        # Taken while the store is open for reading: an import cannot hold the write
        # lock now, so every lead it stamps later is stamped after this cut-off.
        requested_at = datetime.now(UTC)
    export = request_export(
        session,
        source=catalog.source,
        requested_by=user.id,
        filters=export_request.filters,
        frozen=freeze_filters(export_request.filters, requested_at=requested_at),
        options=export_request.options,
        requested_at=requested_at,
    )
    session.commit()
    log.info("export %s requested on source %d by user %d", export.id, export.source_id, user.id)

    response.headers["Location"] = request.app.url_path_for("read_export", export_id=export.id)
    return ExportOut.from_export(export)


@router.get(
    "/sources/{source_id}/exports",
    summary="List a source's exports, newest request first, a page at a time",
    description=(
        "Filters combine with AND. Pages are cut by key: pass `next_cursor` as `cursor`, "
        "with the same filters, for the next page. Exports requested meanwhile appear on a "
        "new first page and never shift a page already read. Needs any role."
    ),
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND),
)
def read_exports(
    access: SourceAccessDep,
    session: SessionDep,
    query: Annotated[ExportHistoryQuery, Query()],
) -> ExportList:
    filters = HistoryFilters(
        statuses=frozenset(query.status),
        requested_by=query.requested_by,
        requested_from=query.requested_from,
        requested_to=query.requested_to,
    )
    try:
        page = read_history(
            session, access.source_id, filters, limit=query.limit, cursor=query.cursor
        )
    except CursorError as error:
        raise RequestValidationError(
            [validation_error(("query", "cursor"), str(error), "invalid_cursor")]
        ) from None
    return ExportList(
        items=[ExportOut.from_export(export) for export in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/exports/{export_id}",
    summary="Read one export",
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND),
)
def read_export(access: ExportAccessDep) -> ExportOut:
    return ExportOut.from_export(access.export)
