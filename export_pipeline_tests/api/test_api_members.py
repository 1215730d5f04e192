"""Members of a source over HTTP: only its admins manage them, it keeps an admin, and a
removed role stops working with the next request."""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from sqlalchemy import select, text

from export_pipeline.status.audit import AuditAction
from export_pipeline.status.models import AuditEvent, Role, User
from export_pipeline.status.users import create_user, revoke_all_api_keys, role_on_source

ROLE_ACTIONS = (AuditAction.ROLE_GRANTED, AuditAction.ROLE_REVOKED, AuditAction.KEY_ISSUED)


def fresh_source_id() -> int:
    """A source id no other test uses, so its members are this test's alone. Members
    are rows of the status table: the lead store need not hold the source."""
    return 1_000_000 + secrets.randbelow(2**30)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def members(client, admin, source_id: int) -> list[dict]:
    response = client.get(f"/api/v1/sources/{source_id}/members", headers=admin.auth)
    assert response.status_code == 200
    return response.json()["items"]


def role_of(harness, person, source_id: int) -> Role | None:
    with harness.sessions() as session:
        return role_on_source(session, person.user_id, source_id)


def role_events(harness, source_id: int) -> list[AuditEvent]:
    with harness.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.source_id == source_id, AuditEvent.action.in_(ROLE_ACTIONS))
                .order_by(AuditEvent.id)
            )
        )


@dataclass(frozen=True)
class Call:
    """One request to a member endpoint, and the answer an admin gets."""

    method: str
    path: str
    body: dict | None
    admin_status: int


def member_calls(harness, source_id: int) -> dict[str, Call]:
    """A request to each endpoint that would succeed for an admin of the source."""
    member = harness.person({source_id: Role.VIEWER})
    outsider = harness.person()
    base = f"/api/v1/sources/{source_id}/members"
    return {
        "list": Call("GET", base, None, 200),
        "put": Call("PUT", f"{base}/{outsider.name}", {"role": "exporter"}, 200),
        "post": Call("POST", base, {"name": f"new-{uuid.uuid4().hex[:10]}", "role": "viewer"}, 201),
        "delete": Call("DELETE", f"{base}/{member.name}", None, 204),
        "keys": Call("GET", f"{base}/{member.name}/keys", None, 200),
        "add-key": Call("POST", f"{base}/{member.name}/keys", None, 201),
        "revoke-key": Call("DELETE", f"{base}/{member.name}/keys/{member.key_id}", None, 204),
    }


def send(client, call: Call, headers: dict[str, str]):
    return client.request(call.method, call.path, json=call.body, headers=headers)


@pytest.mark.parametrize(
    "endpoint", ["list", "put", "post", "delete", "keys", "add-key", "revoke-key"]
)
def test_member_endpoints_answer_401_404_403_and_only_admins_succeed(client, harness, endpoint):
    source_id = fresh_source_id()
    admin = harness.person({source_id: Role.ADMIN})
    viewer = harness.person({source_id: Role.VIEWER})
    exporter = harness.person({source_id: Role.EXPORTER})
    stranger = harness.person({harness.acme_id: Role.ADMIN})
    revoked = harness.person({source_id: Role.ADMIN})
    with harness.sessions() as session:
        revoke_all_api_keys(session, revoked.user_id, at=datetime.now(UTC))
        session.commit()
    call = member_calls(harness, source_id)[endpoint]
    before = members(client, admin, source_id)

    refused = {
        "no key": send(client, call, {}),
        "revoked key": send(client, call, revoked.auth),
        "no role": send(client, call, stranger.auth),
        "viewer": send(client, call, viewer.auth),
        "exporter": send(client, call, exporter.auth),
    }

    assert {who: r.status_code for who, r in refused.items()} == {
        "no key": 401,
        "revoked key": 401,
        "no role": 404,
        "viewer": 403,
        "exporter": 403,
    }
    assert refused["no role"].json() == {"detail": "source not found"}
    for who in ("viewer", "exporter"):
        detail = refused[who].json()["detail"]
        assert "needs the admin role" in detail
        assert who in detail
    assert members(client, admin, source_id) == before
    assert send(client, call, admin.auth).status_code == call.admin_status


