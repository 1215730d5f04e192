"""`export-pipeline users` run as a real process: listing users and keys, removing
roles and revoking keys, what it prints and what it leaves in the status table."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from export_pipeline.status import users
from export_pipeline.status.models import AuditEvent
from export_pipeline_tests.cli.conftest import Cli

LEADS_CSV = "first_name,email,status\nAda,ada@example.com,new\nBert,bert@example.com,won\n"


@pytest.fixture
def source(cli: Cli, tmp_path: Path) -> int:
    """Source 1 of the lead store, with two leads; `users grant` needs it to exist."""
    leads = tmp_path / "leads.csv"
    leads.write_text(LEADS_CSV, encoding="utf-8")
    cli.ok("leads", "import", str(leads), "--source", "Trade show")
    return 1


def key_of(done) -> str:
    return done.stdout.strip()


def audit_events(cli: Cli) -> list[AuditEvent]:
    with cli.status_session() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_users_list_shows_names_roles_and_active_keys(cli: Cli, source: int) -> None:
    empty = cli.ok("users", "list")
    cli.ok("users", "create", "alice", "--grant", f"{source}:admin")
    cli.ok("users", "create", "bob smith")
    cli.ok("users", "add-key", "alice")
    cli.ok("users", "revoke-key", "bob smith", "--all")

    listed = cli.ok("users", "list")

    assert empty.stdout == ""
    assert "no users yet" in empty.stderr
    assert listed.stdout.splitlines() == [
        "name       roles    keys",
        "alice      1:admin  2",
        "bob smith  -        0",
    ]


def test_users_keys_lists_ids_prefixes_and_times_never_the_keys(cli: Cli) -> None:
    first = key_of(cli.ok("users", "create", "alice"))
    second = key_of(cli.ok("users", "add-key", "alice"))

    listed = cli.ok("users", "keys", "alice")

    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["id", "prefix", "created", "revoked"]
    rows = [line.split() for line in lines[1:]]
    assert [(row[0], row[1], row[3]) for row in rows] == [
        ("1", first[:9], "-"),
        ("2", second[:9], "-"),
    ]
    assert all(row[2].endswith("Z") for row in rows)
    assert first not in listed.stdout
    assert second not in listed.stdout


def test_revoke_key_stops_that_key_at_once_and_again_is_a_no_op(cli: Cli) -> None:
    first = key_of(cli.ok("users", "create", "alice"))
    second = key_of(cli.ok("users", "add-key", "alice"))

    revoked = cli.ok("users", "revoke-key", "alice", "1")
    again = cli.ok("users", "revoke-key", "alice", "1")
    listed = cli.ok("users", "keys", "alice")

    assert revoked.stdout == f'user "alice": key 1 ({first[:9]}) revoked\n'
    assert again.stdout.startswith('user "alice": key 1 was revoked already, at ')
    revoked_at = again.stdout.rsplit(" ", 1)[1].strip()
    assert listed.stdout.splitlines()[1].split()[3] == revoked_at
    with cli.status_session() as session:
        assert users.authenticate(session, first) is None
        assert users.authenticate(session, second).name == "alice"  # type: ignore[union-attr]
    revocations = [e for e in audit_events(cli) if e.action == "key_revoked"]
    assert [e.details["key_id"] for e in revocations] == [1]


def test_revoke_key_all_revokes_every_active_key_of_that_user_only(cli: Cli) -> None:
    alice_keys = [key_of(cli.ok("users", "create", "alice"))]
    alice_keys.append(key_of(cli.ok("users", "add-key", "alice")))
    bob_key = key_of(cli.ok("users", "create", "bob"))

    revoked = cli.ok("users", "revoke-key", "alice", "--all")
    again = cli.ok("users", "revoke-key", "alice", "--all")

    assert revoked.stdout.splitlines() == [
        f'user "alice": key 1 ({alice_keys[0][:9]}) revoked',
        f'user "alice": key 2 ({alice_keys[1][:9]}) revoked',
    ]
    assert again.stdout == 'user "alice" has no active API key; nothing revoked\n'
    with cli.status_session() as session:
        assert all(users.authenticate(session, key) is None for key in alice_keys)
        assert users.authenticate(session, bob_key).name == "bob"  # type: ignore[union-attr]


def test_users_revoke_removes_the_role_and_warns_when_no_admin_is_left(
    cli: Cli, source: int
) -> None:
    cli.ok("users", "create", "alice", "--grant", f"{source}:admin")
    cli.ok("users", "create", "bob", "--grant", f"{source}:exporter")
    no_admin_left = (
        f"warning: source {source} has no admin left; give one with "
        f"`export-pipeline users grant NAME {source}:admin`\n"
    )

    exporter_removed = cli.ok("users", "revoke", "bob", str(source))
    demoted = cli.ok("users", "grant", "alice", f"{source}:viewer")
    cli.ok("users", "grant", "alice", f"{source}:admin")
    admin_removed = cli.ok("users", "revoke", "alice", str(source))

    assert exporter_removed.stdout == f'user "bob": exporter role on source {source} removed\n'
    assert exporter_removed.stderr == ""
    assert demoted.stderr == no_admin_left
    assert admin_removed.stdout == f'user "alice": admin role on source {source} removed\n'
    assert admin_removed.stderr == no_admin_left
    with cli.status_session() as session:
        for name in ("alice", "bob"):
            user = users.find_user(session, name)
            assert user is not None
            assert users.role_on_source(session, user.id, source) is None


def test_users_commands_record_audit_events_without_keys(cli: Cli, source: int) -> None:
    key = key_of(cli.ok("users", "create", "alice", "--grant", f"{source}:viewer"))
    cli.ok("users", "grant", "alice", f"{source}:exporter")
    cli.ok("users", "grant", "alice", f"{source}:exporter")
    cli.ok("users", "revoke", "alice", str(source))

    events = audit_events(cli)

    alice = {"user": "alice", "user_id": 1}
    assert [(e.action, e.actor_id, e.source_id, e.details) for e in events] == [
        ("role_granted", None, source, {**alice, "role": "viewer", "previous_role": None}),
        ("key_issued", None, None, {**alice, "key_id": 1, "prefix": key[:9]}),
        ("role_granted", None, source, {**alice, "role": "exporter", "previous_role": "viewer"}),
        ("role_revoked", None, source, {**alice, "role": "exporter"}),
    ]
    recorded = json.dumps([e.details for e in events])
    assert key not in recorded
    assert hashlib.sha256(key.encode()).hexdigest() not in recorded


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["users", "revoke", "nobody", "1"], "there is no user named 'nobody'"),
        (["users", "revoke", "alice", "1"], "user 'alice' has no role on source 1"),
        (["users", "revoke", "alice", "one"], "'one' is not a SOURCE_ID"),
        (["users", "keys", "nobody"], "there is no user named 'nobody'"),
        (["users", "revoke-key", "alice"], "give the KEY_ID of the key to revoke"),
        (["users", "revoke-key", "alice", "1", "--all"], "not both"),
        (["users", "revoke-key", "alice", "x"], "'x' is not a KEY_ID"),
        (["users", "revoke-key", "alice", "99"], "user 'alice' has no API key 99"),
        (["users", "revoke-key", "alice", "2"], "user 'alice' has no API key 2"),
        (["users", "revoke-key", "nobody", "--all"], "there is no user named 'nobody'"),
        (["users", "grant", "alice", "x:admin"], "the source id is a number"),
    ],
)
def test_users_mistakes_are_one_error_line_with_exit_code_2(
    cli: Cli, arguments: list[str], message: str
) -> None:
    with cli.status_session() as session:
        alice_key = users.issue_api_key(session, users.create_user(session, "alice"))
        bob_key = users.issue_api_key(session, users.create_user(session, "bob"))
        session.commit()

    done = cli.run(*arguments)

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: ")
    assert message in done.stderr
    assert done.stderr.count("\n") == 1
    with cli.status_session() as session:
        assert users.authenticate(session, alice_key) is not None
        assert users.authenticate(session, bob_key) is not None
        assert users.readable_source_ids(session, 1) == []
