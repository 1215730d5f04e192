"""Dagster side of retention: a daily job that deletes export files past
`settings.retention_days` and marks their exports `expired`."""

from __future__ import annotations

import dagster as dg

from export_pipeline.defs.retention.jobs import build_retention_job
from export_pipeline.defs.retention.schedules import build_retention_schedule
from export_pipeline.settings import Settings


def retention_definitions(settings: Settings) -> dg.Definitions:
    """The job and its schedule; they use the export area's `status_table` and
    `export_storage`."""
    job = build_retention_job(settings)
    return dg.Definitions(jobs=[job], schedules=[build_retention_schedule(settings, job)])
