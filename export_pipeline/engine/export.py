"""Streaming the matching leads of one source into CSV, one window of lead ids at a time.

The source's lead ids are cut into windows of `batch_size` ids. For each window,
DuckDB selects the matching leads in `lead_id` order; then only the custom values
and attributes of those leads are read, pivoted into columns with Polars and appended
to the CSV. Memory therefore follows the window, not the size of the source or of the
export; DuckDB's own cache is capped by the lead store's memory limit.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

import duckdb
import polars as pl
import pyarrow as pa

from export_pipeline.engine import csv_format
from export_pipeline.engine.columns import Column, ColumnKind, plan_columns, select_columns
from export_pipeline.engine.filters import FrozenFilters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.engine.query import MAX_LEAD_ID, LeadQuery, build_lead_query
from export_pipeline.leads.catalog import SourceCatalog, read_catalog
from export_pipeline.leads.store import LeadStore
from export_pipeline.storage import ExportStorage, FileFacts

DEFAULT_BATCH_SIZE = 100_000
ATTRIBUTE_SEPARATOR = ";"
"""Joins the distinct values of an attribute tagged more than once on one lead."""

ProgressCallback = Callable[[int, int], None]
"""Called with (leads written so far, leads matching in all) before the first window and
after each; it may raise to stop the export, which then leaves no file."""


class SourceMissingError(LookupError):
    """The export's source is not in the lead store (any more)."""


def export_to_storage(
    store: LeadStore,
    storage: ExportStorage,
    *,
    source_id: int,
    name: str,
    partial_key: str,
    filters: FrozenFilters,
    options: ExportOptions,
    on_progress: ProgressCallback | None = None,
) -> tuple[int, FileFacts]:
    """Export the source's matching leads to `name` under the storage root.

    This is the whole of an export run's work: open the lead store for reading, plan
    the columns from the source's definitions and stream the CSV into a file that
    appears at `name` only once complete. Returns the lead count and the file's facts.
    Raises `SourceMissingError`, `LeadStoreBusy`, or `OSError` from the storage.
    """
    with store.reading() as connection:
        catalog = read_catalog(connection, source_id)
        if catalog is None:
            msg = f"source {source_id} no longer exists"
            raise SourceMissingError(msg)
        return storage.write_atomically(
            name,
            lambda out: stream_export(
                connection, catalog, filters, options, out, on_progress=on_progress
            ),
            partial_key=partial_key,
        )


def stream_export(
    connection: duckdb.DuckDBPyConnection,
    catalog: SourceCatalog,
    filters: FrozenFilters,
    options: ExportOptions,
    out: BinaryIO,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
) -> int:
    """Write the CSV of every lead that matches `filters` to `out`; return the count.

    `out` receives bytes only; it is not closed. See `ProgressCallback` for
    `on_progress`.
    """
    columns = select_columns(plan_columns(catalog), options.columns)
    query = build_lead_query(catalog.source.source_id, filters)
    write = csv_format.write_options(formula_guard=options.formula_guard)

    with _encoded(out, options) as sink:
        _write_header(sink, columns, options, write)
        written = 0
        windows, total = plan_windows(connection, query, batch_size)
        if on_progress is not None:
            on_progress(0, total)
        for start, end in windows:
            leads = connection.sql(query.select_sql, params=query.in_window(start, end))
            batch = leads.to_arrow_table()
            if batch.num_rows == 0:
                continue
            frame = _batch_frame(connection, batch, columns)
            _format(frame, columns, options).write_csv(sink, include_header=False, **write)
            written += batch.num_rows
            if on_progress is not None:
                on_progress(written, total)
    return written


def count_matching(
    connection: duckdb.DuckDBPyConnection, source_id: int, filters: FrozenFilters
) -> int:
    """How many leads of the source match `filters` now, as an export would write."""
    query = build_lead_query(source_id, filters)
    counts = connection.sql(query.count_sql, params=query.counted(MAX_LEAD_ID)).fetchall()
    return sum(leads for _, leads in counts)


