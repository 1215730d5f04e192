"""The sensor that files the due ticks of export schedules.

It keeps no state of its own: each schedule's next tick lives in the status table, so
a restarted daemon, or a second evaluation racing the first, files every tick once.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from export_pipeline.defs.exports.resources import LeadStoreResource, StatusTableResource
from export_pipeline.defs.schedules.filing import file_due_schedules
from export_pipeline.leads.store import LeadStore, LeadStoreBusy

SENSOR_INTERVAL_SECONDS = 30
"""A tick is filed within about this long (plus the daemon's own delay) of its time."""
LEAD_STORE_WAIT_SECONDS = 10.0
"""How long an evaluation waits for an import to release the lead store; the ticks
stay due and the next evaluation tries again."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build_export_schedule_sensor(
    clock: Callable[[], datetime] = _utc_now,
) -> dg.SensorDefinition:
    """The sensor, evaluating at the instants `clock` gives (the wall clock unless a test
    names its own)."""

    @dg.sensor(
        name="export_schedule_sensor",
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Files an export request for each due tick of an export schedule.",
    )
    def export_schedule_sensor(
        context: dg.SensorEvaluationContext,
        status_table: StatusTableResource,
        lead_store: LeadStoreResource,
    ) -> dg.SkipReason:
        store = LeadStore(
            Path(lead_store.path),
            wait_seconds=min(lead_store.wait_seconds, LEAD_STORE_WAIT_SECONDS),
        )
        try:
            filings = file_due_schedules(status_table, store, now=clock())
        except LeadStoreBusy:
            return dg.SkipReason("the lead store is busy; due schedules are filed next time")
        if not filings:
            return dg.SkipReason("no export schedule is due")
        filed = [filing for filing in filings if filing.export_id is not None]
        for filing in filings:
            if filing.error is not None:
                context.log.warning(
                    f"export schedule {filing.schedule_id} skipped its tick at "
                    f"{filing.tick.isoformat()}: {filing.error}"
                )
        return dg.SkipReason(
            f"{len(filed)} exports filed, {len(filings) - len(filed)} due ticks skipped "
            "(see each schedule's last_error)"
        )

    return export_schedule_sensor


export_schedule_sensor = build_export_schedule_sensor()
