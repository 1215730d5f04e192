"""The daily schedule of the retention job."""

from __future__ import annotations

import dagster as dg

from export_pipeline.defs.retention.jobs import RetentionConfig
from export_pipeline.settings import Settings

RETENTION_CRON = "30 3 * * *"
RETENTION_TIME_ZONE = "UTC"
"""Every day at 03:30 UTC, a quiet hour for most users."""


def build_retention_schedule(settings: Settings, job: dg.JobDefinition) -> dg.ScheduleDefinition:
    """Runs `job` daily, counting the retention period back from the scheduled time, so
    that a late or repeated tick expires exactly the same exports."""

    @dg.schedule(
        name="export_retention_schedule",
        cron_schedule=RETENTION_CRON,
        execution_timezone=RETENTION_TIME_ZONE,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Deletes export files older than {settings.retention_days} days after completion."
        ),
    )
    def export_retention_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        scheduled = context.scheduled_execution_time
        config = RetentionConfig(
            retention_days=settings.retention_days, as_of=scheduled.isoformat()
        )
        return dg.RunRequest(
            run_key=f"retention-{scheduled.isoformat()}",
            run_config=dg.RunConfig(ops={"expire_old_exports": config}),
            tags={"export_pipeline/retention_as_of": scheduled.isoformat()},
        )

    return export_retention_schedule
