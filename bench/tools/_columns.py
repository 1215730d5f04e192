"""What hand-written tools need to know about a source, read straight from the store."""

from __future__ import annotations

import duckdb

LEAD_FIELDS = (
    "lead_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "address",
    "city",
    "state",
    "zip_code",
    "status",
)
TRAILING = ("created_at", "updated_at", "source_id")
TIMESTAMP_SQL_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def custom_and_attribute_keys(
    connection: duckdb.DuckDBPyConnection, source_id: int
) -> tuple[list[str], list[str]]:
    fields = connection.execute(
        "SELECT key FROM field_definitions WHERE source_id = ? ORDER BY position", [source_id]
    ).fetchall()
    attributes = connection.execute(
        "SELECT key FROM attribute_definitions WHERE source_id = ? ORDER BY position",
        [source_id],
    ).fetchall()
    return [key for (key,) in fields], [key for (key,) in attributes]


def quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
