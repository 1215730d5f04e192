"""Naive pandas: read every table of the source, pivot_table, merge, filter, to_csv."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from bench.tools._columns import LEAD_FIELDS, custom_and_attribute_keys
from bench.workloads import Workload


def run(store: Path, workload: Workload, out: Path) -> None:
    connection = duckdb.connect(str(store), read_only=True)
    connection.execute("SET TimeZone = 'UTC'")
    fields, attributes = custom_and_attribute_keys(connection, workload.source_id)
    source = [workload.source_id]
    leads = connection.sql("SELECT * FROM leads WHERE source_id = ?", params=source).df()
    values = connection.sql(
        "SELECT v.* FROM lead_custom_values v JOIN leads l USING (lead_id) WHERE l.source_id = ?",
        params=source,
    ).df()
    tags = connection.sql(
        "SELECT a.* FROM lead_attributes a JOIN leads l USING (lead_id) WHERE l.source_id = ?",
        params=source,
    ).df()
    connection.close()

    wide_values = values.pivot_table(
        index="lead_id", columns="field_key", values="value", aggfunc="first"
    )
    wide_tags = tags.pivot_table(
        index="lead_id",
        columns="key",
        values="value",
        aggfunc=lambda group: ";".join(sorted(set(group))),
    )
    merged = leads.merge(wide_values, on="lead_id", how="left").merge(
        wide_tags, on="lead_id", how="left"
    )
    merged = merged[_matches(merged, workload)].sort_values("lead_id")
    for column in fields + attributes:
        if column not in merged:
            merged[column] = None
    for column in ("created_at", "updated_at"):
        merged[column] = merged[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    columns = [*LEAD_FIELDS, *fields, *attributes, "created_at", "updated_at", "source_id"]
    merged[columns].to_csv(out, index=False, lineterminator="\r\n", na_rep="")


def _matches(frame: pd.DataFrame, workload: Workload) -> pd.Series:
    now = pd.Timestamp(datetime.now(UTC))
    keep = (frame["created_at"] <= now) & (frame["inserted_at"] <= now)
    if workload.status:
        keep &= frame["status"] == workload.status
    if "created_from" in workload.filters:
        keep &= frame["created_at"] >= pd.Timestamp(workload.filters["created_from"], tz="UTC")
    if "created_to" in workload.filters:
        keep &= frame["created_at"] < pd.Timestamp(workload.filters["created_to"], tz="UTC")
    if "search" in workload.filters:
        needle = workload.filters["search"].lower()
        full_name = frame["first_name"].fillna("") + " " + frame["last_name"].fillna("")
        texts = [frame["first_name"], frame["last_name"], full_name, frame["email"]]
        texts.append(frame["phone"])
        found = pd.Series(False, index=frame.index)
        for text in texts:
            found |= text.str.lower().str.contains(needle, regex=False, na=False)
        keep &= found
    return keep
