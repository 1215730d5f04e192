"""Users, hashed API keys and per-source roles, on both databases."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text, update
from sqlalchemy.orm import Session, sessionmaker

from export_pipeline.status.models import ApiKey, Role, User
from export_pipeline.status.users import (
    API_KEY_PREFIX,
    LastAdminError,
    admin_count,
    authenticate,
    create_api_key,
    create_user,
    find_api_key,
    find_user,
    grant_role,
    issue_api_key,
    list_api_keys,
    list_users,
    members_of_source,
    readable_source_ids,
    revoke_all_api_keys,
    revoke_api_key,
    revoke_role,
    role_on_source,
    roles_of_user,
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


@pytest.mark.parametrize("name", ["ann", " ann ", "Ann", "ANN"])
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


AT = datetime(2026, 3, 1, 7, 0, tzinfo=UTC)


def test_a_key_row_keeps_a_prefix_of_the_key_and_only_its_hash(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        key, row = create_api_key(session, create_user(session, "ann"))
        session.commit()

    assert row.prefix == key[:9]
    assert row.prefix.startswith(API_KEY_PREFIX)
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert row.revoked_at is None


def test_list_api_keys_gives_the_users_keys_oldest_first_revoked_ones_included(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        ann, bob = create_user(session, "ann"), create_user(session, "bob")
        first, second = create_api_key(session, ann)[1], create_api_key(session, ann)[1]
        create_api_key(session, bob)
        revoke_api_key(session, ann.id, first.id, at=AT)
        session.commit()
        ann_id, first_id, second_id = ann.id, first.id, second.id

    with sessions() as session:
        listed = list_api_keys(session, ann_id)

    assert [(key.id, key.revoked_at) for key in listed] == [(first_id, AT), (second_id, None)]


def test_revoking_a_key_twice_is_a_no_op_that_keeps_the_first_revocation(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        ann = create_user(session, "ann")
        old_key, old = create_api_key(session, ann)
        new_key = issue_api_key(session, ann)
        session.commit()

        first = revoke_api_key(session, ann.id, old.id, at=AT)
        session.commit()
        again = revoke_api_key(session, ann.id, old.id, at=AT + timedelta(hours=1))
        session.commit()
        ann_id, old_id = ann.id, old.id

    with sessions() as session:
        assert (first, again) == (True, False)
        assert find_api_key(session, ann_id, old_id).revoked_at == AT  # type: ignore[union-attr]
        assert authenticate(session, old_key) is None
        assert authenticate(session, new_key).name == "ann"  # type: ignore[union-attr]


def test_a_key_of_another_user_can_be_neither_found_nor_revoked(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        ann, bob = create_user(session, "ann"), create_user(session, "bob")
        bob_key, bob_row = create_api_key(session, bob)
        session.commit()

        assert find_api_key(session, ann.id, bob_row.id) is None
        assert revoke_api_key(session, ann.id, bob_row.id, at=AT) is False
        assert revoke_api_key(session, ann.id, 999_999, at=AT) is False
        session.commit()

    with sessions() as session:
        assert authenticate(session, bob_key).name == "bob"  # type: ignore[union-attr]


def test_revoke_all_api_keys_revokes_only_the_active_keys_of_that_user(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        ann, bob = create_user(session, "ann"), create_user(session, "bob")
        old = create_api_key(session, ann)[1]
        revoke_api_key(session, ann.id, old.id, at=AT)
        ann_keys = [issue_api_key(session, ann) for _ in range(2)]
        bob_key = issue_api_key(session, bob)
        session.commit()

        revoked = revoke_all_api_keys(session, ann.id, at=AT + timedelta(days=1))
        session.commit()
        ann_id = ann.id

    with sessions() as session:
        assert len(revoked) == 2
        assert all(authenticate(session, key) is None for key in ann_keys)
        assert authenticate(session, bob_key).name == "bob"  # type: ignore[union-attr]
        assert find_api_key(session, ann_id, old.id).revoked_at == AT  # type: ignore[union-attr]


def test_revoke_role_removes_the_role_on_that_source_only(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        ann = create_user(session, "ann")
        grant_role(session, ann, 7, Role.EXPORTER)
        grant_role(session, ann, 3, Role.VIEWER)
        session.commit()

        removed = revoke_role(session, ann, 7)
        nothing = revoke_role(session, ann, 7)
        session.commit()
        ann_id = ann.id

    with sessions() as session:
        assert (removed, nothing) == (Role.EXPORTER, None)
        assert role_on_source(session, ann_id, 7) is None
        assert roles_of_user(session, ann_id) == [(3, Role.VIEWER)]


def test_members_of_a_source_are_listed_by_name_and_admins_counted(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        cid, ann, bob = (create_user(session, name) for name in ("cid", "ann", "bob"))
        grant_role(session, cid, 7, Role.ADMIN)
        grant_role(session, ann, 7, Role.VIEWER)
        grant_role(session, bob, 7, Role.ADMIN)
        grant_role(session, bob, 3, Role.EXPORTER)
        session.commit()

    with sessions() as session:
        members = [(user.name, role) for user, role in members_of_source(session, 7)]
        assert members == [("ann", Role.VIEWER), ("bob", Role.ADMIN), ("cid", Role.ADMIN)]
        assert [user.name for user, _ in members_of_source(session, 3)] == ["bob"]
        assert members_of_source(session, 8) == []
        assert (admin_count(session, 7), admin_count(session, 3), admin_count(session, 8)) == (
            2,
            0,
            0,
        )


def demote(session: Session, user: User) -> object:
    return grant_role(session, user, 7, Role.VIEWER, keep_an_admin=True)


def remove(session: Session, user: User) -> object:
    return revoke_role(session, user, 7, keep_an_admin=True)


@pytest.mark.parametrize("change", [demote, remove], ids=["demote", "remove"])
def test_the_last_admin_of_a_source_is_kept_when_asked_to(
    sessions: sessionmaker[Session], change: Callable[[Session, User], object]
) -> None:
    with sessions() as session:
        ann, bob = create_user(session, "ann"), create_user(session, "bob")
        grant_role(session, ann, 7, Role.ADMIN)
        grant_role(session, bob, 7, Role.EXPORTER)
        grant_role(session, bob, 3, Role.ADMIN)
        session.commit()

        with pytest.raises(LastAdminError, match="'ann' is the last admin of source 7"):
            change(session, ann)
        session.rollback()

        assert role_on_source(session, ann.id, 7) is Role.ADMIN
        assert grant_role(session, bob, 7, Role.VIEWER, keep_an_admin=True) is Role.EXPORTER
        assert grant_role(session, ann, 7, Role.ADMIN, keep_an_admin=True) is Role.ADMIN


@pytest.mark.parametrize("change", [demote, remove], ids=["demote", "remove"])
def test_an_admin_can_step_down_while_another_admin_remains(
    sessions: sessionmaker[Session], change: Callable[[Session, User], object]
) -> None:
    with sessions() as session:
        ann, bob = create_user(session, "ann"), create_user(session, "bob")
        grant_role(session, ann, 7, Role.ADMIN)
        grant_role(session, bob, 7, Role.ADMIN)
        session.commit()

        change(session, ann)
        session.commit()

        assert admin_count(session, 7) == 1
        with pytest.raises(LastAdminError):
            revoke_role(session, bob, 7, keep_an_admin=True)


def test_without_the_guard_an_operator_may_remove_the_last_admin(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        ann = create_user(session, "ann")
        grant_role(session, ann, 7, Role.ADMIN)
        session.commit()

        assert revoke_role(session, ann, 7) is Role.ADMIN
        session.commit()

        assert admin_count(session, 7) == 0


def test_two_admins_removing_each_other_at_once_leave_one_admin(
    sessions: sessionmaker[Session],
) -> None:
    """The second removal waits for the first transaction and then sees it."""
    with sessions() as session:
        ann, bob = create_user(session, "ann"), create_user(session, "bob")
        grant_role(session, ann, 7, Role.ADMIN)
        grant_role(session, bob, 7, Role.ADMIN)
        session.commit()
        ann_id, bob_id = ann.id, bob.id

    def remove_ann() -> BaseException | None:
        with sessions() as other:
            try:
                revoke_role(other, other.get_one(User, ann_id), 7, keep_an_admin=True)
                other.commit()
            except LastAdminError as error:
                return error
        return None

    with sessions() as first, ThreadPoolExecutor(max_workers=1) as pool:
        revoke_role(first, first.get_one(User, bob_id), 7, keep_an_admin=True)
        second = pool.submit(remove_ann)
        time.sleep(0.5)
        assert not second.done(), "the second removal must wait for the first"
        first.commit()
        outcome = second.result(timeout=30)

    assert isinstance(outcome, LastAdminError)
    with sessions() as session:
        assert role_on_source(session, ann_id, 7) is Role.ADMIN
        assert role_on_source(session, bob_id, 7) is None


def test_user_names_longer_than_the_column_are_rejected(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, pytest.raises(ValueError, match="at most 200 characters"):
        create_user(session, "a" * 201)


def test_list_users_gives_every_user_by_name_with_roles_and_keys(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        bob = create_user(session, "bob")
        create_user(session, "ann")
        grant_role(session, bob, 7, Role.VIEWER)
        issue_api_key(session, bob)
        session.commit()

    with sessions() as session:
        listed = list_users(session)
        assert [user.name for user in listed] == ["ann", "bob"]
        assert [(p.source_id, p.role) for p in listed[1].permissions] == [(7, "viewer")]
        assert len(listed[1].api_keys) == 1
        assert listed[0].permissions == []
