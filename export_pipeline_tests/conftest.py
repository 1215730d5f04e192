"""Fixtures shared by the whole suite: real files, a real lead store, real databases.

Nothing here is mocked. The lead store is a DuckDB file under `tmp_path`, the status
table is a SQLite file under `tmp_path` or a fresh database on the PostgreSQL server
at 127.0.0.1:5432, object storage is a real S3 API served over loopback by moto's
server (started here), and the sample data are the files of `../shared/data`.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fsspec.core import url_to_fs
from moto.server import ThreadedMotoServer
from psycopg import sql

from export_pipeline.leads.store import LeadStore
from export_pipeline.status.database import make_engine, migrate

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_URL_TEMPLATE = "postgresql+psycopg://postgres@127.0.0.1:5432/{database}"


@pytest.fixture
def shared_data() -> Path:
    """The folder of real sample files; the test skips when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared sample data folder {SHARED_DATA} does not exist")
    return SHARED_DATA


def _admin_connection() -> psycopg.Connection:
    try:
        return psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(
            f"the PostgreSQL server at 127.0.0.1:5432 is not reachable as user postgres "
            f"({error}); the test environment must run it"
        )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The SQLAlchemy URL of a fresh, empty PostgreSQL database, dropped afterwards."""
    database = f"export_pipeline_test_{secrets.token_hex(6)}"
    with _admin_connection() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        yield POSTGRES_URL_TEMPLATE.format(database=database)
    finally:
        with _admin_connection() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def status_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a migrated status table, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'status.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return url


@pytest.fixture
def lead_store(tmp_path: Path) -> LeadStore:
    """An empty lead store file of its own for each test."""
    return LeadStore(tmp_path / "leads.duckdb")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of an S3-compatible server on loopback, for the whole session."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_storage(s3_endpoint: str) -> tuple[str, dict[str, Any]]:
    """The URL of a folder in a new, empty bucket and the fsspec options to reach it."""
    options: dict[str, Any] = {
        "key": "test-key",
        "secret": "test-secret",
        "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "eu-west-1"},
    }
    bucket = f"exports-{secrets.token_hex(6)}"
    fs, _ = url_to_fs(f"s3://{bucket}", **options)
    fs.mkdir(bucket)
    return f"s3://{bucket}/exports", options
