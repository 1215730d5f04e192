"""The export asset and both sensors against a real Dagster instance and real stores."""

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from sqlalchemy import select, update

from export_pipeline.definitions import build_definitions
from export_pipeline.defs.exports.sensors import export_request_sensor, export_status_sensor
from export_pipeline.defs.exports.tags import (
    EXPORT_ID_TAG,
    REQUESTED_BY_TAG,
    SOURCE_ID_TAG,
    export_run_tags,
)
from export_pipeline.engine.filters import ExportFilters
from export_pipeline.leads.store import LeadStore
from export_pipeline.status.models import AuditEvent, Export
from export_pipeline.storage import PARTIAL_DIR
from export_pipeline_tests.defs.conftest import Product


def run_export(
    definitions: dg.Definitions, instance: dg.DagsterInstance, product: Product, export_id: str
) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions("exports", [export_id])
    export = product.export(export_id)
    return definitions.resolve_job_def("lead_export_job").execute_in_process(
        partition_key=export_id,
        instance=instance,
        tags=export_run_tags(export_id, export.source_id, "alice"),
        raise_on_error=False,
    )


def sync_statuses(definitions: dg.Definitions, instance: dg.DagsterInstance) -> None:
    context = dg.build_sensor_context(instance=instance, resources=definitions.resources)
    export_status_sensor(context)


def test_request_sensor_asks_for_one_tagged_run_per_pending_export(
    product: Product, definitions: dg.Definitions, instance: dg.DagsterInstance
):
    first = product.request()
    second = product.request(ExportFilters(statuses=["new"]))

    context = dg.build_sensor_context(instance=instance, resources=definitions.resources)
    result = export_request_sensor(context)

    assert isinstance(result, dg.SensorResult)
    assert [request.run_key for request in result.run_requests] == [first, second]
    assert [request.partition_key for request in result.run_requests] == [first, second]
    assert result.run_requests[0].tags == {
        EXPORT_ID_TAG: first,
        SOURCE_ID_TAG: str(product.source_id),
        REQUESTED_BY_TAG: "alice",
    }
    (add_request,) = result.dynamic_partitions_requests
    assert list(add_request.partition_keys) == [first, second]


def test_request_sensor_adopts_a_run_the_api_launched_instead_of_starting_another(
    product: Product, definitions: dg.Definitions, instance: dg.DagsterInstance
):
    launched_by_api = product.request()
    waiting = product.request()
    # The API's launch queued a run but answered too late to record it on the export.
    queued = instance.create_run_for_job(
        job_def=definitions.resolve_job_def("lead_export_job"),
        tags=export_run_tags(launched_by_api, product.source_id, "alice"),
    )

    context = dg.build_sensor_context(instance=instance, resources=definitions.resources)
    sensed = export_request_sensor(context)

    assert [request.run_key for request in sensed.run_requests] == [waiting]
    assert product.export(launched_by_api).dagster_run_id == queued.run_id


def test_request_sensor_leaves_new_requests_to_the_api_when_it_launches_runs(
    product: Product, instance: dg.DagsterInstance
):
    definitions = build_definitions(product.settings.model_copy(update={"launch_from_api": True}))
    product.request()

    context = dg.build_sensor_context(instance=instance, resources=definitions.resources)

    assert isinstance(export_request_sensor(context), dg.SkipReason)


def test_request_sensor_skips_when_nothing_is_pending(
    definitions: dg.Definitions, instance: dg.DagsterInstance
):
    context = dg.build_sensor_context(instance=instance, resources=definitions.resources)
    assert isinstance(export_request_sensor(context), dg.SkipReason)


def test_successful_run_writes_the_file_and_completes_the_export(
    product: Product, definitions: dg.Definitions, instance: dg.DagsterInstance
):
    export_id = product.request(ExportFilters(statuses=["new"]), formula_guard=False)

    result = run_export(definitions, instance, product, export_id)
    sync_statuses(definitions, instance)

    assert result.success
    export = product.export(export_id)
    assert export.status == "completed"
    assert export.dagster_run_id == result.run_id
    assert export.lead_count == 2
    assert export.started_at is not None
    assert export.completed_at >= export.started_at
    path = Path(export.file_uri.removeprefix("file://"))
    content = path.read_bytes()
    assert export.file_size == len(content)
    rows = list(csv.DictReader(io.StringIO(content.decode())))
    assert [row["email"] for row in rows] == ["ada@example.com", "grace@example.com"]
    assert rows[1]["company"] == '=HYPERLINK("x")'
    materialization = result.asset_materializations_for_node("lead_export")[0]
    assert materialization.metadata["lead_count"].value == 2
    assert materialization.metadata["sha256"].value == export.sha256
    assert materialization.metadata["file_size"].value == len(content)
    assert materialization.metadata["uri"].value == export.file_uri


