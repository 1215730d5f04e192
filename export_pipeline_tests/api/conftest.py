"""A real API server on a loopback port, over a real lead store, status table and files.

One server runs for the whole test session; each test makes its own users, so tests
do not depend on one another. Exports are made ready the way a Dagster run does it:
the engine streams the CSV into export storage and the status table marks it done.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from export_pipeline.api.main import create_app
from export_pipeline.engine.export import stream_export
from export_pipeline.engine.filters import ExportFilters, FrozenFilters, freeze_filters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import read_catalog
from export_pipeline.leads.importer import ColumnMapping, import_leads
from export_pipeline.leads.store import LeadStore
from export_pipeline.settings import Settings
from export_pipeline.status.database import make_engine, make_session_factory, migrate
from export_pipeline.status.exports import mark_completed, request_export
from export_pipeline.status.links import issue_link
from export_pipeline.status.models import AuditEvent, Export, Role, SourcePermission, User
from export_pipeline.status.users import create_api_key, create_user, grant_role
from export_pipeline.storage import ExportStorage

PUBLIC_URL = "https://exports.example.test"

ACME_CSV = """\
First Name,Last Name,Email,Phone,Zip,Status,Segment,Lead Owner,Budget,Created
Ada,Lovelace,ada.lovelace@example.com,+1 555-0100,02134,new,vip,Grace Hopper,1200,2026-01-05
Zelda,Quixote,zelda.quixote@example.net,555-0199,00501,won,,Marvin Minsky,,2026-02-10
Bert,Umlaut,bert.umlaut@example.org,(555) 010-2222,10001,lost,standard,Grace Hopper,300,2026-03-01
"""
OTHER_CSV = """\
First Name,Email,Status,Created
Otto,otto.other@example.com,new,2026-01-01
"""
MAPPING = ColumnMapping(
    fields={
        "first_name": "First Name",
        "last_name": "Last Name",
        "email": "Email",
        "phone": "Phone",
        "zip_code": "Zip",
    },
    status_column="Status",
    attribute_columns=("Segment",),
    created_at_column="Created",
)
LEAD_VALUES = (
    "Lovelace",
    "ada.lovelace@example.com",
    "555-0100",
    "02134",
    "Zelda",
    "zelda.quixote@example.net",
    "00501",
    "Umlaut",
    "bert.umlaut@example.org",
    "(555) 010-2222",
    "Grace Hopper",
    "Marvin Minsky",
    "otto.other@example.com",
)
"""Values of leads that must never show up in logs or error bodies."""


def api_settings(home: Path, **overrides: object) -> Settings:
    """Settings under `home`, whatever `EXPORT_PIPELINE_*` the environment holds."""
    values: dict[str, object] = {
        "home": home,
        "lead_store": None,
        "database_url": None,
        "storage_url": None,
        "public_url": PUBLIC_URL,
        # No Dagster runs behind this API: requests stay pending, as the tests expect.
        "launch_from_api": False,
        **overrides,
    }
    return Settings(**values)


class ApiServer:
    """Uvicorn serving `app` from a background thread on a free loopback port.

    Uvicorn's access log is off, as in production, and uvicorn leaves logging alone,
    so every record reaches pytest's capture. (That capture gives uvicorn's access
    logger handlers, which turns its log back on: the app's redaction filter is then
    what keeps tokens out of it.)
    """

    def __init__(self, app: FastAPI) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        host, port = self._socket.getsockname()
        self.base_url = f"http://{host}:{port}"
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> ApiServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                msg = "the API server did not start within 10 s"
                raise RuntimeError(msg)
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@dataclass(frozen=True)
class Person:
    user_id: int
    name: str
    key: str
    key_id: int

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass(frozen=True)
class Harness:
    """The stores behind the server, and shortcuts to put things in them."""

    settings: Settings
    sessions: sessionmaker[Session]
    lead_store: LeadStore
    storage: ExportStorage
    acme_id: int
    other_id: int

    def person(self, roles: dict[int, Role] | None = None) -> Person:
        with self.sessions() as session:
            user = create_user(session, f"user-{uuid.uuid4().hex[:10]}")
            key, row = create_api_key(session, user)
            for source_id, role in (roles or {}).items():
                grant_role(session, user, source_id, role)
            session.commit()
            return Person(user_id=user.id, name=user.name, key=key, key_id=row.id)

    def grant(self, person: Person, source_id: int, role: Role) -> None:
        with self.sessions() as session:
            user = session.get_one(User, person.user_id)
            grant_role(session, user, source_id, role)
            session.commit()

    def revoke_roles(self, person: Person) -> None:
        with self.sessions() as session:
            session.execute(
                delete(SourcePermission).where(SourcePermission.user_id == person.user_id)
            )
            session.commit()

    def link_to(self, person: Person, export_id: str) -> str:
        """A link made straight in the table, whatever the export's status."""
        with self.sessions() as session:
            export = session.get_one(Export, export_id)
            token, _ = issue_link(
                session, export, person.user_id, ttl=timedelta(hours=1), now=datetime.now(UTC)
            )
            session.commit()
            return token

    def pending_export(
        self, person: Person, source_id: int, options: ExportOptions | None = None
    ) -> str:
        with self.lead_store.reading() as connection:
            catalog = read_catalog(connection, source_id)
        assert catalog is not None
        now = datetime.now(UTC)
        filters = ExportFilters()
        with self.sessions() as session:
            export = request_export(
                session,
                source=catalog.source,
                requested_by=person.user_id,
                filters=filters,
                frozen=freeze_filters(filters, requested_at=now),
                options=options or ExportOptions(),
                requested_at=now,
            )
            session.commit()
            return export.id

    def completed_export(
        self, person: Person, source_id: int, options: ExportOptions | None = None
    ) -> tuple[str, bytes]:
        """A finished export with default filters; returns its id and its file's bytes."""
        options = options or ExportOptions()
        export_id = self.pending_export(person, source_id, options)
        return export_id, self.complete(export_id)

    def complete(self, export_id: str) -> bytes:
        """Finish a pending export the way its Dagster run does; returns the file's bytes."""
        with self.sessions() as session:
            export = session.get_one(Export, export_id)
            frozen = FrozenFilters.from_json(export.frozen_filters)
            options = ExportOptions.model_validate_json(json.dumps(export.options))
            with self.lead_store.reading() as connection:
                catalog = read_catalog(connection, export.source_id)
                assert catalog is not None
                count, facts = self.storage.write_atomically(
                    export.file_name,
                    lambda out: stream_export(connection, catalog, frozen, options, out),
                    partial_key=export.id,
                )
            moved = mark_completed(
                session, export, lead_count=count, facts=facts, at=datetime.now(UTC)
            )
            assert moved, f"export {export_id} was not pending or processing"
            session.commit()
        with self.storage.open_read(facts.uri) as written:
            return written.read()

    def export_count(self) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(Export)) or 0

    def audit_events(self, export_id: str) -> list[AuditEvent]:
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.export_id == export_id)
                    .order_by(AuditEvent.id)
                )
            )