def test_a_viewer_gets_403_even_for_a_malformed_body(client, harness):
    source_id = fresh_source_id()
    viewer = harness.person({source_id: Role.VIEWER})

    response = client.post(
        f"/api/v1/sources/{source_id}/members", json={"nope": 1}, headers=viewer.auth
    )

    assert response.status_code == 403


def test_members_are_listed_by_name_with_their_roles(client, harness):
    source_id = fresh_source_id()
    admin = harness.person({source_id: Role.ADMIN})
    viewer = harness.person({source_id: Role.VIEWER})
    harness.person({source_id + 1: Role.ADMIN})

    listed = members(client, admin, source_id)

    assert listed == sorted(
        [{"name": admin.name, "role": "admin"}, {"name": viewer.name, "role": "viewer"}],
        key=lambda member: member["name"],
    )


def test_put_gives_an_existing_user_a_role_and_changes_it(client, harness):
    source_id = fresh_source_id()
    admin = harness.person({source_id: Role.ADMIN})
    user = harness.person()
    path = f"/api/v1/sources/{source_id}/members/{user.name}"

    granted = client.put(path, json={"role": "viewer"}, headers=admin.auth)
    can_read = client.get(f"/api/v1/sources/{source_id}/exports", headers=user.auth)
    changed = client.put(path, json={"role": "admin"}, headers=admin.auth)
    unchanged = client.put(path, json={"role": "admin"}, headers=admin.auth)

    assert granted.status_code == 200
    assert granted.json() == {"name": user.name, "role": "viewer"}
    assert can_read.status_code == 200
    assert changed.json() == {"name": user.name, "role": "admin"}
    assert unchanged.status_code == 200
    assert role_of(harness, user, source_id) is Role.ADMIN
    granted_events = [
        (e.details["role"], e.details["previous_role"])
        for e in role_events(harness, source_id)
        if e.details["user"] == user.name
    ]
    assert granted_events == [("viewer", None), ("admin", "viewer")]


@pytest.mark.parametrize(
    "body", [{}, {"role": "owner"}, {"role": "viewer", "extra": 1}, {"role": None}]
)
def test_put_with_a_malformed_role_is_422(client, harness, body):
    source_id = fresh_source_id()
    admin = harness.person({source_id: Role.ADMIN})
    user = harness.person()

    response = client.put(
        f"/api/v1/sources/{source_id}/members/{user.name}", json=body, headers=admin.auth
    )

    assert response.status_code == 422
    assert role_of(harness, user, source_id) is None


def test_put_and_delete_for_an_unknown_user_are_404(client, harness):
    source_id = fresh_source_id()
    admin = harness.person({source_id: Role.ADMIN})
    path = f"/api/v1/sources/{source_id}/members/nobody-{uuid.uuid4().hex}"

    put = client.put(path, json={"role": "viewer"}, headers=admin.auth)
    delete = client.delete(path, headers=admin.auth)

    assert (put.status_code, put.json()) == (404, {"detail": "user not found"})
    assert delete.status_code == 404
    assert delete.json()["detail"].endswith(f"has no role on source {source_id}")


def test_a_name_with_spaces_and_symbols_can_be_addressed(client, harness):
    source_id = fresh_source_id()
    admin = harness.person({source_id: Role.ADMIN})
    name = f"team ann+{uuid.uuid4().hex[:6]}?#%"
    with harness.sessions() as session:
        create_user(session, name)
        session.commit()

    path = f"/api/v1/sources/{source_id}/members/{quote(name, safe='')}"

    granted = client.put(path, json={"role": "viewer"}, headers=admin.auth)
    keys = client.get(path + "/keys", headers=admin.auth)
    removed = client.delete(path, headers=admin.auth)

    assert granted.json() == {"name": name, "role": "viewer"}
    assert keys.status_code == 200
    assert removed.status_code == 204