def plan_windows(
    connection: duckdb.DuckDBPyConnection, query: LeadQuery, batch_size: int
) -> tuple[list[tuple[int, int]], int]:
    """`[start, end)` windows of lead ids that each hold at most about `batch_size`
    matching leads, and together hold them all; and how many leads match in all.

    One grouped count over the matching leads, in buckets of a tenth of a batch of
    ids, tells where they are; consecutive buckets are joined while their leads fit a
    batch, and buckets without matches are left out. So a selective export reads a
    few wide windows, and a whole-source export many narrow ones.
    """
    bucket_size = max(batch_size // 10, 1)
    counts = connection.sql(query.count_sql, params=query.counted(bucket_size)).fetchall()
    windows: list[tuple[int, int]] = []
    start = end = None
    held = 0
    for bucket, leads in counts:
        bucket_start = bucket * bucket_size
        if start is not None and (held + leads > batch_size or bucket_start != end):
            windows.append((start, end))
            start = None
        if start is None:
            start, held = bucket_start, 0
        end = bucket_start + bucket_size
        held += leads
    if start is not None:
        windows.append((start, end))
    return windows, sum(leads for _, leads in counts)


@contextmanager
def _encoded(out: BinaryIO, options: ExportOptions) -> Iterator[BinaryIO]:
    if options.compression == "gzip":
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as compressed:
            yield compressed  # type: ignore[misc]
    else:
        yield out


def _write_header(
    sink: BinaryIO, columns: tuple[Column, ...], options: ExportOptions, write: dict
) -> None:
    if options.include_bom:
        sink.write(csv_format.UTF8_BOM)
    headers = [column.header for column in columns]
    if options.formula_guard:
        headers = [csv_format.guard_cell(header) for header in headers]
    pl.DataFrame(schema=dict.fromkeys(headers, pl.String)).write_csv(
        sink, include_header=True, **write
    )


def _batch_frame(
    cursor: duckdb.DuckDBPyConnection, batch: pa.Table, columns: tuple[Column, ...]
) -> pl.DataFrame:
    """The batch's leads joined with their custom values and attributes, one row each."""
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    lead_ids = frame.select("lead_id")
    custom = {c.key: c.header for c in columns if c.kind is ColumnKind.CUSTOM}
    attributes = {c.key: c.header for c in columns if c.kind is ColumnKind.ATTRIBUTE}
    if custom:
        frame = frame.join(
            _custom_values(cursor, lead_ids, custom),
            on="lead_id",
            how="left",
            maintain_order="left",
        )
    if attributes:
        frame = frame.join(
            _attributes(cursor, lead_ids, attributes),
            on="lead_id",
            how="left",
            maintain_order="left",
        )
    return frame


def _custom_values(
    cursor: duckdb.DuckDBPyConnection, lead_ids: pl.DataFrame, headers: dict[str, str]
) -> pl.DataFrame:
    rows = _query_batch(
        cursor,
        "SELECT v.lead_id, v.field_key AS key, v.value FROM lead_custom_values v "
        "WHERE v.lead_id BETWEEN $low AND $high "
        "AND v.lead_id IN (SELECT lead_id FROM batch_lead_ids) "
        "AND list_contains($keys, v.field_key)",
        lead_ids,
        headers,
    )
    return _pivot(rows, headers)


def _attributes(
    cursor: duckdb.DuckDBPyConnection, lead_ids: pl.DataFrame, headers: dict[str, str]
) -> pl.DataFrame:
    rows = _query_batch(
        cursor,
        "SELECT a.lead_id, a.key, a.value FROM lead_attributes a "
        "WHERE a.lead_id BETWEEN $low AND $high "
        "AND a.lead_id IN (SELECT lead_id FROM batch_lead_ids) "
        "AND list_contains($keys, a.key)",
        lead_ids,
        headers,
    )
    return _pivot(_join_repeated_tags(rows), headers)


def _join_repeated_tags(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per lead and attribute: the distinct values of a key tagged more than
    once, in ascending code-point order, joined with `ATTRIBUTE_SEPARATOR`.

    Repeats are rare, so only they go through the (slower) aggregation.
    """
    repeated = pl.struct("lead_id", "key").is_duplicated()
    if not rows.select(repeated.any()).item():
        return rows
    joined = (
        rows.filter(repeated)
        .group_by("lead_id", "key")
        .agg(pl.col("value").unique().sort().str.join(ATTRIBUTE_SEPARATOR))
    )
    return pl.concat([rows.filter(~repeated), joined.select(rows.columns)])


def _query_batch(
    cursor: duckdb.DuckDBPyConnection,
    sql: str,
    lead_ids: pl.DataFrame,
    headers: dict[str, str],
    **extra_params: object,
) -> pl.DataFrame:
    """Run `sql` with the batch's lead ids visible as the view `batch_lead_ids`.

    The `BETWEEN` bounds let DuckDB skip row groups outside the batch before the
    semi-join looks at single ids.
    """
    ids = lead_ids.get_column("lead_id")
    params = {"low": ids.min(), "high": ids.max(), "keys": list(headers), **extra_params}
    cursor.register("batch_lead_ids", lead_ids)
    try:
        return cursor.sql(sql, params=params).pl()
    finally:
        cursor.unregister("batch_lead_ids")


def _pivot(rows: pl.DataFrame, headers: dict[str, str]) -> pl.DataFrame:
    """Long (lead_id, key, value) rows as one column per header, keyed by lead_id.

    Each lead has at most one row per key: the lead store's writer keeps custom values
    that way, and `_join_repeated_tags` makes attributes so.
    """
    # An Enum of the known headers pivots about twice as fast as free strings.
    header_type = pl.Enum(list(headers.values()))
    named = rows.with_columns(pl.col("key").replace_strict(headers, return_dtype=header_type))
    wide = named.pivot(on="key", index="lead_id", values="value", aggregate_function="first")
    missing = [pl.lit(None, pl.String).alias(h) for h in headers.values() if h not in wide]
    return wide.with_columns(missing) if missing else wide


def _format(
    frame: pl.DataFrame, columns: tuple[Column, ...], options: ExportOptions
) -> pl.DataFrame:
    """The batch's cells as the CSV writes them, in column order."""
    expressions = []
    for column in columns:
        source = column.key if column.kind is ColumnKind.SYSTEM else column.header
        value = pl.col(source)
        dtype = frame.schema[source]
        if isinstance(dtype, pl.Datetime):
            value = value.dt.strftime(csv_format.TIMESTAMP_FORMAT)
        elif dtype == pl.String and options.formula_guard:
            value = csv_format.guard_expression(value)
        expressions.append(value.alias(column.header))
    return frame.select(expressions)
