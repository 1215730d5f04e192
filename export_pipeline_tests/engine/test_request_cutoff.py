"""The request time as a cut-off, against an import that runs while the request arrives."""

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from export_pipeline.engine.export import stream_export
from export_pipeline.engine.filters import ExportFilters, freeze_filters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import read_catalog
from export_pipeline.leads.importer import ColumnMapping, import_leads
from export_pipeline.leads.store import LeadStore


class ReadClock:
    """Wraps the file an import reads and notes the time of its first read: a moment
    at which the import has started but has not written anything yet."""

    def __init__(self) -> None:
        self.first_read: datetime | None = None

    def wrap(self, file: BinaryIO, _size: int) -> BinaryIO:
        clock = self

        class Noting(io.BufferedReader):
            def read(self, size: int = -1) -> bytes:
                clock.first_read = clock.first_read or datetime.now(UTC)
                return super().read(size)

            def readinto(self, buffer) -> int:  # pyarrow reads through readinto
                clock.first_read = clock.first_read or datetime.now(UTC)
                return super().readinto(buffer)

        return Noting(file.raw)


def export_emails(store: LeadStore, source_id: int, requested_at: datetime) -> list[str]:
    frozen = freeze_filters(ExportFilters(), requested_at=requested_at)
    out = io.BytesIO()
    with store.reading() as connection:
        catalog = read_catalog(connection, source_id)
        assert catalog is not None
        stream_export(connection, catalog, frozen, ExportOptions(formula_guard=False), out)
    lines = out.getvalue().decode().splitlines()[1:]
    return [line.split(",")[3] for line in lines]


def test_leads_of_an_import_still_reading_its_file_are_not_in_a_request_made_meanwhile(
    tmp_path: Path,
):
    store = LeadStore(tmp_path / "leads.duckdb")
    mapping = ColumnMapping(fields={"email": "Email"})
    first = tmp_path / "first.csv"
    first.write_text("Email\nold@example.com\n")
    source_id = import_leads(store, first, source_name="S", mapping=mapping).source_id
    second = tmp_path / "second.csv"
    second.write_text("Email\nnew@example.com\n")
    clock = ReadClock()

    import_leads(store, second, source_name="S", mapping=mapping, wrap_file=clock.wrap)

    assert clock.first_read is not None
    assert export_emails(store, source_id, clock.first_read) == ["old@example.com"]
    assert export_emails(store, source_id, datetime.now(UTC)) == [
        "old@example.com",
        "new@example.com",
    ]