def test_post_creates_a_user_with_the_role_and_shows_its_key_once(client, harness):
    source_id = fresh_source_id()
    admin = harness.person({source_id: Role.ADMIN})
    name = f"new-{uuid.uuid4().hex[:10]}"

    created = client.post(
        f"/api/v1/sources/{source_id}/members",
        json={"name": f"  {name} ", "role": "exporter"},
        headers=admin.auth,
    )

    assert created.status_code == 201
    body = created.json()
    key = body["api_key"]["key"]
    assert body == {
        "name": name,
        "role": "exporter",
        "api_key": {
            "id": body["api_key"]["id"],
            "key": key,
            "prefix": key[:9],
            "created_at": body["api_key"]["created_at"],
        },
    }
    me = client.get("/api/v1/me", headers=bearer(key))
    assert me.json() == {"name": name, "roles": [{"source_id": source_id, "role": "exporter"}]}
    listed = client.get(f"/api/v1/sources/{source_id}/members", headers=admin.auth)
    keys = client.get("/api/v1/me/keys", headers=bearer(key))
    digest = hashlib.sha256(key.encode()).hexdigest()
    for later in (listed, keys):
        assert key not in later.text
        assert digest not in later.text
    with harness.sessions() as session:
        stored = session.execute(
            text("SELECT key_hash FROM api_keys WHERE id = :id"), {"id": body["api_key"]["id"]}
        ).scalar_one()
    assert stored == digest


@pytest.mark.parametrize("spelled", [str, str.upper], ids=["as-is", "in-another-case"])
def test_post_with_a_taken_name_is_409_and_changes_nothing(client, harness, spelled):
    source_id = fresh_source_id()
    admin = harness.person({source_id: Role.ADMIN})
    existing = harness.person({harness.acme_id: Role.VIEWER})

    response = client.post(
        f"/api/v1/sources/{source_id}/members",
        json={"name": spelled(existing.name), "role": "admin"},
        headers=admin.auth,
    )

    assert response.status_code == 409
    assert f"a user named '{existing.name}' already exists" in response.json()["detail"]
    assert role_of(harness, existing, source_id) is None
    assert members(client, admin, source_id) == [{"name": admin.name, "role": "admin"}]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "   ", "role": "viewer"},
        {"name": "x" * 201, "role": "viewer"},
        {"name": "ann", "role": "owner"},
        {"name": "ann"},
        {"role": "viewer"},
        {"name": "a/b", "role": "viewer"},
    ],
    ids=["blank", "too-long", "bad-role", "no-role", "no-name", "slash"],
)
def test_post_with_a_malformed_body_is_422_and_creates_nobody(client, harness, body):
    source_id = fresh_source_id()
    admin = harness.person({source_id: Role.ADMIN})

    response = client.post(f"/api/v1/sources/{source_id}/members", json=body, headers=admin.auth)

    assert response.status_code == 422
    assert members(client, admin, source_id) == [{"name": admin.name, "role": "admin"}]


def test_delete_removes_the_role_and_the_user_gets_404_at_once(client, harness):
    source_id = fresh_source_id()
    admin = harness.person({source_id: Role.ADMIN})
    member = harness.person({source_id: Role.EXPORTER, harness.acme_id: Role.VIEWER})
    assert client.get(f"/api/v1/sources/{source_id}/exports", headers=member.auth).is_success

    removed = client.delete(
        f"/api/v1/sources/{source_id}/members/{member.name}", headers=admin.auth
    )
    after = client.get(f"/api/v1/sources/{source_id}/exports", headers=member.auth)
    again = client.delete(f"/api/v1/sources/{source_id}/members/{member.name}", headers=admin.auth)

    assert removed.status_code == 204
    assert removed.content == b""
    assert (after.status_code, after.json()) == (404, {"detail": "source not found"})
    assert again.status_code == 404
    assert "has no role on source" in again.json()["detail"]
    assert role_of(harness, member, harness.acme_id) is Role.VIEWER


