"""Checking an export request against what its source holds, before it is queued.

The checks themselves live in `engine.source_checks`; here every problem becomes an
entry of one 422 answer in pydantic's shape, with `loc` pointing into the request body.
"""

from __future__ import annotations

import duckdb
from fastapi.exceptions import RequestValidationError

from export_pipeline.api.errors import validation_error
from export_pipeline.api.schemas import ExportRequest
from export_pipeline.engine.source_checks import check_against_source
from export_pipeline.leads.catalog import SourceCatalog


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
