"""The export asset: one partition per export request, one CSV file per partition."""

import time
from datetime import UTC, datetime

import dagster as dg

from export_pipeline.defs.exports.partitions import export_partitions_def
from export_pipeline.defs.exports.resources import (
    ExportStorageResource,
    LeadStoreResource,
    StatusTableResource,
)
from export_pipeline.defs.exports.watch import ExportCancelledError, RunWatch
from export_pipeline.engine.export import SourceMissingError, export_to_storage
from export_pipeline.engine.filters import FrozenFilters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.store import LeadStoreBusy
from export_pipeline.status import exports as status_exports
from export_pipeline.status.exports import attach_run, get_export, mark_processing, start_attempt
from export_pipeline.status.models import ExportStatus

RETRY_POLICY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL)
"""Transient failures (storage, status table, a lead store held too long) are tried
again after 2 and 4 seconds; failures that cannot pass are raised with retries off."""
OBSERVATION_SECONDS = 2.0


@dg.asset(
    partitions_def=export_partitions_def,
    description="CSV file of the leads matching one export request's frozen filters.",
    kinds={"duckdb", "polars", "csv"},
    retry_policy=RETRY_POLICY,
)
def lead_export(
    context: dg.AssetExecutionContext,
    status_table: StatusTableResource,
    lead_store: LeadStoreResource,
    export_storage: ExportStorageResource,
) -> dg.MaterializeResult:
    """Read the request, stream the matching leads into a file, report the file's facts.

    The file is written under a temporary name and moved into place when complete.
    The run claims the export (only one run may work on it), marks it processing,
    records progress and a heartbeat while it writes, stops if the export is
    cancelled, and marks it completed with the file's facts as soon as the file is in
    place, so users need not wait for the status sensor. The sensor still repairs any
    outcome a run could not record, such as a killed worker.
    """
    export_id = context.partition_key
    with status_table.session() as session:
        export = get_export(session, export_id)
        if export is None:
            raise _permanent(f"no export request has the id {export_id}")
        if export.status == ExportStatus.CANCELLED:
            _mark_run_canceling(context)
            raise _permanent(f"export {export_id} was cancelled")
        if export.status not in (ExportStatus.PENDING, ExportStatus.PROCESSING):
            raise _permanent(f"the export is already {export.status}")
        now = datetime.now(UTC)
        attach_run(session, export_id, context.run.run_id, at=now)
        session.refresh(export)
        if export.dagster_run_id != context.run.run_id:
            raise _permanent(f"run {export.dagster_run_id} is working on this export")
        mark_processing(session, export, at=now)
        source_id = export.source_id
        file_name = export.file_name
        filters = FrozenFilters.from_json(export.frozen_filters)
        options = ExportOptions.model_validate(export.options)
        attempt = start_attempt(session, export_id, at=datetime.now(UTC))
    context.log.info(f"export {export_id} of source {source_id}: attempt {attempt}")

    started = time.monotonic()
    storage = export_storage.storage()
    observe = _observer(context, export_id)
    try:
        with RunWatch(status_table, export_id) as watch:

            def on_progress(written: int, total: int) -> None:
                observe(written, total)
                watch.progress(written, total)

            lead_count, facts = export_to_storage(
                lead_store.store(),
                storage,
                source_id=source_id,
                name=f"{source_id}/{export_id}/{file_name}",
                partial_key=export_id,
                filters=filters,
                options=options,
                on_progress=on_progress,
            )
    except SourceMissingError as error:
        raise _permanent(str(error)) from error
    except Exception as error:
        # However the write stopped (the watch saw the cancellation, or the interrupt
        # that terminates the run reached DuckDB first), a cancelled export is not
        # retried, and Dagster records the run as cancelled rather than failed.
        if isinstance(error, ExportCancelledError) or _cancelled(status_table, export_id):
            _mark_run_canceling(context)
            raise _permanent(f"export {export_id} was cancelled") from error
        failure = _failure(error, storage.root)
        if failure is None:
            raise
        raise failure from error
    seconds = time.monotonic() - started
    with status_table.session() as session:
        export = get_export(session, export_id)
        if export is not None:
            status_exports.mark_completed(
                session,
                export,
                lead_count=lead_count,
                facts=facts,
                at=datetime.now(UTC),
                large_threshold=status_table.large_export_leads,
            )

    context.log.info(
        f"export {export_id} of source {source_id}: {lead_count} leads, "
        f"{facts.size} bytes in {seconds:.2f} s"
    )
    return dg.MaterializeResult(
        metadata={
            "export_id": export_id,
            "source_id": source_id,
            "lead_count": dg.MetadataValue.int(lead_count),
            "file_size": dg.MetadataValue.int(facts.size),
            "sha256": facts.sha256,
            "uri": dg.MetadataValue.path(facts.uri),
            "seconds": dg.MetadataValue.float(round(seconds, 3)),
        }
    )


def _failure(error: Exception, storage_root: str) -> dg.Failure | None:
    """An expected error worded for users, or None for an unexpected one, which is
    raised as it is. The retry policy tries both again. Where the storage is stays in
    Dagster (the failure's metadata and the traceback): users see the description."""
    if isinstance(error, LeadStoreBusy):
        return dg.Failure(description=str(error))
    if isinstance(error, OSError):
        reason = error.strerror or type(error).__name__
        return dg.Failure(
            description=f"could not write the export file: {reason}",
            metadata={"storage_root": storage_root},
        )
    return None


def _cancelled(status_table: StatusTableResource, export_id: str) -> bool:
    with status_table.session() as session:
        export = get_export(session, export_id)
        return export is None or export.status == ExportStatus.CANCELLED


def _mark_run_canceling(context: dg.AssetExecutionContext) -> None:
    """Dagster ends a run whose step fails while it is canceling as cancelled."""
    run = context.instance.get_run_by_id(context.run.run_id)
    if run is not None and run.status != dg.DagsterRunStatus.CANCELING:
        context.instance.report_run_canceling(run, message="the export was cancelled")


def _permanent(description: str) -> dg.Failure:
    """A failure a retry cannot mend."""
    return dg.Failure(description=description, allow_retries=False)


def _observer(context: dg.AssetExecutionContext, export_id: str):
    """Progress as asset observations in the run's event log, every couple of seconds
    and at the end, so the Dagster UI shows what the status table shows."""
    last = 0.0

    def observe(written: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if written < total and now - last < OBSERVATION_SECONDS:
            return
        last = now
        percent = 100 if total == 0 else round(100 * written / total)
        context.log_event(
            dg.AssetObservation(
                asset_key=context.asset_key,
                partition=export_id,
                metadata={"leads_written": written, "lead_total": total, "progress": percent},
            )
        )

    return observe