@pytest.mark.parametrize("change", ["demote", "remove"])
def test_the_last_admin_can_be_neither_demoted_nor_removed(client, harness, change):
    source_id = fresh_source_id()
    admin = harness.person({source_id: Role.ADMIN})
    path = f"/api/v1/sources/{source_id}/members/{admin.name}"

    if change == "demote":
        response = client.put(path, json={"role": "exporter"}, headers=admin.auth)
    else:
        response = client.delete(path, headers=admin.auth)

    assert response.status_code == 409
    assert response.json() == {
        "detail": f"'{admin.name}' is the last admin of source {source_id}; "
        "make another user admin first"
    }
    assert role_of(harness, admin, source_id) is Role.ADMIN
    assert role_events(harness, source_id) == []


def test_an_admin_may_step_down_once_another_admin_exists(client, harness):
    source_id = fresh_source_id()
    first = harness.person({source_id: Role.ADMIN})
    second = harness.person()
    base = f"/api/v1/sources/{source_id}/members"

    promoted = client.put(f"{base}/{second.name}", json={"role": "admin"}, headers=first.auth)
    stepped_down = client.delete(f"{base}/{first.name}", headers=first.auth)
    lost_access = client.get(base, headers=first.auth)
    last = client.put(f"{base}/{second.name}", json={"role": "viewer"}, headers=second.auth)

    assert promoted.status_code == 200
    assert stepped_down.status_code == 204
    assert lost_access.status_code == 404
    assert last.status_code == 409
    assert members(client, second, source_id) == [{"name": second.name, "role": "admin"}]


def test_a_removed_member_loses_its_exports_and_download_links_at_once(client, harness):
    admin = harness.person({harness.acme_id: Role.ADMIN})
    exporter = harness.person({harness.acme_id: Role.EXPORTER})
    export_id, content = harness.completed_export(exporter, harness.acme_id)
    link = client.post(f"/api/v1/exports/{export_id}/links", headers=exporter.auth).json()
    download = f"/api/v1/downloads/{link['token']}"
    assert client.get(download, headers=exporter.auth).content == content

    removed = client.delete(
        f"/api/v1/sources/{harness.acme_id}/members/{exporter.name}", headers=admin.auth
    )
    answers = {
        "history": client.get(f"/api/v1/sources/{harness.acme_id}/exports", headers=exporter.auth),
        "export": client.get(f"/api/v1/exports/{export_id}", headers=exporter.auth),
        "new link": client.post(f"/api/v1/exports/{export_id}/links", headers=exporter.auth),
        "download": client.get(download, headers=exporter.auth),
    }

    assert removed.status_code == 204
    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(answers, 404)
    assert answers["download"].json() == {"detail": "download link not found"}
    denied = [e for e in harness.audit_events(export_id) if e.action == "denied"]
    assert denied[-1].details["reason"] == "no role on the source"
    assert client.get(download, headers=admin.auth).content == content


def test_a_member_demoted_to_viewer_can_no_longer_download(client, harness):
    admin = harness.person({harness.acme_id: Role.ADMIN})
    exporter = harness.person({harness.acme_id: Role.EXPORTER})
    export_id, _ = harness.completed_export(exporter, harness.acme_id)
    link = client.post(f"/api/v1/exports/{export_id}/links", headers=exporter.auth).json()

    demoted = client.put(
        f"/api/v1/sources/{harness.acme_id}/members/{exporter.name}",
        json={"role": "viewer"},
        headers=admin.auth,
    )
    download = client.get(f"/api/v1/downloads/{link['token']}", headers=exporter.auth)
    read = client.get(f"/api/v1/exports/{export_id}", headers=exporter.auth)

    assert demoted.status_code == 200
    assert download.status_code == 404
    assert read.status_code == 200


