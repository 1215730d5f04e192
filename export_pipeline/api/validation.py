"""Checking an export request against what its source holds, before it is queued.

Pydantic checks a request's shape; these checks need the lead store: the statuses,
attributes and columns the source has. Every problem is reported at once, in the same
422 shape as pydantic's, with `loc` pointing into the request body.
"""

from __future__ import annotations

from typing import Any

import duckdb
from fastapi.exceptions import RequestValidationError

from export_pipeline.api.errors import validation_error
from export_pipeline.api.schemas import ExportRequest
from export_pipeline.engine.columns import UnknownColumnsError, plan_columns, select_columns
from export_pipeline.engine.filters import AttributeFilter
from export_pipeline.leads.catalog import SourceCatalog, has_attribute_value, source_statuses


def check_request_against_source(
    connection: duckdb.DuckDBPyConnection, catalog: SourceCatalog, request: ExportRequest
) -> None:
    """Raise `RequestValidationError` naming every status, attribute or column the
    request uses that the source does not have."""
    errors = [
        *_status_errors(connection, catalog, request.filters.statuses),
        *_attribute_errors(connection, catalog, request.filters.attribute),
        *_column_errors(catalog, request.options.columns),
    ]
    if errors:
        raise RequestValidationError(errors)


def _status_errors(
    connection: duckdb.DuckDBPyConnection, catalog: SourceCatalog, statuses: list[str]
) -> list[dict[str, Any]]:
    if not statuses:
        return []
    known = source_statuses(connection, catalog.source.source_id)
    valid = _listing(known, none="its leads carry no status")
    return [
        validation_error(
            ("body", "filters", "statuses", index),
            f"unknown status {status!r} for source {catalog.source.name!r}; {valid}",
            "unknown_status",
        )
        for index, status in enumerate(statuses)
        if status not in known
    ]


def _attribute_errors(
    connection: duckdb.DuckDBPyConnection,
    catalog: SourceCatalog,
    attribute: AttributeFilter | None,
) -> list[dict[str, Any]]:
    if attribute is None:
        return []
    keys = [definition.key for definition in catalog.attributes]
    if attribute.key not in keys:
        valid = _listing(keys, none="it has no attributes")
        return [
            validation_error(
                ("body", "filters", "attribute", "key"),
                f"attribute {attribute.key!r} is not defined for source "
                f"{catalog.source.name!r}; {valid}",
                "unknown_attribute",
            )
        ]
    source_id = catalog.source.source_id
    if attribute.value is not None and not has_attribute_value(
        connection, source_id, attribute.key, attribute.value
    ):
        return [
            validation_error(
                ("body", "filters", "attribute", "value"),
                f"no lead of source {catalog.source.name!r} carries attribute "
                f"{attribute.key!r} with value {attribute.value!r}",
                "unknown_attribute_value",
            )
        ]
    return []


def _column_errors(catalog: SourceCatalog, columns: list[str] | None) -> list[dict[str, Any]]:
    if columns is None:
        return []
    planned = plan_columns(catalog)
    try:
        select_columns(planned, columns)
    except UnknownColumnsError as error:
        unknown = set(error.unknown)
        valid = _listing([column.header for column in planned], none="it has no columns")
        return [
            validation_error(
                ("body", "options", "columns", index),
                f"unknown column {header!r} for source {catalog.source.name!r}; {valid}",
                "unknown_column",
            )
            for index, header in enumerate(columns)
            if header in unknown
        ]
    return []


LISTED_AT_MOST = 20


def _listing(names: list[str], *, none: str) -> str:
    """The valid names for an error message, the first `LISTED_AT_MOST` of them."""
    if not names:
        return none
    listed = ", ".join(repr(name) for name in names[:LISTED_AT_MOST])
    if len(names) > LISTED_AT_MOST:
        listed += f" and {len(names) - LISTED_AT_MOST} more"
    return "use one of " + listed
