"""Importing a CSV file of leads into a source.

Named columns map to system fields, the status and attributes; every other column
becomes a text custom field keyed by its name in snake_case, in file order. The file
is read and checked completely before the store is opened for writing, and written in
one transaction, so a bad file changes nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import BinaryIO

import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv

from export_pipeline.leads.store import LeadStore
from export_pipeline.leads.writer import (
    LEAD_TEXT_FIELDS,
    AppendResult,
    NewAttribute,
    NewField,
    NewLeads,
    append_leads,
    snake_case,
)

MAPPABLE_FIELDS = tuple(name for name in LEAD_TEXT_FIELDS if name != "status")
SPREAD_PERIOD = timedelta(days=365)


class LeadImportError(ValueError):
    """The file or the mapping cannot be imported; the message says why and where."""


@dataclass(frozen=True)
class ColumnMapping:
    """Which CSV columns play which role; the rest become custom fields."""

    fields: dict[str, str] = field(default_factory=dict)
    status_column: str | None = None
    attribute_columns: tuple[str, ...] = ()
    created_at_column: str | None = None

    def special_columns(self) -> list[tuple[str, str]]:
        """(column, role) for every column with a role, in a stable order."""
        roles = [(column, f"--map {key}") for key, column in self.fields.items()]
        if self.status_column:
            roles.append((self.status_column, "--status-column"))
        roles.extend((column, "--attribute-column") for column in self.attribute_columns)
        if self.created_at_column:
            roles.append((self.created_at_column, "--created-at-column"))
        return roles


def import_leads(
    store: LeadStore,
    path: Path,
    *,
    source_name: str,
    mapping: ColumnMapping,
    now: datetime | None = None,
    wrap_file: Callable[[BinaryIO, int], BinaryIO] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> AppendResult:
    """Import every row of the CSV at `path` as a lead of `source_name`.

    Without a created-at column, creation times are spread evenly over the year
    before midnight UTC of the import day, in file order, so that the same file
    imported on the same day gets the same times. `now` fixes the import time for
    tests; left out, the leads are stamped as imported once the write lock is held (see
    `append_leads`). `wrap_file` may wrap the open file (given its size), for example
    to show progress; `on_step` is told of each later step as it begins. Raises
    `LeadImportError`.
    """
    step = on_step or (lambda _message: None)
    inserted_at = now
    now = now or datetime.now(UTC)
    if not source_name.strip():
        msg = "the source name must not be blank"
        raise LeadImportError(msg)
    try:
        # The header alone decides whether the mapping fits, before a large file is read.
        header = _read_header(path)
        _check_mapping(mapping, header)
        table = _read_csv(path, header, wrap_file)
    except OSError as error:
        msg = f"{path}: cannot read it: {error.strerror or type(error).__name__}"
        raise LeadImportError(msg) from None
    step(f"read {table.num_rows} rows of {table.num_columns} columns; checking them")
    new = _new_leads(table, mapping, now)
    step(
        f"writing {new.leads.height} leads, {new.custom_values.height} custom values and "
        f"{new.attributes.height} attribute tags in one transaction"
    )
    with store.writing() as connection:
        return append_leads(connection, source_name.strip(), new, inserted_at=inserted_at)


def _read_csv(
    path: Path, header: list[str], wrap_file: Callable[[BinaryIO, int], BinaryIO] | None
) -> pa.Table:
    invalid_rows = 0

    def count_invalid_row(_row: pa_csv.InvalidRow) -> str:
        nonlocal invalid_rows
        invalid_rows += 1
        return "skip"

    with path.open("rb") as raw:
        source: BinaryIO = wrap_file(raw, path.stat().st_size) if wrap_file else raw
        try:
            table = pa_csv.read_csv(
                source,
                read_options=pa_csv.ReadOptions(encoding="utf8", block_size=4 << 20),
                parse_options=pa_csv.ParseOptions(
                    newlines_in_values=True, invalid_row_handler=count_invalid_row
                ),
                convert_options=pa_csv.ConvertOptions(
                    column_types=dict.fromkeys(header, pa.string()),
                    # Only an empty cell is missing; "NA" or "null" are text like any other.
                    null_values=[""],
                    strings_can_be_null=True,
                ),
            )
        except (pa.ArrowInvalid, UnicodeDecodeError) as error:
            raise LeadImportError(_describe_arrow_error(path, error)) from None
    if invalid_rows:
        record, width = _first_ragged_record(path, len(header))
        msg = f"{path}: record {record} (the first after the header is 1) has {width} "
        msg += f"fields where the header has {len(header)}"
        if invalid_rows > 1:
            msg += f"; {invalid_rows - 1} more records are ragged too"
        raise LeadImportError(msg)
    return table


def _first_ragged_record(path: Path, width: int) -> tuple[int, int]:
    with path.open(encoding="utf-8-sig", newline="") as text:
        records = csv.reader(text)
        next(records)
        for number, record in enumerate(records, start=1):
            if len(record) != width:
                return number, len(record)
    return 0, width


def _read_header(path: Path) -> list[str]:
    """The header's column names; fails on an empty file, a bad encoding or duplicates."""
    if not path.is_file():
        msg = f"{path}: no such file"
        raise LeadImportError(msg)
    try:
        with path.open(encoding="utf-8-sig", newline="") as text:
            names = next(csv.reader(text), [])
    except UnicodeDecodeError as error:
        raise LeadImportError(_describe_arrow_error(path, error)) from None
    except csv.Error as error:
        msg = f"{path}: the header row is not valid CSV ({error})"
        raise LeadImportError(msg) from None
    if not names:
        msg = f"{path} is empty; a CSV of leads starts with a header row"
        raise LeadImportError(msg)
    seen: set[str] = set()
    for name in names:
        if not name.strip():
            msg = f"{path}: the header has a column without a name"
            raise LeadImportError(msg)
        if name in seen:
            msg = f"{path}: the header names column {name!r} twice"
            raise LeadImportError(msg)
        seen.add(name)
    return names


