"""Assembles the HTTP API: app-lifetime objects, error handlers, middleware, routers.

Run it with uvicorn's own access log off (`access_log=False`, `--no-access-log`):
that log prints download paths with their tokens. `AccessLogMiddleware` logs every
request with the token redacted instead (and should uvicorn's log run anyway, a
filter redacts it as well). The app does not migrate the status table;
`export-pipeline` does that before starting it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from fastapi import Depends, FastAPI

from export_pipeline.api.access_log import AccessLogMiddleware, redact_uvicorn_access_log
from export_pipeline.api.body_limit import MAX_BODY_BYTES, BodySizeLimitMiddleware
from export_pipeline.api.deps import reject_nul
from export_pipeline.api.errors import install_error_handlers
from export_pipeline.api.routes import (
    audit,
    downloads,
    exports,
    health,
    keys,
    members,
    notifications,
    schedules,
    sources,
)
from export_pipeline.leads.store import LeadStore
from export_pipeline.settings import Settings, load_settings
from export_pipeline.status.database import make_engine, make_session_factory
from export_pipeline.storage import ExportStorage

API_PREFIX = "/api/v1"
LEAD_STORE_WAIT_SECONDS = 30.0
"""An API request waits at most this long for an import to release the lead store,
then answers 503; exports and imports wait longer."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.status_database_url)
        app.state.session_factory = make_session_factory(engine)
        app.state.lead_store = LeadStore(
            settings.lead_store_path,
            wait_seconds=min(LEAD_STORE_WAIT_SECONDS, settings.lead_store_wait_seconds),
        )
        app.state.export_storage = ExportStorage(
            settings.export_storage_url, settings.storage_options
        )
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="Lead exports",
        version=version("export-pipeline"),
        description=(
            "Background CSV exports of lead data. Authenticate with "
            "`Authorization: Bearer <api key>`."
        ),
        lifespan=lifespan,
        dependencies=[Depends(reject_nul)],
    )
    app.state.settings = settings
    _log_to_stderr()
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware)
    app.add_middleware(AccessLogMiddleware)
    redact_uvicorn_access_log()
    routers = (health, sources, exports, downloads, members, keys, audit, notifications, schedules)
    for router in (module.router for module in routers):
        app.include_router(router, prefix=API_PREFIX)
    _document_body_limit(app)
    return app


def _document_body_limit(app: FastAPI) -> None:
    """Add the body-size middleware's 413 to every operation that takes a body; the
    middleware answers before any route, so no route can declare it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        for methods in document["paths"].values():
            for operation in methods.values():
                if "requestBody" in operation:
                    operation["responses"]["413"] = {
                        "description": f"The body is larger than {MAX_BODY_BYTES} bytes.",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorOut"}
                            }
                        },
                    }
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _log_to_stderr() -> None:
    """Send this package's INFO logs (the redacted access log among them) to stderr,
    next to uvicorn's own, unless a handler was configured already."""
    logger = logging.getLogger("export_pipeline")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
