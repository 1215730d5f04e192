"""Error answers: one JSON shape per kind, and their OpenAPI documentation.

Validation errors, whether pydantic found them or a check against the lead store,
answer 422 as `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`: FastAPI's
shape without the `input` and `ctx` members, which would echo whole request bodies
back. Every other error answers `{"detail": "<message>"}`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from export_pipeline.api.access_log import redact_path
from export_pipeline.api.schemas import ErrorOut
from export_pipeline.leads.store import LeadStoreBusy
from export_pipeline.status.history import CursorError

log = logging.getLogger(__name__)

BUSY_RETRY_AFTER_SECONDS = 10

ERROR_DESCRIPTIONS = {
    status.HTTP_401_UNAUTHORIZED: "No API key, or one that is unknown or revoked.",
    status.HTTP_403_FORBIDDEN: "The user's role on the source does not allow this.",
    status.HTTP_404_NOT_FOUND: "No such resource, or the user has no role on its source.",
    status.HTTP_409_CONFLICT: "The export is not in a state that allows this.",
    status.HTTP_410_GONE: "The link expired or was revoked, or the file was deleted.",
    status.HTTP_503_SERVICE_UNAVAILABLE: "The lead store is busy; retry after `Retry-After`.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting `codes` with the `{"detail": "..."}` body."""
    return {code: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[code]} for code in codes}


def validation_error(loc: Sequence[str | int], msg: str, kind: str) -> dict[str, Any]:
    """One entry of a 422 answer; `loc` starts with where the value was sent (`body`)."""
    return {"loc": list(loc), "msg": msg, "type": kind}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(LeadStoreBusy, _lead_store_busy)
    app.add_exception_handler(CursorError, _cursor_refused)
    app.add_exception_handler(StarletteHTTPException, _http_error)


async def _http_error(request: Request, error: Exception) -> Response:
    """FastAPI answers 400 for a body it cannot decode at all (not UTF-8, nested too
    deep); such a body is as invalid as malformed JSON, so it gets the same 422."""
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == status.HTTP_400_BAD_REQUEST:
        unreadable = validation_error(
            ("body",),
            "the body is not readable JSON (UTF-8, nested at most ~1000 deep)",
            "json_invalid",
        )
        return JSONResponse(
            {"detail": [unreadable]}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
        )
    return await http_exception_handler(request, error)


async def _validation_failed(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [
        validation_error(entry["loc"], entry["msg"], entry["type"]) for entry in error.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _cursor_refused(_request: Request, error: Exception) -> JSONResponse:
    """A listing's `cursor` that it did not issue, or issued for other filters."""
    refused = validation_error(("query", "cursor"), str(error), "invalid_cursor")
    return JSONResponse({"detail": [refused]}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _lead_store_busy(request: Request, _error: Exception) -> JSONResponse:
    log.warning(
        "lead store busy; answering %s %s with 503",
        request.method,
        redact_path(request.url.path),
    )
    return JSONResponse(
        {
            "detail": "the lead store is busy with an import or another export; "
            f"try again in {BUSY_RETRY_AFTER_SECONDS} seconds"
        },
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
    )
