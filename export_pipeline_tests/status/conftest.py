"""Fixtures of the status-table tests: each runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from export_pipeline.engine.filters import ExportFilters, freeze_filters
from export_pipeline.engine.options import ExportOptions
from export_pipeline.leads.catalog import Source
from export_pipeline.status.database import make_engine, make_session_factory
from export_pipeline.status.exports import request_export
from export_pipeline.status.models import Export, User
from export_pipeline.status.users import create_user

SOURCE = Source(source_id=1, name="Trade Fair", slug="trade-fair")
REQUESTED_AT = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def status_engine(status_database_url: str) -> Iterator[Engine]:
    engine = make_engine(status_database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sessions(status_engine: Engine) -> sessionmaker[Session]:
    """Opens sessions on the migrated status table; each test commits what it checks."""
    return make_session_factory(status_engine)


@pytest.fixture
def user_id(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        user = create_user(session, "ann")
        session.commit()
        return user.id


@pytest.fixture
def make_export() -> Callable[..., Export]:
    """`new_export`, for tests that request exports."""
    return new_export


def new_export(
    session: Session,
    requester: int | User,
    *,
    source: Source = SOURCE,
    requested_at: datetime = REQUESTED_AT,
    filters: ExportFilters | None = None,
    options: ExportOptions | None = None,
) -> Export:
    """A pending export request, flushed but not committed."""
    filters = filters or ExportFilters()
    return request_export(
        session,
        source=source,
        requested_by=requester if isinstance(requester, int) else requester.id,
        filters=filters,
        frozen=freeze_filters(filters, requested_at=requested_at),
        options=options or ExportOptions(),
        requested_at=requested_at,
    )
