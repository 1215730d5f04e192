"""Expiring download links kept as hashes, on both databases."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from export_pipeline.status.audit import AuditAction
from export_pipeline.status.links import (
    LinkState,
    find_link,
    issue_link,
    link_state,
    links_of_export,
    revoke_link,
)
from export_pipeline.status.models import AuditEvent, DownloadLink, Export
from export_pipeline.status.users import create_user

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


def test_links_of_an_export_come_newest_first_with_their_holders_name(
    sessions: sessionmaker[Session], export_id: str, user_id: int, make_export: NewExport
) -> None:
    with sessions() as session:
        bob = create_user(session, "bob")
        export = session.get_one(Export, export_id)
        other = make_export(session, user_id)
        _, oldest = issue_link(session, export, user_id, ttl=TTL, now=ISSUED_AT)
        _, newest = issue_link(session, export, bob.id, ttl=TTL, now=ISSUED_AT + TTL)
        # Issued in the same instant: the later link (higher id) counts as newer.
        _, tied = issue_link(session, export, user_id, ttl=TTL, now=ISSUED_AT)
        issue_link(session, other, user_id, ttl=TTL, now=ISSUED_AT)
        session.commit()
        expected = [(newest.id, "bob"), (tied.id, "ann"), (oldest.id, "ann")]

    with sessions() as session:
        listed = [(link.id, name) for link, name in links_of_export(session, export_id)]

    assert listed == expected


def test_revoking_a_link_stamps_it_once_and_audits_who_did_it(
    sessions: sessionmaker[Session], export_id: str, user_id: int
) -> None:
    token = issue(sessions, export_id, user_id)
    first_at = ISSUED_AT + timedelta(minutes=5)
    with sessions() as session:
        admin = create_user(session, "root")
        link = find_link(session, token)
        assert link is not None
        link_id = link.id
        first = revoke_link(session, link, actor_id=admin.id, at=first_at)
        session.commit()
    with sessions() as session:
        link = session.get_one(DownloadLink, link_id)
        second = revoke_link(session, link, actor_id=user_id, at=first_at + timedelta(hours=1))
        session.commit()

    with sessions() as session:
        link = session.get_one(DownloadLink, link_id)
        source_id = link.export.source_id
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == AuditAction.LINK_REVOKED.value)
        ).all()

    assert (first, second) == (True, False)
    assert link.revoked_at == first_at
    assert link.revoked_at.tzinfo is not None
    assert link.revoked_at.utcoffset() == timedelta(0)
    assert link_state(link, first_at) is LinkState.REVOKED
    assert [(e.actor_id, e.source_id, e.export_id) for e in events] == [
        (admin.id, source_id, export_id)
    ]
    assert events[0].details == {"link_id": link_id}
    assert events[0].occurred_at == first_at


def test_revoking_one_link_leaves_the_others_active(
    sessions: sessionmaker[Session], export_id: str, user_id: int
) -> None:
    kept, revoked = issue(sessions, export_id, user_id), issue(sessions, export_id, user_id)
    with sessions() as session:
        link = find_link(session, revoked)
        assert link is not None
        revoke_link(session, link, actor_id=user_id, at=ISSUED_AT)
        session.commit()

    assert link_state(stored_link(sessions, kept), ISSUED_AT) is LinkState.ACTIVE
    assert link_state(stored_link(sessions, revoked), ISSUED_AT) is LinkState.REVOKED
