"""The export asset: one partition per export request, one CSV file per partition."""

import time

import dagster as dg

from export_pipeline.defs.exports.partitions import export_partitions_def
from export_pipeline.defs.exports.resources import (
    ExportStorageResource,
    LeadStoreResource,
    StatusTableResource,
)
from export_pipeline.engine.export import SourceMissingError, export_to_storage
from export_pipeline.engine.filters import FrozenFilters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.store import LeadStoreBusy
from export_pipeline.status.exports import get_export
from export_pipeline.status.models import ExportStatus


@dg.asset(
    partitions_def=export_partitions_def,
    description="CSV file of the leads matching one export request's frozen filters.",
    kinds={"duckdb", "polars", "csv"},
)
def lead_export(
    context: dg.AssetExecutionContext,
    status_table: StatusTableResource,
    lead_store: LeadStoreResource,
    export_storage: ExportStorageResource,
) -> dg.MaterializeResult:
    """Read the request, stream the matching leads into a file, report the file's facts.

    The file is written under a temporary name and moved into place when complete.
    The status table is not written here: the status sensor reads the facts from this
    materialization, so the table follows Dagster's record of the run.
    """
    export_id = context.partition_key
    with status_table.session() as session:
        export = get_export(session, export_id)
        if export is None:
            raise dg.Failure(description=f"no export request has the id {export_id}")
        if export.status not in (ExportStatus.PENDING, ExportStatus.PROCESSING):
            raise dg.Failure(description=f"the export is already {export.status}")
        source_id = export.source_id
        file_name = export.file_name
        filters = FrozenFilters.from_json(export.frozen_filters)
        options = ExportOptions.model_validate(export.options)

    started = time.monotonic()
    storage = export_storage.storage()
    try:
        lead_count, facts = export_to_storage(
            lead_store.store(),
            storage,
            source_id=source_id,
            name=f"{source_id}/{export_id}/{file_name}",
            partial_key=export_id,
            filters=filters,
            options=options,
        )
    except (SourceMissingError, LeadStoreBusy) as error:
        raise dg.Failure(description=str(error)) from error
    except OSError as error:
        reason = error.strerror or type(error).__name__
        msg = f"could not write the export file to {storage.root}: {reason}"
        raise dg.Failure(description=msg) from error
    seconds = time.monotonic() - started

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
