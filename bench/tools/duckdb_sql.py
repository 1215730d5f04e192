"""Hand-written DuckDB: filter the leads, PIVOT their custom values and attributes, COPY."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from bench.tools._columns import (
    LEAD_FIELDS,
    TIMESTAMP_SQL_FORMAT,
    custom_and_attribute_keys,
    quoted,
    sql_literal,
)
from bench.workloads import Workload


def lead_conditions(workload: Workload) -> tuple[str, dict[str, object]]:
    """The workload's filters as SQL over `leads`, the way one would write them by hand."""
    conditions = ["source_id = $source_id", "created_at <= $now", "inserted_at <= $now"]
    params: dict[str, object] = {"source_id": workload.source_id, "now": datetime.now(UTC)}
    if workload.status:
        conditions.append("status = $status")
        params["status"] = workload.status
    if "created_from" in workload.filters:
        conditions.append("created_at >= $created_from::TIMESTAMPTZ")
        params["created_from"] = workload.filters["created_from"] + "T00:00:00Z"
    if "created_to" in workload.filters:
        conditions.append("created_at < $created_to::TIMESTAMPTZ")
        params["created_to"] = workload.filters["created_to"] + "T00:00:00Z"
    if "search" in workload.filters:
        texts = ["first_name", "last_name", "concat_ws(' ', first_name, last_name)", "email"]
        texts.append("phone")
        matches = " OR ".join(f"contains(lower({text}), lower($search))" for text in texts)
        conditions.append(f"({matches})")
        params["search"] = workload.filters["search"]
    return " AND ".join(conditions), params


def run(store: Path, workload: Workload, out: Path) -> None:
    connection = duckdb.connect(str(store), read_only=True)
    connection.execute("SET TimeZone = 'UTC'")
    fields, attributes = custom_and_attribute_keys(connection, workload.source_id)
    where, params = lead_conditions(workload)
    field_list = ", ".join(sql_literal(key) for key in fields)
    attribute_list = ", ".join(sql_literal(key) for key in attributes)
    columns = ", ".join(
        [f"l.{name}" for name in LEAD_FIELDS]
        + [f"cv.{quoted(key)}" for key in fields]
        + [f"av.{quoted(key)}" for key in attributes]
        + [
            f"strftime(l.created_at, '{TIMESTAMP_SQL_FORMAT}') AS created_at",
            f"strftime(l.updated_at, '{TIMESTAMP_SQL_FORMAT}') AS updated_at",
            "l.source_id",
        ]
    )
    query = f"""
        WITH l AS (SELECT * FROM leads WHERE {where}),
        cv AS (
            PIVOT (
                SELECT v.lead_id, v.field_key, v.value
                FROM lead_custom_values v SEMI JOIN l ON v.lead_id = l.lead_id
            )
            ON field_key IN ({field_list}) USING first(value) GROUP BY lead_id
        ),
        av AS (
            PIVOT (
                SELECT a.lead_id, a.key, a.value
                FROM lead_attributes a SEMI JOIN l ON a.lead_id = l.lead_id
            )
            ON key IN ({attribute_list})
            USING string_agg(DISTINCT value, ';' ORDER BY value) GROUP BY lead_id
        )
        SELECT {columns}
        FROM l LEFT JOIN cv USING (lead_id) LEFT JOIN av USING (lead_id)
        ORDER BY l.lead_id
    """  # noqa: S608 - identifiers come from the store's definitions
    connection.execute(
        f"COPY ({query}) TO {sql_literal(str(out))} (HEADER, NEW_LINE '\r\n')", params
    )
    connection.close()
