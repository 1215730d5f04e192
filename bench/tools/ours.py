"""The export engine, called exactly as the export asset calls it."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from bench.workloads import Workload
from export_pipeline.engine.export import export_to_storage
from export_pipeline.engine.filters import ExportFilters, freeze_filters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.store import LeadStore
from export_pipeline.settings import Settings
from export_pipeline.storage import ExportStorage


def run(store: Path, workload: Workload, out: Path) -> None:
    filters = freeze_filters(ExportFilters(**workload.filters), requested_at=datetime.now(UTC))
    storage = ExportStorage(str(out.parent / "ours-storage"))
    _, facts = export_to_storage(
        LeadStore(store, memory_limit=Settings().export_memory_limit),
        storage,
        source_id=workload.source_id,
        name=out.name,
        partial_key="bench",
        filters=filters,
        options=ExportOptions(formula_guard=False),
    )
    shutil.move(facts.uri.removeprefix("file://"), out)
