"""The Dagster code location: every asset, job, sensor and resource, wired to Settings."""

from __future__ import annotations

import dagster as dg

from export_pipeline.defs.exports.assets import lead_export
from export_pipeline.defs.exports.resources import (
    ExportStorageResource,
    LeadStoreResource,
    StatusTableResource,
)
from export_pipeline.defs.exports.sensors import (
    API_LAUNCH_SECONDS,
    export_job,
    export_request_sensor,
    export_status_sensor,
)
from export_pipeline.defs.notifications import notifications_definitions
from export_pipeline.defs.retention import retention_definitions
from export_pipeline.defs.schedules import schedules_definitions
from export_pipeline.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """Every area's definitions, merged; the resources of the export area are shared."""
    return dg.Definitions.merge(
        _export_definitions(settings),
        notifications_definitions(settings),
        retention_definitions(settings),
        schedules_definitions(settings),
    )


def _export_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[lead_export],
        jobs=[export_job],
        sensors=[export_request_sensor, export_status_sensor],
        resources={
            "status_table": StatusTableResource(
                database_url=settings.status_database_url,
                large_export_leads=settings.large_export_leads,
                api_launch_seconds=API_LAUNCH_SECONDS if settings.launch_from_api else 0.0,
            ),
            "lead_store": LeadStoreResource(
                path=str(settings.lead_store_path),
                wait_seconds=settings.lead_store_wait_seconds,
                memory_limit=settings.export_memory_limit,
            ),
            "export_storage": ExportStorageResource(
                url=settings.export_storage_url, storage_options=settings.storage_options
            ),
        },
    )


defs = build_definitions(Settings())
