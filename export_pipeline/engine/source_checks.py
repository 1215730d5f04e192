"""Checking filters and options against what a source holds, before an export is queued.

Pydantic checks their shape; these checks need the lead store: the statuses,
attributes and columns the source has. Every problem is reported at once, with where
it is (`("filters", "statuses", 1)`), so that the API can answer in pydantic's 422
shape and a schedule can record one readable line.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from export_pipeline.engine.columns import UnknownColumnsError, plan_columns, select_columns
from export_pipeline.engine.filters import AttributeFilter, ExportFilters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import SourceCatalog, has_attribute_value, source_statuses

LISTED_AT_MOST = 20


@dataclass(frozen=True)
class SourceProblem:
    """Something a request uses that the source does not have."""

    loc: tuple[str | int, ...]
    """Where in the request: `("filters", "statuses", 1)`."""
    msg: str
    kind: str
    """A machine name such as `unknown_status`."""


def check_against_source(
    connection: duckdb.DuckDBPyConnection,
    catalog: SourceCatalog,
    filters: ExportFilters,
    options: ExportOptions,
) -> list[SourceProblem]:
    """Every status, attribute or column of `filters` and `options` that the source does
    not have; empty when the request fits the source."""
    return [
        *_status_problems(connection, catalog, filters.statuses),
        *_attribute_problems(connection, catalog, filters.attribute),
        *_column_problems(catalog, options.columns),
    ]


def describe_problems(problems: list[SourceProblem]) -> str:
    """The problems as one line, each led by where it is (`filters.statuses.1: ...`)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem.loc)}: {problem.msg}" for problem in problems
    )


def _status_problems(
    connection: duckdb.DuckDBPyConnection, catalog: SourceCatalog, statuses: list[str]
) -> list[SourceProblem]:
    if not statuses:
        return []
    known = source_statuses(connection, catalog.source.source_id)
    valid = _listing(known, none="its leads carry no status")
    return [
        SourceProblem(
            ("filters", "statuses", index),
            f"unknown status {status!r} for source {catalog.source.name!r}; {valid}",
            "unknown_status",
        )
        for index, status in enumerate(statuses)
        if status not in known
    ]


def _attribute_problems(
    connection: duckdb.DuckDBPyConnection,
    catalog: SourceCatalog,
    attribute: AttributeFilter | None,
) -> list[SourceProblem]:
    if attribute is None:
        return []
    keys = [definition.key for definition in catalog.attributes]
    if attribute.key not in keys:
        valid = _listing(keys, none="it has no attributes")
        return [
            SourceProblem(
                ("filters", "attribute", "key"),
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
            SourceProblem(
                ("filters", "attribute", "value"),
                f"no lead of source {catalog.source.name!r} carries attribute "
                f"{attribute.key!r} with value {attribute.value!r}",
                "unknown_attribute_value",
            )
        ]
    return []


def _column_problems(catalog: SourceCatalog, columns: list[str] | None) -> list[SourceProblem]:
    if columns is None:
        return []
    planned = plan_columns(catalog)
    try:
        select_columns(planned, columns)
    except UnknownColumnsError as error:
        unknown = set(error.unknown)
        valid = _listing([column.header for column in planned], none="it has no columns")
        return [
            SourceProblem(
                ("options", "columns", index),
                f"unknown column {header!r} for source {catalog.source.name!r}; {valid}",
                "unknown_column",
            )
            for index, header in enumerate(columns)
            if header in unknown
        ]
    return []


def _listing(names: list[str], *, none: str) -> str:
    """The valid names for an error message, the first `LISTED_AT_MOST` of them."""
    if not names:
        return none
    listed = ", ".join(repr(name) for name in names[:LISTED_AT_MOST])
    if len(names) > LISTED_AT_MOST:
        listed += f" and {len(names) - LISTED_AT_MOST} more"
    return "use one of " + listed