@contextmanager
def built_harness(home: Path) -> Iterator[Harness]:
    """Stores in `home` holding two sources, "Acme Leads" and "Other Co"."""
    settings = api_settings(home)
    lead_store = LeadStore(settings.lead_store_path)
    acme = home / "acme.csv"
    acme.write_text(ACME_CSV, encoding="utf-8")
    other = home / "other.csv"
    other.write_text(OTHER_CSV, encoding="utf-8")
    acme_id = import_leads(lead_store, acme, source_name="Acme Leads", mapping=MAPPING).source_id
    other_mapping = ColumnMapping(
        fields={"first_name": "First Name", "email": "Email"},
        status_column="Status",
        created_at_column="Created",
    )
    other_id = import_leads(
        lead_store, other, source_name="Other Co", mapping=other_mapping
    ).source_id

    engine = make_engine(settings.status_database_url)
    migrate(engine)
    yield Harness(
        settings=settings,
        sessions=make_session_factory(engine),
        lead_store=lead_store,
        storage=ExportStorage(settings.export_storage_url),
        acme_id=acme_id,
        other_id=other_id,
    )
    engine.dispose()


@pytest.fixture(scope="session")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with built_harness(tmp_path_factory.mktemp("api_home")) as built:
        yield built


@pytest.fixture(scope="session")
def server(harness: Harness) -> Iterator[ApiServer]:
    with ApiServer(create_app(harness.settings)) as running:
        yield running


@pytest.fixture
def lead_values() -> tuple[str, ...]:
    return LEAD_VALUES


@pytest.fixture
def serve(harness: Harness) -> Callable[..., ApiServer]:
    """Another server over the same stores, with some settings changed; use it as a
    context manager."""

    def another_server(**overrides: object) -> ApiServer:
        return ApiServer(create_app(api_settings(harness.settings.home, **overrides)))

    return another_server


@pytest.fixture
def client(server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        yield http
