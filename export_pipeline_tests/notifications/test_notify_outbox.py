"""The notification outbox in the status table, on SQLite and on PostgreSQL: what
settling an export queues, in which transaction, and how attempts are counted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from export_pipeline.engine.filters import ExportFilters, freeze_filters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import Source
from export_pipeline.status import notifications as outbox
from export_pipeline.status.database import MIGRATIONS, make_engine, make_session_factory
from export_pipeline.status.exports import (
    mark_cancelled,
    mark_completed,
    mark_failed,
    mark_processing,
    request_export,
)
from export_pipeline.status.models import Export, Notification, User
from export_pipeline.status.users import create_user
from export_pipeline.storage import FileFacts

SOURCE = Source(source_id=7, name="Trade Fair", slug="trade-fair")
AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
FACTS = FileFacts(uri="file:///exports/trade-fair.csv", size=1234, sha256="ab" * 32)


@pytest.fixture
def sessions(status_database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(status_database_url)
    yield make_session_factory(engine)
    engine.dispose()


def new_user(session: Session, name: str = "ann", email: str | None = None) -> User:
    user = create_user(session, name)
    if email is not None:
        outbox.set_user_email(session, user, email)
    return user


def new_export(session: Session, user: User) -> Export:
    return request_export(
        session,
        source=SOURCE,
        requested_by=user.id,
        filters=ExportFilters(),
        frozen=freeze_filters(ExportFilters(), requested_at=AT),
        options=ExportOptions(),
        requested_at=AT,
    )


def test_completing_an_export_queues_one_notification_per_recipient(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        user = new_user(session, email="ann@example.com")
        outbox.set_source_webhook(
            session, SOURCE.source_id, "https://hooks.example.com/src", set_by=user.id, at=AT
        )
        export = new_export(session, user)
        outbox.subscribe_export_webhook(session, export.id, "https://mine.example.com/", at=AT)
        export_id = export.id

    with sessions.begin() as session:
        export = session.get_one(Export, export_id)
        done = AT + timedelta(minutes=2)
        assert mark_completed(session, export, lead_count=42, facts=FACTS, at=done)
        assert not mark_completed(session, export, lead_count=42, facts=FACTS, at=done)

    with sessions() as session:
        queued = outbox.notifications_of_export(session, export_id)
        assert [(n.channel, n.target, n.webhook_scope) for n in queued] == [
            ("webhook", "https://hooks.example.com/src", "source"),
            ("webhook", "https://mine.example.com/", "request"),
            ("email", "ann@example.com", None),
        ]
        assert {n.next_attempt_at for n in queued} == {done}
        assert {n.attempts for n in queued} == {0}
        assert queued[0].payload == {
            "event": "export.completed",
            "export": {
                "id": export_id,
                "source_id": 7,
                "status": "completed",
                "file_name": export.file_name,
                "lead_count": 42,
                "file_size": 1234,
                "sha256": "ab" * 32,
                "error": None,
                "requested_at": "2026-03-01T09:30:00Z",
                "completed_at": "2026-03-01T09:32:00Z",
            },
        }
        assert "uri" not in str(queued[0].payload)
        assert outbox.due_notifications(session, now=done) == [n.id for n in queued]
        assert outbox.due_notifications(session, now=done - timedelta(seconds=1)) == []


def test_a_failure_queues_the_failure_event_with_its_reason(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        export = new_export(session, new_user(session, email="ann@example.com"))
        mark_processing(session, export, at=AT)
        mark_failed(session, export, error="source 7 no longer exists", at=AT)

    with sessions() as session:
        (notification,) = outbox.notifications_of_export(session, export.id)
        assert notification.payload["event"] == "export.failed"
        assert notification.payload["export"]["status"] == "failed"
        assert notification.payload["export"]["error"] == "source 7 no longer exists"


def test_notifications_are_queued_only_with_the_settled_status(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        user = new_user(session, email="ann@example.com")
        rolled_back, cancelled, pending = (new_export(session, user) for _ in range(3))

    session = sessions()
    session.begin()
    mark_completed(
        session, session.get_one(Export, rolled_back.id), lead_count=1, facts=FACTS, at=AT
    )
    session.rollback()
    session.close()
    with sessions.begin() as session:
        mark_cancelled(session, session.get_one(Export, cancelled.id), at=AT)

    with sessions() as session:
        assert session.get_one(Export, rolled_back.id).status == "pending"
        for export in (rolled_back, cancelled, pending):
            assert outbox.notifications_of_export(session, export.id) == []


def test_an_export_without_email_or_webhook_queues_nothing(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        export = new_export(session, new_user(session))
        mark_completed(session, export, lead_count=0, facts=FACTS, at=AT)

    with sessions() as session:
        assert outbox.notifications_of_export(session, export.id) == []


def test_each_attempt_is_claimed_once_and_waits_out_a_doubling_backoff(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        export = new_export(session, new_user(session, email="ann@example.com"))
        mark_completed(session, export, lead_count=1, facts=FACTS, at=AT)
        (notification_id,) = outbox.due_notifications(session, now=AT)

    now = AT
    waits, given_up = [], False
    while not given_up:
        with sessions.begin() as session:
            assert outbox.claim_attempt(session, notification_id, now=now - timedelta(1)) is None
            claimed = outbox.claim_attempt(session, notification_id, now=now)
            assert claimed is not None
            assert outbox.claim_attempt(session, notification_id, now=now) is None
            waits.append(claimed.next_attempt_at - now)
            given_up = outbox.record_failure(
                session, notification_id, error=f"HTTP {500 + claimed.attempts}", at=now
            )
            now = claimed.next_attempt_at

    with sessions() as session:
        notification = session.get_one(Notification, notification_id)
        assert [wait.total_seconds() for wait in waits] == [10 * 2**n for n in range(8)]
        assert notification.attempts == outbox.MAX_ATTEMPTS == 8
        assert notification.given_up_at is not None
        assert notification.next_attempt_at is None
        assert notification.last_error == "HTTP 508"
        assert outbox.claim_attempt(session, notification_id, now=now) is None
        assert outbox.due_notifications(session, now=now + timedelta(days=1)) == []


def test_a_delivered_notification_is_never_due_again(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        export = new_export(session, new_user(session, email="ann@example.com"))
        mark_completed(session, export, lead_count=1, facts=FACTS, at=AT)
        (notification_id,) = outbox.due_notifications(session, now=AT)
        outbox.claim_attempt(session, notification_id, now=AT)
        outbox.record_delivered(session, notification_id, at=AT)

    with sessions() as session:
        notification = session.get_one(Notification, notification_id)
        assert (notification.attempts, notification.delivered_at) == (1, AT)
        assert outbox.due_notifications(session, now=AT + timedelta(days=1)) == []
        assert outbox.claim_attempt(session, notification_id, now=AT + timedelta(days=1)) is None


def test_a_webhook_is_signed_with_its_current_secret_until_it_goes(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        user = new_user(session)
        first = outbox.set_source_webhook(
            session, SOURCE.source_id, "https://a.example.com/", set_by=user.id, at=AT
        )
        export = new_export(session, user)
        request_secret = outbox.subscribe_export_webhook(
            session, export.id, "https://b.example.com/", at=AT
        )
        mark_completed(session, export, lead_count=1, facts=FACTS, at=AT)

    with sessions.begin() as session:
        source_hook, request_hook = outbox.notifications_of_export(session, export.id)
        secrets_then = (
            outbox.webhook_secret(session, source_hook),
            outbox.webhook_secret(session, request_hook),
        )
        second = outbox.set_source_webhook(
            session, SOURCE.source_id, "https://a.example.com/", set_by=user.id, at=AT
        )
        rotated = outbox.webhook_secret(session, source_hook)
        outbox.set_source_webhook(
            session, SOURCE.source_id, "https://elsewhere.example.com/", set_by=None, at=AT
        )
        moved = outbox.webhook_secret(session, source_hook)
        removed = outbox.remove_source_webhook(session, SOURCE.source_id)
        removed_again = outbox.remove_source_webhook(session, SOURCE.source_id)

    assert secrets_then == (first, request_secret)
    assert first != second != request_secret
    assert rotated == second
    assert moved is None
    assert (removed, removed_again) == (True, False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def unmigrated_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_the_migration_keeps_existing_users_and_gives_them_no_email(
    unmigrated_engine: Engine,
) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with unmigrated_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        connection.execute(
            text("INSERT INTO users (name, created_at) VALUES ('old', :at)"), {"at": AT}
        )
        command.upgrade(config, "0003")

    tables = set(inspect(unmigrated_engine).get_table_names())
    with unmigrated_engine.connect() as connection:
        rows = connection.execute(text("SELECT name, email FROM users")).all()
    assert {"notifications", "source_webhooks", "export_webhooks"} <= tables
    assert rows == [("old", None)]
    with make_session_factory(unmigrated_engine)() as session:
        assert session.scalars(select(Notification)).all() == []
