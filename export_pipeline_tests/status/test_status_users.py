"""Users, hashed API keys and per-source roles, on both databases."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text, update
from sqlalchemy.orm import Session, sessionmaker

from export_pipeline.status.models import ApiKey, Role
from export_pipeline.status.users import (
    authenticate,
    create_user,
    find_user,
    grant_role,
    issue_api_key,
    readable_source_ids,
    role_on_source,
)


def test_created_user_can_be_found_by_name(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        created = create_user(session, "  ann  ")
        session.commit()

    with sessions() as session:
        found = find_user(session, "ann")

    assert found is not None
    assert (found.id, found.name) == (created.id, "ann")
    assert found.created_at.utcoffset() is not None


@pytest.mark.parametrize("name", ["ann", " ann "])
def test_a_taken_user_name_is_rejected(sessions: sessionmaker[Session], name: str) -> None:
    with sessions() as session:
        create_user(session, "ann")
        session.commit()

        with pytest.raises(ValueError, match="a user named 'ann' already exists"):
            create_user(session, name)


def test_a_blank_user_name_is_rejected(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, pytest.raises(ValueError, match="must not be blank"):
        create_user(session, "   ")


def test_issued_api_key_authenticates_its_user_and_no_other_key_does(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        ann, bob = create_user(session, "ann"), create_user(session, "bob")
        ann_key, bob_key = issue_api_key(session, ann), issue_api_key(session, bob)
        session.commit()

    with sessions() as session:
        assert authenticate(session, ann_key).name == "ann"  # type: ignore[union-attr]
        assert authenticate(session, bob_key).name == "bob"  # type: ignore[union-attr]
        assert authenticate(session, ann_key + "x") is None
        assert authenticate(session, ann_key.upper()) is None
        assert authenticate(session, "") is None
    assert ann_key != bob_key


def test_only_the_sha256_of_an_api_key_is_stored(
    sessions: sessionmaker[Session], status_engine: Engine
) -> None:
    with sessions() as session:
        key = issue_api_key(session, create_user(session, "ann"))
        session.commit()

    with status_engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM api_keys")).all()

    cells = [str(cell) for row in rows for cell in row]
    assert len(rows) == 1
    assert hashlib.sha256(key.encode()).hexdigest() in cells
    assert not any(key in cell for cell in cells)
    assert len(key) >= 40, "the key carries enough randomness to be unguessable"


def test_revoked_api_key_is_rejected_and_other_keys_still_work(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        ann = create_user(session, "ann")
        old_key, new_key = issue_api_key(session, ann), issue_api_key(session, ann)
        session.commit()

        old_hash = hashlib.sha256(old_key.encode()).hexdigest()
        session.execute(
            update(ApiKey).where(ApiKey.key_hash == old_hash).values(revoked_at=datetime.now(UTC))
        )
        session.commit()

    with sessions() as session:
        assert authenticate(session, old_key) is None
        assert authenticate(session, new_key).name == "ann"  # type: ignore[union-attr]


def test_granted_role_is_the_users_role_on_that_source_only(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        ann, bob = create_user(session, "ann"), create_user(session, "bob")
        grant_role(session, ann, 7, Role.EXPORTER)
        grant_role(session, ann, 3, Role.VIEWER)
        session.commit()
        ann_id, bob_id = ann.id, bob.id

    with sessions() as session:
        assert role_on_source(session, ann_id, 7) is Role.EXPORTER
        assert role_on_source(session, ann_id, 3) is Role.VIEWER
        assert role_on_source(session, ann_id, 8) is None
        assert role_on_source(session, bob_id, 7) is None
        assert readable_source_ids(session, ann_id) == [3, 7]
        assert readable_source_ids(session, bob_id) == []


def test_granting_again_replaces_the_role(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        ann = create_user(session, "ann")
        grant_role(session, ann, 7, Role.ADMIN)
        session.commit()
        grant_role(session, ann, 7, Role.VIEWER)
        session.commit()
        ann_id = ann.id

    with sessions() as session:
        assert role_on_source(session, ann_id, 7) is Role.VIEWER
        assert readable_source_ids(session, ann_id) == [7]


@pytest.mark.parametrize(
    ("role", "needed", "allowed"),
    [
        (Role.ADMIN, Role.EXPORTER, True),
        (Role.EXPORTER, Role.EXPORTER, True),
        (Role.EXPORTER, Role.VIEWER, True),
        (Role.VIEWER, Role.EXPORTER, False),
        (Role.EXPORTER, Role.ADMIN, False),
    ],
)
def test_each_role_includes_the_ones_below_it(role: Role, needed: Role, allowed: bool) -> None:
    assert role.allows(needed) is allowed
