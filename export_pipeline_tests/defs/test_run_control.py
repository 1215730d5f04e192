"""Runs that die, runs of cancelled exports, and the heartbeat that tells them apart."""

import time
from datetime import UTC, datetime, timedelta

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
