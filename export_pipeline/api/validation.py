"""Checks of a request that need more than its body: an export request against what
its source holds, before it is queued, and a webhook URL against where it points.

The source checks themselves live in `engine.source_checks`; here every problem becomes
an entry of one 422 answer in pydantic's shape, with `loc` pointing into the request body.
"""

from __future__ import annotations

import duckdb
from fastapi.exceptions import RequestValidationError

from export_pipeline.api.errors import validation_error
from export_pipeline.api.schemas import ExportRequest
from export_pipeline.engine.source_checks import check_against_source
from export_pipeline.leads.catalog import SourceCatalog
from export_pipeline.settings import Settings
from export_pipeline.status.notifications import (
    WebhookAddressRefused,
    WebhookHostUnresolvable,
    check_webhook_destination,
)


def check_request_against_source(
    connection: duckdb.DuckDBPyConnection, catalog: SourceCatalog, request: ExportRequest
) -> None:
    """Raise `RequestValidationError` naming every status, attribute or column the
    request uses that the source does not have."""
    problems = check_against_source(connection, catalog, request.filters, request.options)
    if problems:
        raise RequestValidationError(
            [
                validation_error(("body", *problem.loc), problem.msg, problem.kind)
                for problem in problems
            ]
        )


def check_webhook_address(settings: Settings, url: str, *, loc: tuple[str, ...]) -> None:
    """Raise `RequestValidationError` at `loc` when `url`'s host cannot be resolved, or
    is or resolves to an address that is not public (loopback, private, link-local...),
    unless the settings allow such addresses. Resolving may take as long as the system
    resolver does."""
    if settings.webhook_allow_private_addresses:
        return
    try:
        check_webhook_destination(url)
    except WebhookAddressRefused as error:
        entry = validation_error(("body", *loc), str(error), "webhook_address_refused")
        raise RequestValidationError([entry]) from None
    except WebhookHostUnresolvable as error:
        entry = validation_error(("body", *loc), str(error), "webhook_host_unresolvable")
        raise RequestValidationError([entry]) from None