def test_member_changes_are_audited_with_actor_source_user_and_role_and_no_secret(client, harness):
    source_id = fresh_source_id()
    admin = harness.person({source_id: Role.ADMIN})
    existing = harness.person()
    base = f"/api/v1/sources/{source_id}/members"
    name = f"new-{uuid.uuid4().hex[:10]}"

    created = client.post(base, json={"name": name, "role": "viewer"}, headers=admin.auth).json()
    client.put(f"{base}/{existing.name}", json={"role": "exporter"}, headers=admin.auth)
    client.put(f"{base}/{name}", json={"role": "admin"}, headers=admin.auth)
    client.delete(f"{base}/{existing.name}", headers=admin.auth)

    with harness.sessions() as session:
        new_user = session.scalar(select(User).where(User.name == name))
    assert new_user is not None
    events = role_events(harness, source_id)
    assert all(event.actor_id == admin.user_id for event in events)
    new_ref = {"user": name, "user_id": new_user.id}
    existing_ref = {"user": existing.name, "user_id": existing.user_id}
    assert [(event.action, event.details) for event in events] == [
        ("role_granted", {**new_ref, "role": "viewer", "previous_role": None}),
        (
            "key_issued",
            {**new_ref, "key_id": created["api_key"]["id"], "prefix": created["api_key"]["prefix"]},
        ),
        ("role_granted", {**existing_ref, "role": "exporter", "previous_role": None}),
        ("role_granted", {**new_ref, "role": "admin", "previous_role": "viewer"}),
        ("role_revoked", {**existing_ref, "role": "exporter"}),
    ]
    recorded = json.dumps([event.details for event in events])
    key = created["api_key"]["key"]
    assert key not in recorded
    assert hashlib.sha256(key.encode()).hexdigest() not in recorded


def test_an_admin_lists_issues_and_revokes_a_members_keys(client, harness):
    source_id = fresh_source_id()
    admin = harness.person({source_id: Role.ADMIN})
    member = harness.person({source_id: Role.EXPORTER})
    base = f"/api/v1/sources/{source_id}/members/{member.name}/keys"

    issued = client.post(base, headers=admin.auth)
    listed = client.get(base, headers=admin.auth)
    works = client.get("/api/v1/me", headers=bearer(issued.json()["key"]))
    revoked = client.delete(f"{base}/{member.key_id}", headers=admin.auth)
    old_key = client.get("/api/v1/me", headers=member.auth)

    assert issued.status_code == 201
    new_key = issued.json()
    assert new_key["key"].startswith(new_key["prefix"])
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [member.key_id, new_key["id"]]
    assert "key" not in listed.json()["items"][0]
    assert new_key["key"] not in listed.text
    assert works.json()["name"] == member.name
    assert revoked.status_code == 204
    assert old_key.status_code == 401
    events = [e for e in role_events(harness, source_id) if e.actor_id == admin.user_id]
    assert [e.action for e in events] == ["key_issued"]
    assert new_key["key"] not in str([e.details for e in events])


def test_keys_of_a_member_of_other_sources_need_the_admin_role_there_too(client, harness):
    source_id = fresh_source_id()
    admin = harness.person({source_id: Role.ADMIN})
    member = harness.person({source_id: Role.VIEWER, harness.other_id: Role.EXPORTER})
    base = f"/api/v1/sources/{source_id}/members/{member.name}/keys"

    issue = client.post(base, headers=admin.auth)
    revoke = client.delete(f"{base}/{member.key_id}", headers=admin.auth)
    harness.grant(admin, harness.other_id, Role.ADMIN)
    allowed = client.post(base, headers=admin.auth)

    assert (issue.status_code, revoke.status_code) == (403, 403)
    assert "remove their role on this source" in issue.json()["detail"]
    assert client.get("/api/v1/me", headers=member.auth).status_code == 200
    assert allowed.status_code == 201


def test_keys_of_an_unknown_user_and_of_a_user_of_other_sources_alike_are_404(client, harness):
    source_id = fresh_source_id()
    admin = harness.person({source_id: Role.ADMIN})
    elsewhere = harness.person({harness.other_id: Role.ADMIN})
    base = f"/api/v1/sources/{source_id}/members"

    answers = [
        client.request(method, f"{base}/{name}/keys{suffix}", headers=admin.auth)
        for name in (elsewhere.name, f"nobody-{uuid.uuid4().hex[:8]}")
        for method, suffix in (("GET", ""), ("POST", ""), ("DELETE", f"/{elsewhere.key_id}"))
    ]

    assert [answer.status_code for answer in answers] == [404] * 6
    for answer in answers:
        assert answer.json()["detail"].endswith(f"has no role on source {source_id}")
    assert client.get("/api/v1/me", headers=elsewhere.auth).status_code == 200
