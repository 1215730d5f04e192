"""One dynamic partition per export request, keyed by the export id."""

from __future__ import annotations

import dagster as dg

export_partitions_def = dg.DynamicPartitionsDefinition(name="exports")

EXPORT_ID_TAG = "export_pipeline/export_id"
SOURCE_ID_TAG = "export_pipeline/source_id"
REQUESTED_BY_TAG = "export_pipeline/requested_by"
"""Run tags, so the Dagster UI can filter runs by export, source and requester. The
per-source concurrency limit in dagster.yaml counts runs by `SOURCE_ID_TAG`."""


def export_run_tags(export_id: str, source_id: int, requested_by: str) -> dict[str, str]:
    return {
        EXPORT_ID_TAG: export_id,
        SOURCE_ID_TAG: str(source_id),
        REQUESTED_BY_TAG: requested_by,
    }
