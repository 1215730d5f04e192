"""Fixtures of the notification tests: a product in a temporary home (lead store, status
table on SQLite or PostgreSQL, Dagster definitions), a real SMTP server and a real
webhook receiver. Nothing is mocked; time is advanced by moving a notification's
`next_attempt_at` into the past."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from export_pipeline.api.main import create_app
from export_pipeline.definitions import build_definitions
from export_pipeline.defs.exports.sensors import export_status_sensor
from export_pipeline.defs.exports.tags import export_run_tags
from export_pipeline.defs.notifications.sensors import notification_sensor
from export_pipeline.engine.filters import ExportFilters, freeze_filters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import get_source
from export_pipeline.leads.importer import ColumnMapping, import_leads
from export_pipeline.leads.store import LeadStore
from export_pipeline.settings import Settings
from export_pipeline.status import notifications as outbox
from export_pipeline.status.database import make_engine, make_session_factory, migrate
from export_pipeline.status.exports import request_export
from export_pipeline.status.models import Export, Notification, Role, User
from export_pipeline.status.users import create_user, grant_role, issue_api_key
from export_pipeline_tests.api.conftest import ApiServer
from export_pipeline_tests.notifications.notify_receivers import MailServer, WebhookReceiver

PUBLIC_URL = "https://exports.example.test"
LEADS_CSV = """\
First,Last,Email,Phone,Zip,Stage,Campaign,Secret Note
Ada,Lovelace,ada.lovelace@example.com,+44 20 7946 0000,02134,new,spring,sapphire-kiwi
Alan,Turing,alan.turing@example.com,020 7946 0001,00501,won,autumn,obsidian-fig
"""
LEAD_VALUES = (
    "Lovelace",
    "ada.lovelace@example.com",
    "+44 20 7946 0000",
    "02134",
    "sapphire-kiwi",
    "Turing",
    "alan.turing@example.com",
    "020 7946 0001",
    "obsidian-fig",
)
"""Values of leads that no notification may carry."""
REQUESTER_EMAIL = "requester@example.org"


@dataclass
class NotifyProduct:
    """The embedded product with one source and one requester, wired to the receivers."""

    settings: Settings
    sessions: sessionmaker[Session]
    definitions: dg.Definitions
    instance: dg.DagsterInstance
    source_id: int
    user_id: int
    api_key: str

    def request(self, *, webhook_url: str | None = None) -> tuple[str, str | None]:
        """A pending export request; with `webhook_url`, as if its body named it in
        `notify`. Returns its id and the request's webhook secret."""
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            with LeadStore(self.settings.lead_store_path).reading() as connection:
                source = get_source(connection, self.source_id)
            assert source is not None
            export = request_export(
                session,
                source=source,
                requested_by=self.user_id,
                filters=ExportFilters(),
                frozen=freeze_filters(ExportFilters(), requested_at=now),
                options=ExportOptions(),
                requested_at=now,
            )
            secret = (
                outbox.subscribe_export_webhook(session, export.id, webhook_url, at=now)
                if webhook_url
                else None
            )
            return export.id, secret

    def run(self, export_id: str) -> dg.ExecuteInProcessResult:
        """Run the export's Dagster job, then let the status sensor record the outcome."""
        self.instance.add_dynamic_partitions("exports", [export_id])
        result = self.definitions.resolve_job_def("lead_export_job").execute_in_process(
            partition_key=export_id,
            instance=self.instance,
            tags=export_run_tags(export_id, self.source_id, "requester"),
            raise_on_error=False,
        )
        self.sync_statuses()
        return result

    def sync_statuses(self) -> None:
        export_status_sensor(self._sensor_context())

    def deliver(self) -> dg.SkipReason:
        """One tick of the notification sensor."""
        result = notification_sensor(self._sensor_context())
        assert isinstance(result, dg.SkipReason)
        return result

    def set_source_webhook(self, url: str) -> str:
        with self.sessions.begin() as session:
            return outbox.set_source_webhook(
                session, self.source_id, url, set_by=self.user_id, at=datetime.now(UTC)
            )

    def set_email(self, address: str | None) -> None:
        with self.sessions.begin() as session:
            outbox.set_user_email(session, session.get_one(User, self.user_id), address)

    def export(self, export_id: str) -> Export:
        with self.sessions() as session:
            return session.get_one(Export, export_id)

    def notifications(self, export_id: str) -> list[Notification]:
        with self.sessions() as session:
            return list(outbox.notifications_of_export(session, export_id))

    def make_due(self, export_id: str) -> None:
        """Skip the backoff: every pending notification of the export is due now."""
        with self.sessions.begin() as session:
            session.execute(
                update(Notification)
                .where(
                    Notification.export_id == export_id,
                    Notification.next_attempt_at.is_not(None),
                )
                .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
            )

    def _sensor_context(self) -> dg.SensorEvaluationContext:
        return dg.build_sensor_context(instance=self.instance, resources=self.definitions.resources)


