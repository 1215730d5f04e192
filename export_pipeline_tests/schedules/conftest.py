"""Fixtures of the schedule and retention tests: a real lead store and status table in
a temporary home, a real Dagster instance, and the real API over HTTP.

The API tests reuse the API harness (`export_pipeline_tests/api/conftest.py`) with a
server of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from export_pipeline.api.main import create_app
from export_pipeline.definitions import build_definitions
from export_pipeline.engine.filters import ExportFilters, freeze_filters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import Source, get_source
from export_pipeline.leads.importer import ColumnMapping, import_leads
from export_pipeline.leads.store import LeadStore
from export_pipeline.settings import Settings
from export_pipeline.status.database import make_engine, make_session_factory, migrate
from export_pipeline.status.exports import mark_completed, request_export
from export_pipeline.status.links import issue_link
from export_pipeline.status.models import AuditEvent, Export, ExportSchedule, Role
from export_pipeline.status.schedules import create_schedule
from export_pipeline.status.users import create_user, grant_role
from export_pipeline.storage import ExportStorage
from export_pipeline_tests.api.conftest import ApiServer, Harness, built_harness

LEADS_CSV = """\
First,Last,Email,Stage,Campaign,Created
Ada,Lovelace,ada@example.com,new,spring,2026-03-27T12:00:00Z
Alan,Turing,alan@example.com,won,autumn,2026-03-28T23:30:00Z
Grace,Hopper,grace@example.com,new,autumn,2026-03-29T21:30:00Z
"""


@dataclass
class Product:
    """An embedded product in a temporary home, its status table on SQLite or PostgreSQL."""

    settings: Settings
    sessions: sessionmaker[Session]
    source_id: int
    owner_id: int

    def schedule(
        self,
        *,
        cron: str = "0 6 * * *",
        time_zone: str = "Europe/Berlin",
        filters: dict[str, object] | None = None,
        options: dict[str, object] | None = None,
        enabled: bool = True,
        created_at: datetime,
        owner_id: int | None = None,
    ) -> str:
        """A schedule stored as the API stores a valid one, first due after `created_at`."""
        with self.sessions() as session, session.begin():
            schedule = create_schedule(
                session,
                source_id=self.source_id,
                owner_id=owner_id or self.owner_id,
                name="daily new leads",
                cron=cron,
                time_zone=time_zone,
                filters=filters or {},
                options=options or {},
                enabled=enabled,
                now=created_at,
            )
            return schedule.id

    def stored_schedule(self, schedule_id: str) -> ExportSchedule:
        with self.sessions() as session:
            return session.get_one(ExportSchedule, schedule_id)

    def exports(self) -> list[Export]:
        with self.sessions() as session:
            return list(session.scalars(select(Export).order_by(Export.requested_at)))

    def events(self, action: str) -> list[AuditEvent]:
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
                )
            )

    def user(self, name: str, role: Role | None) -> int:
        with self.sessions() as session, session.begin():
            user = create_user(session, name)
            if role is not None:
                grant_role(session, user, self.source_id, role)
            return user.id


def build_product(home: Path, database_url: str | None) -> Product:
    settings = Settings(
        home=home,
        lead_store=None,
        database_url=database_url,
        storage_url=None,
    )
    csv_path = home / "leads.csv"
    home.mkdir(parents=True, exist_ok=True)
    csv_path.write_text(LEADS_CSV, encoding="utf-8")
    result = import_leads(
        LeadStore(settings.lead_store_path),
        csv_path,
        source_name="Sample",
        mapping=ColumnMapping(
            fields={"first_name": "First", "last_name": "Last", "email": "Email"},
            status_column="Stage",
            attribute_columns=("Campaign",),
            created_at_column="Created",
        ),
    )
    engine = make_engine(settings.status_database_url)
    sessions = make_session_factory(engine)
    with sessions() as session, session.begin():
        owner = create_user(session, "owner")
        grant_role(session, owner, result.source_id, Role.EXPORTER)
        owner_id = owner.id
    return Product(settings, sessions, result.source_id, owner_id)


@pytest.fixture
def product(tmp_path: Path, status_database_url: str) -> Product:
    """On SQLite and on PostgreSQL (`status_database_url` migrates either)."""
    return build_product(tmp_path / "home", status_database_url)


@pytest.fixture
def sqlite_product(tmp_path: Path) -> Product:
    """On SQLite only, for the slower Dagster tests."""
    url = f"sqlite:///{tmp_path / 'status.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return build_product(tmp_path / "home", url)


@pytest.fixture
def definitions(sqlite_product: Product) -> dg.Definitions:
    return build_definitions(sqlite_product.settings)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture(scope="session")
def schedule_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with built_harness(tmp_path_factory.mktemp("schedules_api_home")) as built:
        yield built


@pytest.fixture(scope="session")
def schedule_server(schedule_harness: Harness) -> Iterator[ApiServer]:
    with ApiServer(create_app(schedule_harness.settings)) as running:
        yield running


@pytest.fixture
def api(schedule_server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=schedule_server.base_url + "/api/v1", timeout=10) as http:
        yield http


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def completed_export(
    product: Product, *, completed_at: datetime, links: int = 0
) -> tuple[str, Path]:
    """An export completed at `completed_at`, its file written through export storage, and
    `links` unexpired download links; returns its id and its file's path."""
    with LeadStore(product.settings.lead_store_path).reading() as connection:
        source = get_source(connection, product.source_id)
    requested_at = completed_at - timedelta(minutes=1)
    storage = ExportStorage(product.settings.export_storage_url)
    with product.sessions() as session, session.begin():
        export = _request_whole_source(session, product, source, requested_at)
        _, facts = storage.write_atomically(
            f"{product.source_id}/{export.id}/{export.file_name}",
            lambda out: out.write(b"lead_id\r\n1\r\n"),
            partial_key=export.id,
        )
        mark_completed(session, export, lead_count=1, facts=facts, at=completed_at)
        for _ in range(links):
            issue_link(
                session,
                export,
                product.owner_id,
                ttl=timedelta(days=365),
                now=completed_at,
            )
        return export.id, Path(facts.uri.removeprefix("file://"))


def pending_export(product: Product, *, requested_at: datetime) -> str:
    with LeadStore(product.settings.lead_store_path).reading() as connection:
        source = get_source(connection, product.source_id)
    with product.sessions() as session, session.begin():
        return _request_whole_source(session, product, source, requested_at).id


def _request_whole_source(
    session: Session, product: Product, source: Source, requested_at: datetime
) -> Export:
    filters = ExportFilters()
    return request_export(
        session,
        source=source,
        requested_by=product.owner_id,
        filters=filters,
        frozen=freeze_filters(filters, requested_at=requested_at),
        options=ExportOptions(),
        requested_at=requested_at,
    )
