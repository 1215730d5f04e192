"""Sensors that connect the status table and Dagster in both directions.

`export_request_sensor` turns pending requests into a partition and a run; the run
key is the export id, so the sensor never starts a second run for one request. The
API usually launches the run itself at once: the sensor leaves new requests to it for
a while, and then only starts runs for requests that have no run tagged with their id.

`export_status_sensor` keeps the status table in step with the runs. Rather than
reacting to run events, which a sensor misses for good while the daemon is down or
when its code fails once, it looks at every export that is not settled yet and at
its latest run on each tick, so a missed tick is repaired by the next one.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster import DagsterEventType, DagsterRunStatus, RunsFilter
from dagster._core.storage.dagster_run import RunRecord
from sqlalchemy.orm import Session

from export_pipeline.defs.exports.assets import lead_export
from export_pipeline.defs.exports.partitions import export_partitions_def
from export_pipeline.defs.exports.resources import ExportStorageResource, StatusTableResource
from export_pipeline.defs.exports.run_launcher import WORKER_GONE
from export_pipeline.defs.exports.tags import EXPORT_ID_TAG, export_run_tags
from export_pipeline.defs.exports.watch import SILENT_RUN_SECONDS
from export_pipeline.status import exports as status_exports
from export_pipeline.status.models import Export
from export_pipeline.storage import FileFacts

export_job = dg.define_asset_job(
    "lead_export_job",
    selection=[lead_export],
    executor_def=dg.in_process_executor,
    description="Writes the CSV file of one export request.",
)

SENSOR_INTERVAL_SECONDS = 1
REQUESTS_PER_TICK = 50
API_LAUNCH_SECONDS = 8.0
"""How long a new request is left to the API's own launch before the request sensor
starts it: longer than the API's launch timeout, so that a launch that answered late
has created its run by then."""
_ACTIVE = (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING)
_UNFINISHED = (
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
)
WORKER_LOST = "the export run's worker stopped responding: it was killed or ran out of memory"
DAGSTER_OUTSIDE_FAILURE = "This run has been marked as failed from outside the execution context."
"""What Dagster records when a run's process vanished, e.g. its code server saw the
worker exit on a signal; the crash itself is only told in an engine event. Run
monitoring instead quotes `WORKER_GONE` when it finds a forked worker dead."""
CANCEL_WATCH = timedelta(hours=1)
"""How long after a cancellation the sensor still makes sure its run stops."""


@dg.sensor(
    job=export_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts one run per pending export request.",
)
def export_request_sensor(
    context: dg.SensorEvaluationContext, status_table: StatusTableResource
) -> dg.SensorResult | dg.SkipReason:
    now = datetime.now(UTC)
    with status_table.session() as session:
        left_to_api = status_table.api_launch_seconds
        awaiting = status_exports.exports_awaiting_run(
            session,
            limit=REQUESTS_PER_TICK,
            requested_before=now - timedelta(seconds=left_to_api) if left_to_api else None,
        )
        launched = _latest_runs(context.instance, awaiting) if awaiting else {}
        for export_id, record in launched.items():
            status_exports.attach_run(session, export_id, record.dagster_run.run_id, at=now)
        pending = [
            (export.id, export.source_id, export.requester.name)
            for export in awaiting
            if export.id not in launched
        ]
    if not pending:
        return dg.SkipReason(
            f"no pending export requests without a run ({len(launched)} launched by the API)"
        )

    export_ids = [export_id for export_id, _, _ in pending]
    return dg.SensorResult(
        dynamic_partitions_requests=[export_partitions_def.build_add_request(export_ids)],
        run_requests=[
            dg.RunRequest(
                run_key=export_id,
                partition_key=export_id,
                tags=export_run_tags(export_id, source_id, requested_by),
            )
            for export_id, source_id, requested_by in pending
        ],
    )


@dg.sensor(
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Moves exports to processing, completed, failed or cancelled as their runs do.",
)
def export_status_sensor(
    context: dg.SensorEvaluationContext,
    status_table: StatusTableResource,
    export_storage: ExportStorageResource,
) -> dg.SkipReason:
    now = datetime.now(UTC)
    with status_table.session() as session:
        silent = _fail_silent_runs(session, context.instance, export_storage, now)
        unsettled = list(status_exports.unsettled_exports(session))
        runs = _latest_runs(context.instance, unsettled)
        moved = 0
        for export in unsettled:
            record = runs.get(export.id)
            if record is not None and _sync_export(
                session,
                context.instance,
                export_storage,
                export,
                record,
                status_table.large_export_leads,
            ):
                moved += 1
        stopped = _stop_cancelled_runs(session, context.instance, export_storage, now)
    return dg.SkipReason(
        f"{moved} of {len(unsettled)} unsettled exports moved, {silent} silent runs failed, "
        f"{stopped} runs of cancelled exports stopped"
    )


def _fail_silent_runs(
    session: Session,
    instance: dg.DagsterInstance,
    export_storage: ExportStorageResource,
    now: datetime,
) -> int:
    """Fail the runs of processing exports that stopped beating: their worker was
    killed or died, and Dagster's default launcher cannot tell."""
    since = now - timedelta(seconds=SILENT_RUN_SECONDS)
    failed = 0
    for export in status_exports.silent_exports(session, since=since):
        record = _latest_runs(instance, [export]).get(export.id)
        if record is None or record.dagster_run.status not in _UNFINISHED:
            continue  # a finished run is synced below, whatever its heartbeat says
        reason = f"{WORKER_LOST} (silent for over {SILENT_RUN_SECONDS:.0f} s); retry the export"
        instance.report_run_failed(record.dagster_run, message=reason)
        export_storage.storage().discard_partial(export.id)
        if status_exports.mark_failed(session, export, error=reason, at=now):
            failed += 1
    return failed