@dataclass(frozen=True)
class Api:
    """The API served over loopback on its own home, with one imported source."""

    settings: Settings
    sessions: sessionmaker[Session]
    client: httpx.Client
    source_id: int

    def person(self, name: str, role: Role | None) -> dict[str, str]:
        """A new user with `role` on the source (none for None); its auth header."""
        with self.sessions.begin() as session:
            user = create_user(session, name)
            if role is not None:
                grant_role(session, user, self.source_id, role)
            return {"Authorization": f"Bearer {issue_api_key(session, user)}"}


@contextmanager
def served_api(home: Path, **overrides: object) -> Iterator[Api]:
    """The API on `home` with `product_settings` and `overrides`, and a source of
    `LEADS_CSV` imported as "Trade Fair"."""
    settings = product_settings(home, f"sqlite:///{home / 'status.sqlite3'}", **overrides)
    csv_path = home / "leads.csv"
    csv_path.write_text(LEADS_CSV, encoding="utf-8")
    source_id = import_leads(
        LeadStore(settings.lead_store_path),
        csv_path,
        source_name="Trade Fair",
        mapping=ColumnMapping(fields={"first_name": "First", "email": "Email"}),
    ).source_id
    engine = make_engine(settings.status_database_url)
    migrate(engine)
    with (
        ApiServer(create_app(settings)) as server,
        httpx.Client(base_url=server.base_url + "/api/v1", timeout=10) as client,
    ):
        yield Api(settings, make_session_factory(engine), client, source_id)
    engine.dispose()


def product_settings(home: Path, database_url: str, **overrides: object) -> Settings:
    """Settings under `home`, whatever `EXPORT_PIPELINE_*` the environment holds."""
    values: dict[str, object] = {
        "home": home,
        "lead_store": None,
        "database_url": database_url,
        "storage_url": None,
        "public_url": PUBLIC_URL,
        "launch_from_api": False,
        "smtp_host": None,
        "smtp_username": None,
        "smtp_password": None,
        "smtp_starttls": False,
        "mail_from": "exports@example.test",
        # The receivers listen on 127.0.0.1.
        "webhook_allow_private_addresses": True,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    with MailServer() as server:
        yield server


@pytest.fixture
def webhooks() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as dagster_instance:
        yield dagster_instance


@pytest.fixture
def make_product(
    tmp_path: Path, status_database_url: str, instance: dg.DagsterInstance
) -> Iterator[object]:
    """Builds the product with some settings changed (a mail server, say)."""
    engines = []

    def build(**overrides: object) -> NotifyProduct:
        settings = product_settings(tmp_path / "home", status_database_url, **overrides)
        csv_path = tmp_path / "leads.csv"
        csv_path.write_text(LEADS_CSV, encoding="utf-8")
        result = import_leads(
            LeadStore(settings.lead_store_path),
            csv_path,
            source_name="Trade Fair",
            mapping=ColumnMapping(
                fields={
                    "first_name": "First",
                    "last_name": "Last",
                    "email": "Email",
                    "phone": "Phone",
                    "zip_code": "Zip",
                },
                status_column="Stage",
                attribute_columns=("Campaign",),
            ),
        )
        engine = make_engine(status_database_url)
        engines.append(engine)
        sessions = make_session_factory(engine)
        with sessions.begin() as session:
            user = create_user(session, "requester")
            outbox.set_user_email(session, user, REQUESTER_EMAIL)
            api_key = issue_api_key(session, user)
            user_id = user.id
        return NotifyProduct(
            settings=settings,
            sessions=sessions,
            definitions=build_definitions(settings),
            instance=instance,
            source_id=result.source_id,
            user_id=user_id,
            api_key=api_key,
        )

    yield build
    for engine in engines:
        engine.dispose()


@pytest.fixture
def product(make_product, mail_server: MailServer) -> NotifyProduct:
    """The product mailing through `mail_server`."""
    return make_product(smtp_host="127.0.0.1", smtp_port=mail_server.port)
