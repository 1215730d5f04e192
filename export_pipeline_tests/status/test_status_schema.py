"""The status table's schema: migrations and aware UTC timestamps, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session, sessionmaker

from export_pipeline.status.database import MIGRATIONS, migrate
from export_pipeline.status.models import User

STATUS_TABLES = {
    "users",
    "api_keys",
    "source_permissions",
    "exports",
    "download_links",
    "audit_events",
}


def test_migrations_create_every_status_table(status_engine: Engine) -> None:
    tables = set(inspect(status_engine).get_table_names())

    assert tables >= STATUS_TABLES | {"alembic_version"}
    columns = {c["name"] for c in inspect(status_engine).get_columns("exports")}
    assert columns >= {
        "id",
        "source_id",
        "file_name",
        "requested_by",
        "requested_at",
        "started_at",
        "completed_at",
        "status",
        "lead_count",
        "file_uri",
        "file_size",
        "sha256",
        "frozen_filters",
        "options",
        "error",
        "dagster_run_id",
    }


def head_revision() -> str:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def test_running_migrations_again_changes_nothing_and_keeps_the_data(
    status_engine: Engine, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        session.add(User(name="ann", created_at=datetime.now(UTC)))
        session.commit()
    tables_before = set(inspect(status_engine).get_table_names())

    migrate(status_engine)
    migrate(status_engine)

    assert set(inspect(status_engine).get_table_names()) == tables_before
    with status_engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    assert versions == [(head_revision(),)]
    with sessions() as session:
        assert session.scalars(select(User.name)).all() == ["ann"]


@pytest.mark.parametrize(
    "written",
    [
        datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(2024, 6, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 6, 1, 5, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-7))),
    ],
    ids=["utc", "plus-2", "minus-7"],
)
def test_timestamps_come_back_as_the_same_instant_in_utc(
    sessions: sessionmaker[Session], written: datetime
) -> None:
    with sessions() as session:
        user = User(name="ann", created_at=written)
        session.add(user)
        session.commit()
        user_id = user.id

    with sessions() as session:
        read = session.get_one(User, user_id).created_at

    assert read == datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert read.utcoffset() == timedelta(0)


def test_naive_timestamps_are_rejected(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        session.add(User(name="ann", created_at=datetime(2024, 6, 1, 12, 0)))  # noqa: DTZ001

        with pytest.raises(StatementError, match="naive datetimes are ambiguous"):
            session.flush()
        session.rollback()

    with sessions() as session:
        assert session.scalars(select(User)).all() == []


def test_timestamps_order_by_instant_not_by_written_offset(
    sessions: sessionmaker[Session],
) -> None:
    # 09:00 at -05:00 is later than 12:00 at +02:00.
    later = datetime(2024, 6, 1, 9, 0, tzinfo=timezone(timedelta(hours=-5)))
    earlier = datetime(2024, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with sessions() as session:
        session.add_all(
            [User(name="later", created_at=later), User(name="earlier", created_at=earlier)]
        )
        session.commit()

    with sessions() as session:
        names = session.scalars(select(User.name).order_by(User.created_at)).all()

    assert names == ["earlier", "later"]