def _stop_cancelled_runs(
    session: Session,
    instance: dg.DagsterInstance,
    export_storage: ExportStorageResource,
    now: datetime,
) -> int:
    """Stop the runs of recently cancelled exports, and remove a file that a run
    finished just as the export was cancelled."""
    cancelled = status_exports.recently_cancelled(session, since=now - CANCEL_WATCH)
    runs = _latest_runs(instance, cancelled)
    stopped = 0
    for export in cancelled:
        record = runs.get(export.id)
        if record is None:
            continue
        run = record.dagster_run
        if run.status in (DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED):
            instance.report_run_canceled(run, message="the export was cancelled")
            stopped += 1
        elif run.status in _UNFINISHED:
            # Asks the run's worker to stop; the run also stops by itself within a
            # heartbeat, as it reads the cancellation from the status table.
            instance.run_coordinator.cancel_run(run.run_id)
            stopped += 1
        elif run.status == DagsterRunStatus.SUCCESS:
            facts = _materialized_facts(instance, run.run_id)
            if facts is not None:
                export_storage.storage().delete(facts[1].uri)
        export_storage.storage().discard_partial(export.id)
    return stopped


def _latest_runs(instance: dg.DagsterInstance, exports: Sequence[Export]) -> dict[str, RunRecord]:
    """The run that speaks for each export: the one that claimed it, else its newest.

    A second run of one export (launched by the API and by the request sensor in the
    same instant) fails at once because the export is claimed; it must not speak for
    the export.
    """
    records = instance.get_run_records(
        filters=RunsFilter(
            job_name=export_job.name, tags={EXPORT_ID_TAG: [export.id for export in exports]}
        )
    )
    claimed_by = {export.id: export.dagster_run_id for export in exports}
    latest: dict[str, RunRecord] = {}
    for record in records:
        export_id = record.dagster_run.tags[EXPORT_ID_TAG]
        known = latest.get(export_id)
        if known is not None and known.dagster_run.run_id == claimed_by.get(export_id):
            continue
        if (
            known is None
            or record.dagster_run.run_id == claimed_by.get(export_id)
            or record.create_timestamp > known.create_timestamp
        ):
            latest[export_id] = record
    return latest


def _sync_export(
    session: Session,
    instance: dg.DagsterInstance,
    export_storage: ExportStorageResource,
    export: Export,
    record: RunRecord,
    large_threshold: int,
) -> bool:
    """Bring one export in line with its run; True if its status changed. A run that
    ended without a file may have left a partial one, if its worker was killed."""
    run = record.dagster_run
    now = datetime.now(UTC)
    if export.dagster_run_id != run.run_id:
        status_exports.attach_run(session, export.id, run.run_id, at=now)
        session.refresh(export)
    started_at = _moment(record.start_time) or now
    ended_at = _moment(record.end_time) or now

    if run.status in _ACTIVE:
        return status_exports.mark_processing(session, export, at=started_at)
    if run.status == DagsterRunStatus.SUCCESS:
        status_exports.mark_processing(session, export, at=started_at)
        facts = _materialized_facts(instance, run.run_id)
        if facts is None:
            return status_exports.mark_failed(
                session, export, error="the run succeeded but recorded no export file", at=now
            )
        lead_count, file_facts = facts
        return status_exports.mark_completed(
            session,
            export,
            lead_count=lead_count,
            facts=file_facts,
            at=ended_at,
            large_threshold=large_threshold,
        )
    if run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
        export_storage.storage().discard_partial(export.id)
    if run.status == DagsterRunStatus.FAILURE:
        status_exports.mark_processing(session, export, at=started_at)
        return status_exports.mark_failed(
            session, export, error=_failure_reason(instance, run.run_id), at=ended_at
        )
    if run.status == DagsterRunStatus.CANCELED:
        return status_exports.mark_cancelled(session, export, at=ended_at)
    return False


def _materialized_facts(instance: dg.DagsterInstance, run_id: str) -> tuple[int, FileFacts] | None:
    events = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    for event in reversed(events):
        materialization = event.asset_materialization
        if materialization is None:
            continue
        metadata = {key: value.value for key, value in materialization.metadata.items()}
        facts = FileFacts(
            uri=str(metadata["uri"]), size=int(metadata["file_size"]), sha256=metadata["sha256"]
        )
        return int(metadata["lead_count"]), facts
    return None


def _failure_reason(instance: dg.DagsterInstance, run_id: str) -> str:
    """The first line a person can act on: the step's error, else the run's failure."""
    events = instance.all_logs(
        run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}
    )
    for event in events:
        dagster_event = event.dagster_event
        if dagster_event and dagster_event.event_type == DagsterEventType.STEP_FAILURE:
            error = dagster_event.step_failure_data.error
            # Once retries run out, Dagster wraps the step's own error in the retry request.
            while error is not None and error.cls_name == "RetryRequestedFromPolicy":
                error = error.cause
            if error is not None:
                return _readable_error(error.cls_name, error.message)
    for event in events:
        message = event.dagster_event.message if event.dagster_event else None
        if message == DAGSTER_OUTSIDE_FAILURE or (message and WORKER_GONE in message):
            return f"{WORKER_LOST}; retry the export"
        if message:
            return _first_line(message)
    return "the run failed without recording a reason; see its logs in Dagster"


def _readable_error(cls_name: str | None, message: str) -> str:
    """A `Failure`'s description, which the asset words for people; for any other error
    only its class, since its message might quote lead values. The run's logs in
    Dagster keep the whole traceback."""
    if cls_name == "Failure":
        return _first_line(message.partition(": ")[2] or message)
    return f"the export run failed with an unexpected {cls_name}; see the run's logs in Dagster"


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line[:500]


def _moment(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else None
