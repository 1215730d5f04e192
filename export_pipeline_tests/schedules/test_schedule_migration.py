"""Migration 0004 on a status table that already holds exports and links, and the
models matching what the migrations build."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from export_pipeline.status.database import MIGRATIONS, make_engine, migrate
from export_pipeline.status.models import Base

ROWS = [
    "INSERT INTO users (id, name, created_at) VALUES (1, 'ann', '2026-01-01 00:00:00+00')",
    "INSERT INTO exports (id, source_id, file_name, requested_by, requested_at, status, "
    "filters, frozen_filters, options, updated_at) VALUES ('e1', 1, 'a.csv', 1, "
    "'2026-01-01 00:00:00+00', 'completed', '{}', '{}', '{}', '2026-01-01 00:00:00+00')",
    "INSERT INTO download_links (id, token_hash, export_id, issued_to, issued_at, expires_at) "
    "VALUES (1, 'h', 'e1', 1, '2026-01-01 00:00:00+00', '2026-01-02 00:00:00+00')",
]


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def unmigrated_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'status.sqlite3'}"
    return request.getfixturevalue("postgres_url")


def alembic(engine, action, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        action(config, revision)


def test_upgrading_keeps_exports_and_links_and_downgrading_removes_only_schedules(
    unmigrated_url,
):
    engine = make_engine(unmigrated_url)
    try:
        alembic(engine, command.upgrade, "0003")
        with engine.begin() as connection:
            for statement in ROWS:
                connection.execute(text(statement))

        migrate(engine)

        assert "export_schedules" in inspect(engine).get_table_names()
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM download_links")) == 1
            assert connection.scalar(text("SELECT schedule_id FROM exports")) is None

        alembic(engine, command.downgrade, "0003")

        assert "export_schedules" not in inspect(engine).get_table_names()
        assert "schedule_id" not in {c["name"] for c in inspect(engine).get_columns("exports")}
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM download_links")) == 1
    finally:
        engine.dispose()


def test_the_models_match_the_migrated_schema_exactly(status_database_url):
    engine = make_engine(status_database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()

    assert differences == []
