"""Runs that die, runs of cancelled exports, and the heartbeat that tells them apart."""

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterRunStatus
from sqlalchemy import update

from export_pipeline.defs.exports.resources import StatusTableResource
from export_pipeline.defs.exports.sensors import export_status_sensor
from export_pipeline.defs.exports.tags import export_run_tags
from export_pipeline.defs.exports.watch import ExportCancelledError, RunWatch
from export_pipeline.status.models import Export
from export_pipeline.storage import PARTIAL_DIR
from export_pipeline_tests.defs.conftest import Product


def stored_run(
    instance: dg.DagsterInstance, product: Product, export_id: str, status: DagsterRunStatus
) -> dg.DagsterRun:
    """A run record of the export job in `status`, with no worker behind it."""
    run = dg.DagsterRun(
        job_name="lead_export_job",
        run_id=f"run-{export_id[:8]}-{status.value.lower()}",
        status=status,
        tags=export_run_tags(export_id, product.source_id, "alice"),
    )
    return instance.add_run(run)


def set_export(product: Product, export_id: str, **values: object) -> None:
    with product.sessions() as session:
        session.execute(update(Export).where(Export.id == export_id).values(**values))
        session.commit()


def sync(definitions: dg.Definitions, instance: dg.DagsterInstance) -> None:
    context = dg.build_sensor_context(instance=instance, resources=definitions.resources)
    export_status_sensor(context)


def test_a_run_that_stopped_beating_fails_its_export_and_leaves_no_partial_file(
    product: Product, definitions: dg.Definitions, instance: dg.DagsterInstance
):
    export_id = product.request()
    run = stored_run(instance, product, export_id, DagsterRunStatus.STARTED)
    set_export(
        product,
        export_id,
        status="processing",
        dagster_run_id=run.run_id,
        heartbeat_at=datetime.now(UTC) - timedelta(minutes=2),
    )
    partial = product.settings.resolved_home / "exports" / PARTIAL_DIR / export_id
    partial.mkdir(parents=True)
    (partial / "half.csv").write_text("lead_id\r\n1\r\n")

    sync(definitions, instance)

    export = product.export(export_id)
    assert export.status == "failed"
    assert "stopped responding" in export.error
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    assert not partial.exists()


def test_a_beating_run_is_left_alone(
    product: Product, definitions: dg.Definitions, instance: dg.DagsterInstance
):
    export_id = product.request()
    run = stored_run(instance, product, export_id, DagsterRunStatus.STARTED)
    set_export(
        product,
        export_id,
        status="processing",
        dagster_run_id=run.run_id,
        heartbeat_at=datetime.now(UTC) - timedelta(seconds=5),
    )

    sync(definitions, instance)

    assert product.export(export_id).status == "processing"
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED


def test_the_run_of_a_cancelled_export_that_has_not_started_never_starts(
    product: Product, definitions: dg.Definitions, instance: dg.DagsterInstance
):
    export_id = product.request()
    run = stored_run(instance, product, export_id, DagsterRunStatus.NOT_STARTED)
    set_export(product, export_id, status="cancelled", completed_at=datetime.now(UTC))

    sync(definitions, instance)

    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELED
    assert product.export(export_id).status == "cancelled"


def test_a_run_watch_beats_and_stops_the_export_once_it_is_cancelled(product: Product):
    export_id = product.request()
    status_table = StatusTableResource(database_url=product.settings.status_database_url)

    with RunWatch(status_table, export_id, interval=0.05) as watch:
        watch.progress(3, 10)
        time.sleep(0.2)
        export = product.export(export_id)
        assert (export.leads_written, export.lead_total) == (3, 10)
        assert export.heartbeat_at > datetime.now(UTC) - timedelta(seconds=5)
        set_export(product, export_id, status="cancelled", completed_at=datetime.now(UTC))
        time.sleep(0.2)
        with pytest.raises(ExportCancelledError):
            watch.progress(4, 10)


