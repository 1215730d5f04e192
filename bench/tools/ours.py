"""The export engine, called as the export asset calls it: through the storage's
atomic write, with the run's progress heartbeat writing to a status table. Only
Dagster's own event log is left out."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.workloads import Workload
from export_pipeline.defs.exports.resources import StatusTableResource
from export_pipeline.defs.exports.watch import RunWatch
from export_pipeline.engine.export import export_to_storage
from export_pipeline.engine.filters import ExportFilters, freeze_filters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import get_source
from export_pipeline.leads.store import LeadStore
from export_pipeline.settings import Settings
from export_pipeline.status.database import make_engine, make_session_factory, migrate
from export_pipeline.status.exports import request_export
from export_pipeline.status.users import create_user
from export_pipeline.storage import ExportStorage


def run(store: Path, workload: Workload, out: Path) -> None:
    lead_store = LeadStore(store, memory_limit=Settings().export_memory_limit)
    filters = ExportFilters(**workload.filters)
    options = ExportOptions(formula_guard=False)
    requested_at = datetime.now(UTC)
    frozen = freeze_filters(filters, requested_at=requested_at)
    with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
        database_url = f"sqlite:///{scratch}/status.sqlite3"
        export_id = _requested_export(
            database_url, lead_store, workload, filters, options, requested_at
        )
        status_table = StatusTableResource(database_url=database_url)
        storage = ExportStorage(str(Path(scratch) / "exports"))
        with RunWatch(status_table, export_id) as watch:
            _, facts = export_to_storage(
                lead_store,
                storage,
                source_id=workload.source_id,
                name=out.name,
                partial_key=export_id,
                filters=frozen,
                options=options,
                on_progress=watch.progress,
            )
        shutil.move(facts.uri.removeprefix("file://"), out)


def _requested_export(database_url, lead_store, workload, filters, options, requested_at) -> str:
    engine = make_engine(database_url)
    migrate(engine)
    with make_session_factory(engine)() as session, session.begin():
        with lead_store.reading() as connection:
            source = get_source(connection, workload.source_id)
        assert source is not None
        export = request_export(
            session,
            source=source,
            requested_by=create_user(session, "bench").id,
            filters=filters,
            frozen=freeze_filters(filters, requested_at=requested_at),
            options=options,
            requested_at=requested_at,
        )
        return export.id
