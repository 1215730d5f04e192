"""Hand-written Polars: the source's tables as lazy frames, pivot, join, `sink_csv`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from bench.tools._columns import LEAD_FIELDS, TRAILING, custom_and_attribute_keys
from bench.workloads import Workload


def lead_filter(workload: Workload) -> pl.Expr:
    now = datetime.now(UTC)
    condition = (pl.col("created_at") <= now) & (pl.col("inserted_at") <= now)
    if workload.status:
        condition &= pl.col("status") == workload.status
    if "created_from" in workload.filters:
        start = datetime.fromisoformat(workload.filters["created_from"]).replace(tzinfo=UTC)
        condition &= pl.col("created_at") >= start
    if "created_to" in workload.filters:
        end = datetime.fromisoformat(workload.filters["created_to"]).replace(tzinfo=UTC)
        condition &= pl.col("created_at") < end
    if "search" in workload.filters:
        needle = workload.filters["search"].lower()
        full_name = pl.concat_str("first_name", "last_name", separator=" ", ignore_nulls=True)
        texts = [pl.col("first_name"), pl.col("last_name"), full_name, pl.col("email")]
        texts.append(pl.col("phone"))
        matches = [text.str.to_lowercase().str.contains(needle, literal=True) for text in texts]
        condition &= pl.any_horizontal(matches)
    return condition


def run(store: Path, workload: Workload, out: Path) -> None:
    connection = duckdb.connect(str(store), read_only=True)
    connection.execute("SET TimeZone = 'UTC'")
    fields, attributes = custom_and_attribute_keys(connection, workload.source_id)
    source = workload.source_id

    def scan(sql: str) -> pl.LazyFrame:
        return pl.from_arrow(connection.sql(sql, params=[source]).to_arrow_table()).lazy()

    leads = scan("SELECT * FROM leads WHERE source_id = ?").filter(lead_filter(workload))
    values = scan(
        "SELECT v.* FROM lead_custom_values v JOIN leads l USING (lead_id) WHERE l.source_id = ?"
    )
    tags = scan(
        "SELECT a.* FROM lead_attributes a JOIN leads l USING (lead_id) WHERE l.source_id = ?"
    )
    ids = leads.select("lead_id")
    wide_values = values.join(ids, on="lead_id", how="semi").pivot(
        on="field_key",
        on_columns=fields,
        index="lead_id",
        values="value",
        aggregate_function="first",
    )
    wide_tags = (
        tags.join(ids, on="lead_id", how="semi")
        .group_by("lead_id", "key")
        .agg(pl.col("value").unique().sort().str.join(";"))
        .pivot(
            on="key",
            on_columns=attributes,
            index="lead_id",
            values="value",
            aggregate_function="first",
        )
    )
    timestamp = "%Y-%m-%dT%H:%M:%SZ"
    result = (
        leads.join(wide_values, on="lead_id", how="left")
        .join(wide_tags, on="lead_id", how="left")
        .sort("lead_id")
        .select(
            *LEAD_FIELDS,
            *fields,
            *attributes,
            pl.col("created_at").dt.strftime(timestamp),
            pl.col("updated_at").dt.strftime(timestamp),
            "source_id",
        )
    )
    assert list(TRAILING) == ["created_at", "updated_at", "source_id"]
    result.sink_csv(out, line_terminator="\r\n", null_value="")
    connection.close()
