"""Appending leads to a source, shared by the importer and the demo seeder.

Everything of one call lands in one transaction: the source (created if new), new
field and attribute definitions, the leads, their custom values and attributes. If
anything fails, the store is left as it was.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import polars as pl

from export_pipeline.leads.store import FIELD_TYPES, SYSTEM_FIELDS, fetch_first

LEAD_TEXT_FIELDS = tuple(field for field in SYSTEM_FIELDS if field != "lead_id")


@dataclass(frozen=True)
class NewField:
    key: str
    label: str
    type: str = "text"


@dataclass(frozen=True)
class NewAttribute:
    key: str
    label: str


@dataclass(frozen=True)
class NewLeads:
    """Leads for one source, as frames that refer to each lead by its `row` number.

    `leads` has `row`, the text fields of `LEAD_TEXT_FIELDS` (missing ones are null)
    and aware UTC `created_at` and `updated_at`. `custom_values` has `row`, `key` and
    `value` for every custom field a lead has a value for; `attributes` has `row`,
    `key` and `value` (empty for a tag without value).
    """

    leads: pl.DataFrame
    custom_values: pl.DataFrame
    attributes: pl.DataFrame
    fields: tuple[NewField, ...]
    attribute_definitions: tuple[NewAttribute, ...]


@dataclass(frozen=True)
class AppendResult:
    source_id: int
    source_name: str
    source_created: bool
    leads: int
    custom_values: int
    attributes: int


def append_leads(
    connection: duckdb.DuckDBPyConnection,
    source_name: str,
    new: NewLeads,
    *,
    inserted_at: datetime | None = None,
) -> AppendResult:
    """Append `new` to the source named `source_name`, creating it if needed.

    `connection` must be the lead store's writing connection. `inserted_at`, when not
    given, is taken now, with the write lock held: no export request can be accepted
    between that moment and the commit, because the API reads the store to accept
    one, so a request's cut-off never admits leads committed after it.
    """
    inserted_at = inserted_at or datetime.now(UTC)
    for field in new.fields:
        if field.type not in FIELD_TYPES:
            msg = f"custom field {field.key!r} has unknown type {field.type!r}"
            raise ValueError(msg)

    connection.begin()
    try:
        source_id, created = _find_or_create_source(connection, source_name, inserted_at)
        _add_definitions(connection, source_id, new)
        (first_id,) = fetch_first(connection, "SELECT coalesce(max(lead_id), 0) + 1 FROM leads")
        lead_id = (pl.col("row") + first_id).cast(pl.Int64).alias("lead_id")
        leads = new.leads.with_columns(lead_id, pl.lit(source_id, pl.Int64).alias("source_id"))
        custom_values = new.custom_values.with_columns(lead_id).sort("lead_id", maintain_order=True)
        attributes = new.attributes.with_columns(lead_id).sort("lead_id", maintain_order=True)
        _insert(
            connection,
            "leads",
            leads.select(
                "lead_id",
                "source_id",
                *LEAD_TEXT_FIELDS,
                "created_at",
                "updated_at",
                pl.lit(inserted_at).alias("inserted_at"),
            ),
        )
        _insert(
            connection,
            "lead_custom_values",
            custom_values.select("lead_id", pl.col("key").alias("field_key"), "value"),
        )
        _insert(connection, "lead_attributes", attributes.select("lead_id", "key", "value"))
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    return AppendResult(
        source_id=source_id,
        source_name=source_name,
        source_created=created,
        leads=new.leads.height,
        custom_values=new.custom_values.height,
        attributes=new.attributes.height,
    )


def snake_case(name: str) -> str:
    """A field key from a column name: `Lead Owner` -> `lead_owner`, `firstName` ->
    `first_name`. Letters of any script are kept, lower-cased; everything else
    becomes a single underscore."""
    text = unicodedata.normalize("NFKC", name).strip()
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    text = re.sub(r"[^\w]+", "_", text.lower())
    return text.strip("_")


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "source"


def _find_or_create_source(
    connection: duckdb.DuckDBPyConnection, name: str, now: datetime
) -> tuple[int, bool]:
    row = fetch_first(connection, "SELECT source_id FROM sources WHERE name = ?", [name])
    if row:
        return row[0], False
    (source_id,) = fetch_first(connection, "SELECT coalesce(max(source_id), 0) + 1 FROM sources")
    taken = {slug for (slug,) in connection.execute("SELECT slug FROM sources").fetchall()}
    base = slug = slugify(name)
    suffix = 2
    while slug in taken:
        slug = f"{base}-{suffix}"
        suffix += 1
    connection.execute("INSERT INTO sources VALUES (?, ?, ?, ?)", [source_id, name, slug, now])
    return source_id, True


def _add_definitions(connection: duckdb.DuckDBPyConnection, source_id: int, new: NewLeads) -> None:
    """Define the fields and attributes the source does not have yet, after its others."""
    known_fields = dict(
        connection.execute(
            "SELECT key, type FROM field_definitions WHERE source_id = ?", [source_id]
        ).fetchall()
    )
    position = len(known_fields)
    for field in new.fields:
        if field.key in known_fields:
            if known_fields[field.key] != field.type:
                msg = (
                    f"custom field {field.key!r} is already a {known_fields[field.key]} "
                    f"field of this source, not {field.type}"
                )
                raise ValueError(msg)
            continue
        connection.execute(
            "INSERT INTO field_definitions VALUES (?, ?, ?, ?, ?)",
            [source_id, field.key, field.label, field.type, position],
        )
        position += 1
    known_attributes = {
        key
        for (key,) in connection.execute(
            "SELECT key FROM attribute_definitions WHERE source_id = ?", [source_id]
        ).fetchall()
    }
    position = len(known_attributes)
    for attribute in new.attribute_definitions:
        if attribute.key in known_attributes:
            continue
        connection.execute(
            "INSERT INTO attribute_definitions VALUES (?, ?, ?, ?)",
            [source_id, attribute.key, attribute.label, position],
        )
        position += 1


def _insert(connection: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    connection.register("incoming_rows", frame)
    try:
        connection.execute(f"INSERT INTO {table} SELECT * FROM incoming_rows")  # noqa: S608
    finally:
        connection.unregister("incoming_rows")
