"""Logs follow requests without ever holding API keys, link tokens or lead contents."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from export_pipeline.api.access_log import redact_path
from export_pipeline.status.models import Role

CLIENT_LOGGERS = ("httpx", "httpcore")
"""The test's own HTTP client logs the URLs it calls, tokens included; that is the
client's business, not the server's, so its records are left out of the check."""


class KeepRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def every_logger_at(level: int) -> Iterator[None]:
    """Lower every existing logger, SQLAlchemy's and uvicorn's included, to `level`."""
    loggers = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, old in zip(loggers, previous, strict=True):
            logger.setLevel(old)


def test_no_key_token_or_lead_value_is_ever_logged(client, harness, caplog, lead_values):
    exporter = harness.person({harness.acme_id: Role.EXPORTER})
    viewer = harness.person({harness.acme_id: Role.VIEWER})

    with every_logger_at(logging.DEBUG), caplog.at_level(logging.DEBUG):
        created = client.post(
            f"/api/v1/sources/{harness.acme_id}/exports",
            json={"filters": {"statuses": ["new", "won", "lost"]}},
            headers=exporter.auth,
        )
        export_id = created.json()["id"]
        harness.complete(export_id)
        link = client.post(f"/api/v1/exports/{export_id}/links", headers=exporter.auth).json()
        token = link["token"]
        download = client.get(f"/api/v1/downloads/{token}", headers=exporter.auth)
        refused = client.get(f"/api/v1/downloads/{token}", headers=viewer.auth)
        bad_key = client.get(
            f"/api/v1/downloads/{token}", headers={"Authorization": "Bearer ep_wrong-key-123"}
        )

    assert (created.status_code, download.status_code) == (202, 200)
    assert (refused.status_code, bad_key.status_code) == (404, 401)
    assert b"ada.lovelace@example.com" in download.content
    records = [r for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    logged = "\n".join(formatter.format(record) for record in records)
    for secret in (exporter.key, viewer.key, "ep_wrong-key-123", token, *lead_values):
        assert secret not in logged
    access = [r.getMessage() for r in records if r.name == "export_pipeline.api.access"]
    assert any('"GET /api/v1/downloads/<token>" 200' in line for line in access)
    assert any('"GET /api/v1/downloads/<token>" 404' in line for line in access)
    assert any(f'"POST /api/v1/sources/{harness.acme_id}/exports" 202' in line for line in access)
    assert any(export_id in r.getMessage() for r in records if r.name.startswith("export_pipeline"))


def test_uvicorn_access_log_is_redacted_should_it_run(server):
    # Uvicorn logs the path as an argument, as below; `server` created the app, which
    # installs the filter.
    uvicorn_access = logging.getLogger("uvicorn.access")
    path = "/api/v1/downloads/8d1c4c3e-1111-4222-8333-944445555666"
    keep = KeepRecords()
    uvicorn_access.addHandler(keep)
    try:
        uvicorn_access.warning('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", path, "1.1", 200)
    finally:
        uvicorn_access.removeHandler(keep)

    assert [r.getMessage() for r in keep.records] == [
        '127.0.0.1:5 - "GET /api/v1/downloads/<token> HTTP/1.1" 200'
    ]


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/api/v1/downloads/8d1c4c3e-1111-4222-8333-944445555666", "/api/v1/downloads/<token>"),
        ("/api/v1/downloads/abc/def", "/api/v1/downloads/<token>"),
        ("/api/v1/exports/8d1c4c3e-1111-4222-8333-944445555666", None),
        ("/api/v1/health", None),
    ],
)
def test_the_access_log_redacts_download_tokens_only(path, logged):
    assert redact_path(path) == (logged or path)


def test_a_path_with_newlines_or_escapes_cannot_forge_or_hide_log_lines(server, caplog):
    forged = "2026-12-04 07:30:00,000 INFO export_pipeline.api.access: forged"
    paths = [
        "/api/v1/health%0A" + forged.replace(" ", "%20"),
        "/api/v1/exports/abc%0D%1B%5B31m%00",
        "/api/v1/downloads/x%0Aforged",
    ]

    with caplog.at_level(logging.INFO, logger="export_pipeline.api.access"):
        for path in paths:
            assert httpx.get(server.base_url + path).status_code in (401, 404, 422)

    lines = [r.getMessage() for r in caplog.records if r.name == "export_pipeline.api.access"]
    assert len(lines) == len(paths)
    assert all(character.isprintable() for line in lines for character in line)
    assert "/api/v1/health%0A2026-12-04%2007:30:00,000%20INFO" in lines[0]
    assert "/api/v1/exports/abc%0D%1B%5B31m%00" in lines[1]
    assert '"GET /api/v1/downloads/<token>"' in lines[2]