def test_status_sensor_completes_an_export_from_its_runs_file_facts(
    product: Product, definitions: dg.Definitions, instance: dg.DagsterInstance
):
    export_id = product.request(ExportFilters(statuses=["new"]))
    result = run_export(definitions, instance, product, export_id)
    written = product.export(export_id)
    # The run's own last write to the status table was lost (the database went away
    # as the run ended): only its materialization tells what it wrote.
    with product.sessions() as session:
        session.execute(
            update(Export)
            .where(Export.id == export_id)
            .values(
                status="processing",
                lead_count=None,
                file_uri=None,
                file_size=None,
                sha256=None,
                completed_at=None,
            )
        )
        session.commit()

    sync_statuses(definitions, instance)

    assert result.success
    export = product.export(export_id)
    assert export.status == "completed"
    assert (export.lead_count, export.file_uri, export.file_size, export.sha256) == (
        2,
        written.file_uri,
        written.file_size,
        written.sha256,
    )
    record = instance.get_run_record_by_id(result.run_id)
    assert export.completed_at == datetime.fromtimestamp(record.end_time, UTC)


def test_status_sensor_marks_a_pending_export_processing_once_its_run_started(
    product: Product, definitions: dg.Definitions, instance: dg.DagsterInstance
):
    export_id = product.request()
    run = instance.add_run(
        dg.DagsterRun(
            job_name="lead_export_job",
            run_id=f"run-{export_id[:8]}",
            status=dg.DagsterRunStatus.STARTED,
            tags=export_run_tags(export_id, product.source_id, "alice"),
        )
    )

    sync_statuses(definitions, instance)

    export = product.export(export_id)
    assert export.status == "processing"
    assert export.dagster_run_id == run.run_id
    assert export.started_at is not None


def test_failed_run_fails_the_export_with_a_readable_reason_and_leaves_no_file(
    product: Product, definitions: dg.Definitions, instance: dg.DagsterInstance
):
    export_id = product.request()
    with LeadStore(product.settings.lead_store_path).writing() as connection:
        connection.execute("DELETE FROM sources")

    result = run_export(definitions, instance, product, export_id)
    sync_statuses(definitions, instance)

    assert not result.success
    export = product.export(export_id)
    assert export.status == "failed"
    assert export.error == f"source {product.source_id} no longer exists"
    assert export.file_uri is None
    exports_dir = product.settings.resolved_home / "exports"
    leftovers = [p for p in exports_dir.rglob("*") if p.is_file()] if exports_dir.exists() else []
    assert leftovers == []
    assert not (exports_dir / PARTIAL_DIR / export_id).exists()


def test_status_sensor_leaves_exports_without_a_run_pending(
    product: Product, definitions: dg.Definitions, instance: dg.DagsterInstance
):
    export_id = product.request()

    sync_statuses(definitions, instance)

    assert product.export(export_id).status == "pending"


def test_a_run_never_repeats_a_settled_export(
    product: Product, definitions: dg.Definitions, instance: dg.DagsterInstance
):
    export_id = product.request()
    assert run_export(definitions, instance, product, export_id).success
    sync_statuses(definitions, instance)
    first = product.export(export_id)

    again = run_export(definitions, instance, product, export_id)

    assert not again.success
    assert product.export(export_id).sha256 == first.sha256


def test_status_sensor_marks_exports_from_the_configured_size_as_large(
    product: Product, instance: dg.DagsterInstance
):
    definitions = build_definitions(product.settings.model_copy(update={"large_export_leads": 2}))
    small = product.request(ExportFilters(statuses=["won"]))
    large = product.request(ExportFilters(statuses=["new"]))

    for export_id in (small, large):
        assert run_export(definitions, instance, product, export_id).success
    sync_statuses(definitions, instance)

    with product.session() as session:
        completed = {
            event.export_id: event.details
            for event in session.scalars(select(AuditEvent).where(AuditEvent.action == "completed"))
        }
    assert completed == {
        small: {"lead_count": 1, "file_size": product.export(small).file_size, "large": False},
        large: {"lead_count": 2, "file_size": product.export(large).file_size, "large": True},
    }