def test_each_attempt_is_counted_and_progress_reaches_the_total(
    product: Product, definitions: dg.Definitions, instance: dg.DagsterInstance
):
    export_id = product.request()
    instance.add_dynamic_partitions("exports", [export_id])

    result = definitions.resolve_job_def("lead_export_job").execute_in_process(
        partition_key=export_id,
        instance=instance,
        tags=export_run_tags(export_id, product.source_id, "alice"),
    )

    assert result.success
    export = product.export(export_id)
    assert export.attempts == 1
    assert (export.leads_written, export.lead_total) == (3, 3)
    observations = [
        event.asset_observation_data.asset_observation.metadata
        for event in result.all_events
        if event.event_type_value == "ASSET_OBSERVATION"
    ]
    assert observations[-1]["progress"].value == 100


def run_in_process(
    definitions: dg.Definitions, instance: dg.DagsterInstance, product: Product, export_id: str
) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions("exports", [export_id])
    return definitions.resolve_job_def("lead_export_job").execute_in_process(
        partition_key=export_id,
        instance=instance,
        tags=export_run_tags(export_id, product.source_id, "alice"),
        raise_on_error=False,
    )


def block_storage(product: Product) -> Path:
    """A file where the storage's folder for partial files must go: every write fails
    with an OSError until it is removed, as with a full or unmounted disk."""
    root = product.settings.resolved_home / "exports"
    root.mkdir(parents=True, exist_ok=True)
    obstacle = root / PARTIAL_DIR
    obstacle.write_text("not a folder")
    return obstacle


def remove_after_first_retry(instance: dg.DagsterInstance, obstacle: Path) -> threading.Thread:
    """Remove `obstacle` as soon as Dagster schedules the step's first retry."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for record in instance.get_run_records():
                retries = instance.all_logs(
                    record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY
                )
                if retries:
                    obstacle.unlink()
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def step_events(result: dg.ExecuteInProcessResult, event_type: str) -> list[dg.DagsterEvent]:
    return [event for event in result.all_events if event.event_type_value == event_type]


def test_a_transient_storage_failure_is_retried_and_the_attempts_are_shown(
    product: Product, definitions: dg.Definitions, instance: dg.DagsterInstance
):
    export_id = product.request()
    obstacle = block_storage(product)
    watcher = remove_after_first_retry(instance, obstacle)

    result = run_in_process(definitions, instance, product, export_id)
    watcher.join()

    assert result.success
    assert len(step_events(result, "STEP_UP_FOR_RETRY")) == 1
    export = product.export(export_id)
    assert export.status == "completed"
    assert export.attempts == 2
    assert export.lead_count == 3


def test_a_failure_that_persists_fails_the_export_after_every_retry_with_its_reason(
    product: Product, definitions: dg.Definitions, instance: dg.DagsterInstance
):
    export_id = product.request()
    block_storage(product)

    result = run_in_process(definitions, instance, product, export_id)
    sync(definitions, instance)

    assert not result.success
    assert len(step_events(result, "STEP_UP_FOR_RETRY")) == 2
    export = product.export(export_id)
    assert export.status == "failed"
    assert export.attempts == 3
    assert export.error == "could not write the export file: Not a directory"
    failure = step_events(result, "STEP_FAILURE")[-1].step_failure_data.user_failure_data
    assert failure.metadata["storage_root"].value == str(product.settings.resolved_home / "exports")


def test_a_run_whose_export_was_cancelled_ends_cancelled_without_retry(
    product: Product, definitions: dg.Definitions, instance: dg.DagsterInstance
):
    export_id = product.request()
    set_export(product, export_id, status="cancelled", completed_at=datetime.now(UTC))

    result = run_in_process(definitions, instance, product, export_id)

    assert not result.success
    assert step_events(result, "STEP_UP_FOR_RETRY") == []
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    assert run.status == DagsterRunStatus.CANCELED
