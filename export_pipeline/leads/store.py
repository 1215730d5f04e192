"""Opening the DuckDB lead store without tripping over other processes.

DuckDB lets one process write a database file or several processes read it, never
both. Every user of the store therefore opens it briefly through `LeadStore.reading`
or `LeadStore.writing`, which wait for a conflicting process to let go instead of
failing at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

log = logging.getLogger(__name__)

SYSTEM_FIELDS = (
    "lead_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "address",
    "city",
    "state",
    "zip_code",
    "status",
)
"""Lead fields every source has, in the order an export writes them."""

TRAILING_FIELDS = ("created_at", "updated_at", "source_id")
"""System fields an export writes after the custom fields and attributes."""

FIELD_TYPES = ("text", "number", "date", "boolean", "select")

SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    source_id BIGINT NOT NULL,
    name VARCHAR NOT NULL,
    slug VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS leads (
    lead_id BIGINT NOT NULL,
    source_id BIGINT NOT NULL,
    first_name VARCHAR,
    last_name VARCHAR,
    email VARCHAR,
    phone VARCHAR,
    address VARCHAR,
    city VARCHAR,
    state VARCHAR,
    zip_code VARCHAR,
    status VARCHAR,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    inserted_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS field_definitions (
    source_id BIGINT NOT NULL,
    key VARCHAR NOT NULL,
    label VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS lead_custom_values (
    lead_id BIGINT NOT NULL,
    field_key VARCHAR NOT NULL,
    value VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS attribute_definitions (
    source_id BIGINT NOT NULL,
    key VARCHAR NOT NULL,
    label VARCHAR NOT NULL,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS lead_attributes (
    lead_id BIGINT NOT NULL,
    key VARCHAR NOT NULL,
    value VARCHAR NOT NULL
);
"""
"""The logical schema. Rows of one lead share its `lead_id`, which is unique across
sources; `inserted_at` is when the row entered the store (an import may back-date
`created_at`), so an export can leave out leads that arrived after its request.
Tables carry no indexes: DuckDB prunes by min/max per row group, and imports append
in `lead_id` order."""


def fetch_first(
    connection: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
) -> tuple[Any, ...] | None:
    """The first row of a query, or None; the result is read to its end, as DuckDB
    requires before the connection runs anything else."""
    rows = connection.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


class LeadStoreBusy(RuntimeError):
    """Another process held the lead store for longer than we were willing to wait."""


@dataclass(frozen=True)
class LeadStore:
    """A DuckDB lead store file.

    `wait_seconds` bounds how long an open waits for a conflicting process (an import
    waits for running exports to finish, and the other way round).
    """

    path: Path
    wait_seconds: float = 600.0
    memory_limit: str | None = None

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection; several processes may read at once.

        A store that does not exist yet reads as an empty one, and is not created.
        """
        if not self.path.exists():
            connection = _configured(duckdb.connect(":memory:"))
            connection.execute(SCHEMA)
        else:
            connection = self._connect(read_only=True)
        try:
            yield connection
        finally:
            connection.close()

    @contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The only read-write connection; it blocks readers until it closes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = self._connect(read_only=False)
        try:
            connection.execute(SCHEMA)
            yield connection
        finally:
            connection.close()

    def _connect(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        config = {"memory_limit": self.memory_limit} if self.memory_limit else {}
        waiting = Retrying(
            retry=retry_if_exception(_is_lock_conflict),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            stop=stop_after_delay(self.wait_seconds),
            before_sleep=_log_waiting_once(self.path),
            reraise=True,
        )
        try:
            connection = waiting(duckdb.connect, str(self.path), read_only=read_only, config=config)
        except duckdb.IOException as error:
            if not _is_lock_conflict(error):
                raise
            msg = (
                f"the lead store {self.path} stayed locked by another process for "
                f"{self.wait_seconds:g} s; try again when the import or export holding it "
                "has finished"
            )
            raise LeadStoreBusy(msg) from error
        return _configured(connection)


def _configured(connection: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    # Set after connecting: the time-zone extension is not loaded yet at connect time.
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("SET enable_progress_bar = false")
    return connection


def _is_lock_conflict(error: BaseException) -> bool:
    return isinstance(error, duckdb.IOException) and "lock" in str(error).lower()


def _log_waiting_once(path: Path):
    def log_first_wait(state: RetryCallState) -> None:
        if state.attempt_number == 1:
            log.info("lead store %s is locked by another process; waiting", path)

    return log_first_wait
