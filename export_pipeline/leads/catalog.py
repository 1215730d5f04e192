"""What a source holds: its identity, custom fields, attributes and statuses.

Read by the API to validate a request and by the export engine to plan columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from export_pipeline.leads.store import fetch_first


@dataclass(frozen=True)
class Source:
    source_id: int
    name: str
    slug: str


@dataclass(frozen=True)
class FieldDefinition:
    key: str
    label: str
    type: str
    position: int


@dataclass(frozen=True)
class AttributeDefinition:
    key: str
    label: str
    position: int


@dataclass(frozen=True)
class SourceCatalog:
    """A source with its custom fields and attributes, each in definition order."""

    source: Source
    fields: tuple[FieldDefinition, ...]
    attributes: tuple[AttributeDefinition, ...]


def list_sources(connection: duckdb.DuckDBPyConnection) -> list[Source]:
    rows = connection.execute(
        "SELECT source_id, name, slug FROM sources ORDER BY source_id"
    ).fetchall()
    return [Source(*row) for row in rows]


def get_source(connection: duckdb.DuckDBPyConnection, source_id: int) -> Source | None:
    row = fetch_first(
        connection, "SELECT source_id, name, slug FROM sources WHERE source_id = ?", [source_id]
    )
    return Source(*row) if row else None


def read_catalog(connection: duckdb.DuckDBPyConnection, source_id: int) -> SourceCatalog | None:
    """The source and its definitions, or None when no such source exists."""
    source = get_source(connection, source_id)
    if source is None:
        return None
    fields = connection.execute(
        "SELECT key, label, type, position FROM field_definitions "
        "WHERE source_id = ? ORDER BY position, key",
        [source_id],
    ).fetchall()
    attributes = connection.execute(
        "SELECT key, label, position FROM attribute_definitions "
        "WHERE source_id = ? ORDER BY position, key",
        [source_id],
    ).fetchall()
    return SourceCatalog(
        source=source,
        fields=tuple(FieldDefinition(*row) for row in fields),
        attributes=tuple(AttributeDefinition(*row) for row in attributes),
    )


def source_statuses(connection: duckdb.DuckDBPyConnection, source_id: int) -> list[str]:
    """The distinct lead statuses the source's leads carry now, sorted."""
    rows = connection.execute(
        "SELECT DISTINCT status FROM leads "
        "WHERE source_id = ? AND status IS NOT NULL ORDER BY status",
        [source_id],
    ).fetchall()
    return [status for (status,) in rows]


def has_attribute_value(
    connection: duckdb.DuckDBPyConnection, source_id: int, key: str, value: str
) -> bool:
    """Whether any lead of the source is tagged with this attribute value."""
    row = fetch_first(
        connection,
        "SELECT 1 FROM lead_attributes a JOIN leads l USING (lead_id) "
        "WHERE l.source_id = ? AND a.key = ? AND a.value = ? LIMIT 1",
        [source_id, key, value],
    )
    return row is not None
