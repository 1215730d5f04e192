"""Tags of export runs, apart from Dagster so that light callers (the CLI's `serve`)
can name them without importing Dagster."""

from __future__ import annotations

EXPORT_ID_TAG = "export_pipeline/export_id"
SOURCE_ID_TAG = "export_pipeline/source_id"
REQUESTED_BY_TAG = "export_pipeline/requested_by"
"""Run tags, so the Dagster UI can filter runs by export, source and requester. The
per-source concurrency limit of the run queue counts runs by `SOURCE_ID_TAG`."""


def export_run_tags(export_id: str, source_id: int, requested_by: str) -> dict[str, str]:
    return {
        EXPORT_ID_TAG: export_id,
        SOURCE_ID_TAG: str(source_id),
        REQUESTED_BY_TAG: requested_by,
    }
