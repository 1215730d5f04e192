from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy.orm import Session

from export_pipeline.definitions import build_definitions
from export_pipeline.engine.filters import ExportFilters, freeze_filters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import get_source
from export_pipeline.leads.importer import ColumnMapping, import_leads
from export_pipeline.leads.store import LeadStore
from export_pipeline.settings import Settings
from export_pipeline.status.database import make_engine, make_session_factory, migrate
from export_pipeline.status.exports import request_export
from export_pipeline.status.models import Export
from export_pipeline.status.users import create_user

LEADS_CSV = """\
First,Last,Email,Phone,Stage,Campaign,Company
Ada,Lovelace,ada@example.com,+44 20 7946 0000,new,spring,"Analytical, Ltd"
Alan,Turing,alan@example.com,020 7946 0001,won,autumn,Bletchley
Grace,Hopper,grace@example.com,(555) 010-0100,new,autumn,=HYPERLINK("x")
"""


@dataclass
class Product:
    """An embedded product in a temporary home: lead store, status table, settings."""

    settings: Settings
    sessions: object
    source_id: int
    user_id: int

    def request(self, filters: ExportFilters | None = None, **options: object) -> str:
        now = datetime.now(UTC)
        filters = filters or ExportFilters()
        with self.sessions() as session, session.begin():
            with LeadStore(self.settings.lead_store_path).reading() as connection:
                source = get_source(connection, self.source_id)
            export = request_export(
                session,
                source=source,
                requested_by=self.user_id,
                filters=filters,
                frozen=freeze_filters(filters, requested_at=now),
                options=ExportOptions(**options),
                requested_at=now,
            )
            return export.id

    def export(self, export_id: str) -> Export:
        with self.sessions() as session:
            export = session.get(Export, export_id)
            assert export is not None
            return export

    def session(self) -> Session:
        return self.sessions()


@pytest.fixture
def product(tmp_path: Path) -> Product:
    settings = Settings(home=tmp_path / "home")
    csv_path = tmp_path / "leads.csv"
    csv_path.write_text(LEADS_CSV, encoding="utf-8")
    result = import_leads(
        LeadStore(settings.lead_store_path),
        csv_path,
        source_name="Sample",
        mapping=ColumnMapping(
            fields={"first_name": "First", "last_name": "Last", "email": "Email", "phone": "Phone"},
            status_column="Stage",
            attribute_columns=("Campaign",),
        ),
    )
    engine = make_engine(settings.status_database_url)
    migrate(engine)
    sessions = make_session_factory(engine)
    with sessions() as session, session.begin():
        user_id = create_user(session, "alice").id
    return Product(settings, sessions, result.source_id, user_id)


@pytest.fixture
def definitions(product: Product) -> dg.Definitions:
    return build_definitions(product.settings)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance
