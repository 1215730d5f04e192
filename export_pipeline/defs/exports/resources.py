"""Resources through which Dagster code reaches the status table, the lead store and
the export files. Each is configured from `Settings` in `definitions.py`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy.orm import Session, sessionmaker

from export_pipeline.leads.store import LeadStore
from export_pipeline.status.database import make_engine, make_session_factory
from export_pipeline.status.exports import DEFAULT_LARGE_EXPORT_LEADS
from export_pipeline.storage import ExportStorage


class StatusTableResource(dg.ConfigurableResource):
    """The export status table (SQLite file or PostgreSQL URL). A completed export of at
    least `large_export_leads` leads is marked large in its audit event."""

    database_url: str
    large_export_leads: int = DEFAULT_LARGE_EXPORT_LEADS
    api_launch_seconds: float = 0.0
    """How long the request sensor leaves a new request to the API, which launches its
    run itself when `launch_from_api` is on; 0 when it is off."""
    _sessions: sessionmaker[Session] | None = PrivateAttr(default=None)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends cleanly and rolls back otherwise."""
        if self._sessions is None:
            self._sessions = make_session_factory(make_engine(self.database_url))
        with self._sessions() as session, session.begin():
            yield session


class LeadStoreResource(dg.ConfigurableResource):
    """The DuckDB lead store. `memory_limit` caps DuckDB's memory per export run."""

    path: str
    wait_seconds: float = 600.0
    memory_limit: str | None = None

    def store(self) -> LeadStore:
        return LeadStore(
            Path(self.path),
            wait_seconds=self.wait_seconds,
            memory_limit=self.memory_limit,
        )


class ExportStorageResource(dg.ConfigurableResource):
    """Where export files go: a local folder or any fsspec URL such as `s3://bucket/x`."""

    url: str
    storage_options: dict[str, Any] | None = None

    def storage(self) -> ExportStorage:
        return ExportStorage(self.url, self.storage_options)