def _describe_arrow_error(path: Path, error: Exception) -> str:
    text = str(error)
    if "UTF8" in text or "utf-8" in text.lower() or isinstance(error, UnicodeDecodeError):
        return f"{path} is not UTF-8 text; save it as UTF-8 CSV and import it again"
    if "Empty CSV file" in text:
        return f"{path} is empty; a CSV of leads starts with a header row"
    return f"{path} is not a readable CSV file ({text.splitlines()[0][:120]})"


def _check_mapping(mapping: ColumnMapping, columns: list[str]) -> None:
    for key in mapping.fields:
        if key not in MAPPABLE_FIELDS:
            msg = f"--map {key}=...: {key!r} is not a system field; use one of "
            msg += ", ".join(MAPPABLE_FIELDS)
            raise LeadImportError(msg)
    used: dict[str, str] = {}
    for column, role in mapping.special_columns():
        if column not in columns:
            msg = f"{role} names column {column!r}, which the file does not have; its "
            msg += f"columns are {', '.join(repr(c) for c in columns)}"
            raise LeadImportError(msg)
        if column in used:
            msg = f"column {column!r} is given two roles: {used[column]} and {role}"
            raise LeadImportError(msg)
        used[column] = role
    keys: dict[str, str] = {}
    custom = [c for c in columns if c not in used]
    for column in custom + list(mapping.attribute_columns):
        key = snake_case(column)
        if not key:
            msg = f"column {column!r} gives no usable field key; rename it"
            raise LeadImportError(msg)
        if key in keys:
            msg = f"columns {keys[key]!r} and {column!r} both become the key {key!r}; "
            msg += "rename one of them"
            raise LeadImportError(msg)
        keys[key] = column


def _new_leads(table: pa.Table, mapping: ColumnMapping, now: datetime) -> NewLeads:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    row = pl.int_range(pl.len(), dtype=pl.UInt32).alias("row")
    special = {column for column, _ in mapping.special_columns()}
    custom_columns = [c for c in frame.columns if c not in special]

    system = [
        pl.col(mapping.fields[name]).alias(name)
        if name in mapping.fields
        else pl.lit(None, pl.String).alias(name)
        for name in LEAD_TEXT_FIELDS
        if name != "status"
    ]
    status = (
        pl.col(mapping.status_column) if mapping.status_column else pl.lit(None, pl.String)
    ).alias("status")
    created_at = _created_at(frame, mapping.created_at_column, now)
    leads = frame.select(row, *system, status).with_columns(
        created_at.alias("created_at"), created_at.alias("updated_at")
    )

    return NewLeads(
        leads=leads,
        custom_values=_long(frame, custom_columns),
        attributes=_long(frame, list(mapping.attribute_columns)),
        fields=tuple(NewField(snake_case(c), c) for c in custom_columns),
        attribute_definitions=tuple(
            NewAttribute(snake_case(c), c) for c in mapping.attribute_columns
        ),
    )


def _long(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """(row, key, value) for every non-empty cell of `columns`, in row order."""
    if not columns:
        return pl.DataFrame(schema={"row": pl.UInt32, "key": pl.String, "value": pl.String})
    # Positional names while unpivoting, so that no column name of the file can clash
    # with the row number's.
    positions = {f"column_{index}": snake_case(c) for index, c in enumerate(columns)}
    keyed = frame.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"),
        *(pl.col(c).alias(name) for name, c in zip(positions, columns, strict=True)),
    )
    return (
        keyed.unpivot(index="row", variable_name="key", value_name="value")
        .drop_nulls("value")
        .with_columns(pl.col("key").replace_strict(positions, return_dtype=pl.String))
        .sort("row", maintain_order=True)
    )


def _created_at(frame: pl.DataFrame, column: str | None, now: datetime) -> pl.Series:
    if column is None:
        return _spread(frame.height, now)
    values = []
    for record, text in enumerate(frame.get_column(column).to_list(), start=1):
        values.append(_parse_created_at(text, column, record))
    return pl.Series("created_at", values, dtype=pl.Datetime("us", "UTC"))


def _parse_created_at(text: str | None, column: str, record: int) -> datetime:
    if text is None or not text.strip():
        msg = f"record {record} (the first after the header is 1) has no value in the "
        msg += f"created-at column {column!r}"
        raise LeadImportError(msg)
    text = text.strip()
    try:
        if len(text) == len("YYYY-MM-DD"):
            moment = datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        msg = f"record {record} (the first after the header is 1) has a "
        msg += f"created-at value in column {column!r} that is not an ISO 8601 date or "
        msg += "timestamp (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS with an optional offset)"
        raise LeadImportError(msg) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        msg = f"record {record} (the first after the header is 1) has a created-at value "
        msg += f"in column {column!r} that lies outside the years 1 to 9999 in UTC"
        raise LeadImportError(msg) from None


def _spread(count: int, now: datetime) -> pl.Series:
    end = datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)
    start = end - SPREAD_PERIOD
    step = SPREAD_PERIOD.total_seconds() / max(count, 1)
    moments = [start + timedelta(seconds=int(index * step)) for index in range(count)]
    return pl.Series("created_at", moments, dtype=pl.Datetime("us", "UTC"))
