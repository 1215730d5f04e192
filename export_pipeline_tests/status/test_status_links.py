"""Expiring download links kept as hashes, on both databases."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from export_pipeline.status.links import LinkState, find_link, issue_link, link_state
from export_pipeline.status.models import DownloadLink, Export

ISSUED_AT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(hours=24)

NewExport = Callable[..., Export]


@pytest.fixture
def export_id(sessions: sessionmaker[Session], user_id: int, make_export: NewExport) -> str:
    with sessions() as session:
        export = make_export(session, user_id)
        session.commit()
        return export.id


def issue(
    sessions: sessionmaker[Session], export_id: str, user_id: int, *, ttl: timedelta = TTL
) -> str:
    with sessions() as session:
        export = session.get_one(Export, export_id)
        token, _ = issue_link(session, export, user_id, ttl=ttl, now=ISSUED_AT)
        session.commit()
    return token


def test_token_is_a_canonical_uuid4_and_unique_per_link(
    sessions: sessionmaker[Session], export_id: str, user_id: int
) -> None:
    tokens = [issue(sessions, export_id, user_id) for _ in range(3)]

    for token in tokens:
        parsed = uuid.UUID(token)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == token
    assert len(set(tokens)) == 3


def test_only_the_sha256_of_a_token_is_stored(
    sessions: sessionmaker[Session], status_engine: Engine, export_id: str, user_id: int
) -> None:
    token = issue(sessions, export_id, user_id)

    with status_engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM download_links")).all()

    cells = [str(cell) for row in rows for cell in row]
    assert hashlib.sha256(token.encode()).hexdigest() in cells
    assert not any(token in cell or token.replace("-", "") in cell for cell in cells)


def test_issued_link_records_who_and_when_and_expires_after_the_ttl(
    sessions: sessionmaker[Session], export_id: str, user_id: int
) -> None:
    token = issue(sessions, export_id, user_id, ttl=timedelta(hours=2))

    with sessions() as session:
        link = find_link(session, token)

    assert link is not None
    assert (link.export_id, link.issued_to) == (export_id, user_id)
    assert (link.issued_at, link.expires_at) == (ISSUED_AT, ISSUED_AT + timedelta(hours=2))
    assert link.revoked_at is None


@pytest.mark.parametrize(
    "spelling",
    [str.upper, str.strip],
    ids=["upper-case", "as-issued"],
)
def test_link_is_found_by_its_token_in_either_letter_case(
    sessions: sessionmaker[Session],
    export_id: str,
    user_id: int,
    spelling: Callable[[str], str],
) -> None:
    token = issue(sessions, export_id, user_id)

    with sessions() as session:
        link = find_link(session, spelling(token))

    assert link is not None
    assert link.export_id == export_id


@pytest.mark.parametrize(
    "guess", ["1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b", "not-a-token", "", "' OR 1=1 --"]
)
def test_unknown_or_malformed_tokens_find_nothing(
    sessions: sessionmaker[Session], export_id: str, user_id: int, guess: str
) -> None:
    issue(sessions, export_id, user_id)

    with sessions() as session:
        assert find_link(session, guess) is None


def stored_link(sessions: sessionmaker[Session], token: str) -> DownloadLink:
    with sessions() as session:
        link = find_link(session, token)
    assert link is not None
    return link


def test_link_is_active_until_it_expires(
    sessions: sessionmaker[Session], export_id: str, user_id: int
) -> None:
    link = stored_link(sessions, issue(sessions, export_id, user_id))
    expires = ISSUED_AT + TTL

    assert link_state(link, ISSUED_AT) is LinkState.ACTIVE
    assert link_state(link, expires - timedelta(microseconds=1)) is LinkState.ACTIVE
    assert link_state(link, expires) is LinkState.EXPIRED
    assert link_state(link, expires + timedelta(days=30)) is LinkState.EXPIRED


def test_revoked_link_is_revoked_even_before_it_expires(
    sessions: sessionmaker[Session], export_id: str, user_id: int
) -> None:
    token = issue(sessions, export_id, user_id)
    with sessions() as session:
        link = find_link(session, token)
        assert link is not None
        link.revoked_at = ISSUED_AT + timedelta(minutes=1)
        session.commit()

    link = stored_link(sessions, token)

    assert link_state(link, ISSUED_AT + timedelta(minutes=2)) is LinkState.REVOKED
    assert link_state(link, ISSUED_AT + TTL * 2) is LinkState.REVOKED
